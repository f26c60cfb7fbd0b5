//! An architecture of the search space: one [`Choice`] per layer.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ArchError;
use crate::layout::{NetConfig, NUM_LAYERS};
use crate::op::{Choice, ChoiceParseError, Op, Scale};

/// One architecture: 20 choices, valid by construction (no `skip` in a stride-2 layer).
///
/// The string form is 20 comma-separated `op:scale` entries with `skip` alone, e.g.
/// `shuffle3:1.0,shuffle5:0.7,...,skip`. The JSON form is a list of `{"op": .., "scale": ..}` objects; the
/// string form is accepted in JSON too.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Arch {
    choices: [Choice; NUM_LAYERS],
}

impl Arch {
    /// An architecture from its choices; names the first layer that breaks a rule.
    pub fn new(choices: [Choice; NUM_LAYERS]) -> Result<Arch, ArchError> {
        for (layer, choice) in choices.iter().enumerate() {
            check_layer(layer, *choice)?;
        }
        Ok(Arch { choices })
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

    /// A copy with one layer changed; fails if that layer cannot take the choice.
    pub fn with_layer(&self, layer: usize, choice: Choice) -> Result<Arch, ArchError> {
        check_layer(layer, choice)?;
        let mut choices = self.choices;
        if let Some(slot) = choices.get_mut(layer) {
            *slot = choice;
        }
        Ok(Arch { choices })
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

fn parse_choice(layer: usize, text: &str) -> Result<Choice, ArchError> {
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
    Ok(choice)
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
        for (layer, (slot, part)) in choices.iter_mut().zip(parts).enumerate() {
            *slot = parse_choice(layer, part)?;
        }
        Ok(Arch { choices })
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, choice) in self.choices.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{choice}")?;
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
struct ChoiceJson {
    op: Op,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scale: Option<f64>,
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
            .map(|c| ChoiceJson {
                op: c.op(),
                scale: (!c.is_skip()).then(|| c.scale().value()),
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
                    .map(|c| match c.scale {
                        Some(scale) => format!("{}:{scale}", c.op),
                        None => c.op.to_string(),
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
    fn with_layer_refuses_skip_in_stride2() {
        let arch = Arch::uniform(Op::Xception, Scale::FULL).expect("valid");
        assert!(arch.with_layer(8, Choice::SKIP).is_err());
        assert!(arch.with_layer(9, Choice::SKIP).is_ok());
    }
}
