//! An architecture of the search space: one [`Choice`] per layer, and each layer's numeric precision.

use std::fmt;
use std::str::FromStr;

use hsconas_vocabulary::Precision;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ArchError;
use crate::layout::{NetConfig, NUM_LAYERS};
use crate::op::{Choice, ChoiceParseError, Op, Scale};

/// One architecture: 20 choices, valid by construction (no `skip` in a stride-2 layer), and the
/// precision each layer runs in (FP32 unless marked INT8).
///
/// The string form is 20 comma-separated `op:scale` entries with `skip` alone, e.g.
/// `shuffle3:1.0,shuffle5:0.7,...,skip`; an INT8 layer carries the suffix `@int8`
/// (`shuffle3:0.5@int8`; `@fp32` is accepted and not printed). The JSON form is a list of
/// `{"op": .., "scale": .., "precision": ..}` objects (`precision` absent for FP32); the string form is
/// accepted in JSON too.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Arch {
    choices: [Choice; NUM_LAYERS],
    precisions: [Precision; NUM_LAYERS],
}

impl Arch {
    /// An architecture from its choices, every layer FP32; names the first layer that breaks a rule.
    pub fn new(choices: [Choice; NUM_LAYERS]) -> Result<Arch, ArchError> {
        for (layer, choice) in choices.iter().enumerate() {
            check_layer(layer, *choice)?;
        }
        Ok(Arch {
            choices,
            precisions: [Precision::Fp32; NUM_LAYERS],
        })
    }

    /// An architecture from its choices and each layer's precision; names the first layer that breaks a
    /// rule (of the choice, or of the precision: no FP16, no INT8 `skip`).
    pub fn with_precisions(
        choices: [Choice; NUM_LAYERS],
        precisions: [Precision; NUM_LAYERS],
    ) -> Result<Arch, ArchError> {
        let mut arch = Arch::new(choices)?;
        for (layer, (&choice, &precision)) in choices.iter().zip(&precisions).enumerate() {
            check_precision(layer, choice, precision, &precision.to_string())?;
        }
        arch.precisions = precisions;
        Ok(arch)
    }

    /// Each layer's precision.
    pub fn precisions(&self) -> &[Precision; NUM_LAYERS] {
        &self.precisions
    }

    /// The 0-based layers marked INT8, in order.
    pub fn int8_layers(&self) -> Vec<usize> {
        (0..NUM_LAYERS)
            .filter(|&l| self.precisions[l] == Precision::Int8)
            .collect()
    }

    /// Whether every layer is FP32 (no precision marks).
    pub fn is_fp32(&self) -> bool {
        self.precisions.iter().all(|&p| p == Precision::Fp32)
    }

    /// The same choices with every layer FP32.
    pub fn as_fp32(&self) -> Arch {
        Arch {
            choices: self.choices,
            precisions: [Precision::Fp32; NUM_LAYERS],
        }
    }

    /// A copy with one layer's precision changed; FP16 (a TensorRT setting of a whole engine) and INT8
    /// on a `skip` layer (nothing to quantise) are refused.
    pub fn with_precision(&self, layer: usize, precision: Precision) -> Result<Arch, ArchError> {
        let choice = self.layer(layer).ok_or_else(|| ArchError::BadPrecision {
            layer: layer + 1,
            text: precision.to_string(),
            reason: format!("cannot apply: an architecture has {NUM_LAYERS} layers"),
        })?;
        check_precision(layer, choice, precision, &precision.to_string())?;
        let mut copy = self.clone();
        copy.precisions[layer] = precision;
        Ok(copy)
    }

    /// The same choice in every layer (`skip` is not allowed: stride-2 layers cannot skip).
    pub fn uniform(op: Op, scale: Scale) -> Result<Arch, ArchError> {
        Arch::new([Choice::new(op, scale); NUM_LAYERS])
    }

    /// The choices, layer by layer.
    pub fn choices(&self) -> &[Choice; NUM_LAYERS] {
        &self.choices
    }

    /// The choice of a 0-based layer.
    pub fn layer(&self, layer: usize) -> Option<Choice> {
        self.choices.get(layer).copied()
    }

    /// A copy with one layer changed (its precision kept, FP32 when it becomes `skip`); fails if that
    /// layer cannot take the choice.
    pub fn with_layer(&self, layer: usize, choice: Choice) -> Result<Arch, ArchError> {
        check_layer(layer, choice)?;
        let mut copy = self.clone();
        if let Some(slot) = copy.choices.get_mut(layer) {
            *slot = choice;
            if choice.is_skip() {
                copy.precisions[layer] = Precision::Fp32;
            }
        }
        Ok(copy)
    }
}

/// Whether the 0-based `layer` holding `choice` may run in `precision` (`text` as written).
fn check_precision(
    layer: usize,
    choice: Choice,
    precision: Precision,
    text: &str,
) -> Result<(), ArchError> {
    let refuse = |reason: &str| {
        Err(ArchError::BadPrecision {
            layer: layer + 1,
            text: text.to_string(),
            reason: reason.to_string(),
        })
    };
    match precision {
        Precision::Fp32 => Ok(()),
        Precision::Fp16 => refuse(
            "is not a layer's precision: TensorRT chooses FP16 kernels for a whole engine (a device \
             profile's setting)",
        ),
        Precision::Int8 if choice.is_skip() => refuse("does not apply to 'skip': it has no weights"),
        Precision::Int8 => Ok(()),
    }
}

/// Whether the 0-based `layer` may take `choice` (no `skip` in a stride-2 layer).
pub fn check_layer(layer: usize, choice: Choice) -> Result<(), ArchError> {
    if choice.is_skip() && NetConfig::is_stride2(layer) {
        return Err(ArchError::SkipInStride2 {
            layer: layer + 1,
            stage: NetConfig::stage_of(layer) + 1,
        });
    }
    Ok(())
}

/// One layer's entry as written (`op:scale`, `skip`, with an optional `@int8`/`@fp32` suffix), checked
/// against the 0-based layer's rules.
pub(crate) fn parse_choice(layer: usize, text: &str) -> Result<(Choice, Precision), ArchError> {
    let (text, suffix) = match text.split_once('@') {
        Some((choice, suffix)) => (choice, Some(suffix.trim())),
        None => (text, None),
    };
    let choice = text.parse().map_err(|e| match e {
        ChoiceParseError::UnknownOp(op) => ArchError::UnknownOp {
            layer: layer + 1,
            op,
        },
        ChoiceParseError::BadScale(scale) => ArchError::BadScale {
            layer: layer + 1,
            scale,
        },
        ChoiceParseError::MissingScale(op) => ArchError::MissingScale {
            layer: layer + 1,
            op: op.to_string(),
        },
    })?;
    check_layer(layer, choice)?;
    let precision = match suffix {
        None => Precision::Fp32,
        Some(word) => {
            let precision: Precision =
                word.to_ascii_lowercase()
                    .parse()
                    .map_err(|_| ArchError::BadPrecision {
                        layer: layer + 1,
                        text: word.to_string(),
                        reason: "is not a precision (a layer is fp32, or int8 with '@int8')".into(),
                    })?;
            check_precision(layer, choice, precision, word)?;
            precision
        }
    };
    Ok((choice, precision))
}

impl FromStr for Arch {
    type Err = ArchError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.trim().split(',').collect();
        if parts.len() != NUM_LAYERS {
            let found = if s.trim().is_empty() { 0 } else { parts.len() };
            return Err(ArchError::WrongLayerCount {
                expected: NUM_LAYERS,
                found,
            });
        }
        let mut choices = [Choice::SKIP; NUM_LAYERS];
        let mut precisions = [Precision::Fp32; NUM_LAYERS];
        for (layer, part) in parts.into_iter().enumerate() {
            (choices[layer], precisions[layer]) = parse_choice(layer, part)?;
        }
        Ok(Arch {
            choices,
            precisions,
        })
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, choice) in self.choices.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{choice}")?;
            if self.precisions[i] != Precision::Fp32 {
                write!(f, "@{}", self.precisions[i])?;
            }
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct ChoiceJson {
    op: Op,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scale: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    precision: Option<Precision>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ArchJson {
    Text(String),
    Layers(Vec<ChoiceJson>),
}

impl Serialize for Arch {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let layers: Vec<ChoiceJson> = self
            .choices
            .iter()
            .zip(&self.precisions)
            .map(|(c, &p)| ChoiceJson {
                op: c.op(),
                scale: (!c.is_skip()).then(|| c.scale().value()),
                precision: (p != Precision::Fp32).then_some(p),
            })
            .collect();
        layers.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Arch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match ArchJson::deserialize(deserializer)? {
            ArchJson::Text(text) => text.parse().map_err(D::Error::custom),
            ArchJson::Layers(layers) => {
                // Re-use the string parser so that JSON and text give identical errors.
                let text: Vec<String> = layers
                    .iter()
                    .map(|c| {
                        let choice = match c.scale {
                            Some(scale) => format!("{}:{scale}", c.op),
                            None => c.op.to_string(),
                        };
                        match c.precision {
                            Some(p) => format!("{choice}@{p}"),
                            None => choice,
                        }
                    })
                    .collect();
                text.join(",").parse().map_err(D::Error::custom)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(entry: &str) -> String {
        vec![entry; NUM_LAYERS].join(",")
    }

    #[test]
    fn parses_and_displays_canonically() {
        let mut text: Vec<String> = vec!["shuffle3:1".into(); NUM_LAYERS];
        text[1] = "skip:0.3".into();
        text[2] = "Xception:.5".into();
        let arch: Arch = text.join(",").parse().expect("valid");
        let shown = arch.to_string();
        assert!(
            shown.starts_with("shuffle3:1.0,skip,xception:0.5,shuffle3:1.0"),
            "{shown}"
        );
        assert_eq!(shown.parse::<Arch>().as_ref(), Ok(&arch));
    }

    #[test]
    fn each_kind_of_bad_string_names_the_problem() {
        let mut cases: Vec<(String, &str)> = vec![
            (vec!["shuffle3:1.0"; 19].join(","), "found 19"),
            (String::new(), "found 0"),
            (all("shuffle3:1.0") + ",skip", "found 21"),
        ];
        let mut with = |layer: usize, entry: &str, needle: &'static str| {
            let mut v = vec!["shuffle5:0.5"; NUM_LAYERS];
            v[layer] = entry;
            cases.push((v.join(","), needle));
        };
        with(6, "shuffle9:0.5", "layer 7: unknown operator 'shuffle9'");
        with(2, "shuffle3:1.1", "layer 3: channel scale '1.1'");
        with(2, "shuffle3:0", "layer 3: channel scale '0'");
        with(2, "shuffle3:0.25", "layer 3: channel scale '0.25'");
        with(3, "xception", "layer 4: 'xception' needs a channel scale");
        with(
            0,
            "skip",
            "layer 1: 'skip' is not allowed in a stride-2 layer (the first layer of stage 1)",
        );
        with(
            16,
            "skip:0.5",
            "layer 17: 'skip' is not allowed in a stride-2 layer (the first layer of stage 4)",
        );
        with(5, "", "layer 6: unknown operator ''");
        for (text, needle) in cases {
            let err = text.parse::<Arch>().expect_err(&text).to_string();
            assert!(
                err.contains(needle),
                "for {text:?}: got {err:?}, wanted {needle:?}"
            );
        }
    }

    #[test]
    fn json_round_trips_and_accepts_the_string_form() {
        let arch: Arch = all("shuffle7:0.3").parse().expect("valid");
        let arch = arch
            .with_layer(5, Choice::SKIP)
            .expect("layer 6 is stride 1");
        let json = serde_json::to_string(&arch).expect("serialises");
        assert!(
            json.contains(r#"{"op":"skip"}"#) && json.contains(r#""scale":0.3"#),
            "{json}"
        );
        let back: Arch = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, arch);
        let from_text: Arch = serde_json::from_str(&format!("\"{arch}\"")).expect("parses");
        assert_eq!(from_text, arch);
        let bad = serde_json::from_str::<Arch>(r#"[{"op":"skip"}]"#).expect_err("too short");
        assert!(bad.to_string().contains("found 1"), "{bad}");
    }

    #[test]
    fn int8_layers_are_marked_parsed_and_serialised() {
        let mut text = vec!["shuffle3:0.5"; NUM_LAYERS];
        text[3] = "shuffle3:0.5@int8";
        text[19] = "xception:1.0@INT8";
        text[4] = "shuffle5:0.7@fp32";
        let arch: Arch = text.join(",").parse().expect("valid");
        assert_eq!(arch.int8_layers(), vec![3, 19]);
        assert!(!arch.is_fp32() && arch.as_fp32().is_fp32());
        let shown = arch.to_string();
        assert!(
            shown.contains(",shuffle3:0.5@int8,shuffle5:0.7,"),
            "{shown}"
        );
        assert!(shown.ends_with("xception:1.0@int8"), "{shown}");
        assert_eq!(shown.parse::<Arch>().as_ref(), Ok(&arch));
        assert_ne!(
            arch,
            arch.as_fp32(),
            "precision is part of the architecture"
        );
        let json = serde_json::to_string(&arch).expect("serialises");
        assert!(json.contains(r#""precision":"int8""#), "{json}");
        assert_eq!(serde_json::from_str::<Arch>(&json).expect("parses"), arch);
        // A layer keeps its precision when its choice changes, and loses it when it becomes skip.
        let changed = arch
            .with_layer(3, "xception:0.2".parse().expect("choice"))
            .expect("ok");
        assert_eq!(changed.int8_layers(), vec![3, 19]);
        let skipped = arch
            .with_layer(3, Choice::SKIP)
            .expect("layer 4 is stride 1");
        assert_eq!(skipped.int8_layers(), vec![19]);
        assert_eq!(
            arch.with_precision(19, Precision::Fp32)
                .expect("ok")
                .int8_layers(),
            vec![3]
        );

        for (entry, needle) in [
            (
                "shuffle3:0.5@int4",
                "layer 2: precision 'int4' is not a precision",
            ),
            (
                "shuffle3:0.5@fp16",
                "layer 2: precision 'fp16' is not a layer's precision",
            ),
            (
                "skip@int8",
                "layer 2: precision 'int8' does not apply to 'skip'",
            ),
        ] {
            let mut v = vec!["shuffle3:0.5"; NUM_LAYERS];
            v[1] = entry;
            let err = v.join(",").parse::<Arch>().expect_err(entry).to_string();
            assert!(err.contains(needle), "{entry}: {err}");
        }
        assert!(skipped.with_precision(3, Precision::Int8).is_err());
    }

    #[test]
    fn with_layer_refuses_skip_in_stride2() {
        let arch = Arch::uniform(Op::Xception, Scale::FULL).expect("valid");
        assert!(arch.with_layer(8, Choice::SKIP).is_err());
        assert!(arch.with_layer(9, Choice::SKIP).is_ok());
    }
}
