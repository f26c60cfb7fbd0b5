//! One layer's choice: an operator and a channel scale.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The operators of the search space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// ShuffleNetV2 block with a 3x3 depthwise convolution.
    Shuffle3,
    /// ShuffleNetV2 block with a 5x5 depthwise convolution.
    Shuffle5,
    /// ShuffleNetV2 block with a 7x7 depthwise convolution.
    Shuffle7,
    /// Xception-style block: three 3x3 depthwise + pointwise pairs.
    Xception,
    /// Identity; only in stride-1 layers, has no channel scale.
    Skip,
}

impl Op {
    /// Every operator, in canonical order.
    pub const ALL: [Op; 5] = [
        Op::Shuffle3,
        Op::Shuffle5,
        Op::Shuffle7,
        Op::Xception,
        Op::Skip,
    ];
    /// The operators that hold weights (every one but `skip`).
    pub const BLOCKS: [Op; 4] = [Op::Shuffle3, Op::Shuffle5, Op::Shuffle7, Op::Xception];

    /// Canonical name as used in architecture strings.
    pub fn name(self) -> &'static str {
        match self {
            Op::Shuffle3 => "shuffle3",
            Op::Shuffle5 => "shuffle5",
            Op::Shuffle7 => "shuffle7",
            Op::Xception => "xception",
            Op::Skip => "skip",
        }
    }

    /// Depthwise kernel size (also of the stride-2 projection branch); 0 for `skip`.
    pub fn kernel(self) -> usize {
        match self {
            Op::Shuffle3 | Op::Xception => 3,
            Op::Shuffle5 => 5,
            Op::Shuffle7 => 7,
            Op::Skip => 0,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Op {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Op::ALL.into_iter().find(|op| op.name() == s).ok_or(())
    }
}

/// A channel scale `t / 10` with `t` in `1..=10`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Scale(u8);

impl Scale {
    /// Full width (1.0).
    pub const FULL: Scale = Scale(10);

    /// Every scale, 0.1 to 1.0.
    pub fn all() -> impl Iterator<Item = Scale> {
        (1..=10).map(Scale)
    }

    /// The scale `tenths / 10`; `None` outside `1..=10`.
    pub fn from_tenths(tenths: u8) -> Option<Scale> {
        (1..=10).contains(&tenths).then_some(Scale(tenths))
    }

    /// `t` in `1..=10`.
    pub fn tenths(self) -> u8 {
        self.0
    }

    /// The scale as a number in `0.1..=1.0`.
    pub fn value(self) -> f64 {
        f64::from(self.0) / 10.0
    }

    /// Mid channels of a choice block in a stage of width `width`:
    /// `max(1, (t * (width / 2) + 5) / 10)` in integer arithmetic (docs/DESIGN.md section 2).
    pub fn mid_channels(self, width: usize) -> usize {
        ((usize::from(self.0) * (width / 2) + 5) / 10).max(1)
    }
}

impl fmt::Display for Scale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.0 / 10, self.0 % 10)
    }
}

impl FromStr for Scale {
    type Err = ();

    /// Accepts any decimal that is a multiple of 0.1 in `0.1..=1.0` (`0.5`, `.5`, `0.50`, `1`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() || !s.chars().all(|c| c.is_ascii_digit() || c == '.') {
            return Err(());
        }
        let x: f64 = s.parse().map_err(|_| ())?;
        let tenths = (x * 10.0).round();
        if (x * 10.0 - tenths).abs() > 1e-9 || !(1.0..=10.0).contains(&tenths) {
            return Err(());
        }
        Ok(Scale(tenths as u8))
    }
}

/// One layer's choice. For `skip` the scale is always [`Scale::FULL`] and carries no meaning.
///
/// Serialised as its string form (`shuffle5:0.7`, `skip`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Choice {
    op: Op,
    scale: Scale,
}

impl Choice {
    /// Identity.
    pub const SKIP: Choice = Choice {
        op: Op::Skip,
        scale: Scale::FULL,
    };

    /// A choice; the scale is dropped for `skip`.
    pub fn new(op: Op, scale: Scale) -> Choice {
        match op {
            Op::Skip => Choice::SKIP,
            _ => Choice { op, scale },
        }
    }

    /// The operator.
    pub fn op(self) -> Op {
        self.op
    }

    /// The channel scale ([`Scale::FULL`] for `skip`).
    pub fn scale(self) -> Scale {
        self.scale
    }

    /// Whether this is the identity.
    pub fn is_skip(self) -> bool {
        self.op == Op::Skip
    }

    /// Number of distinct choices (4 block operators x 10 scales, plus `skip`).
    pub const COUNT: usize = Op::BLOCKS.len() * 10 + 1;

    /// A dense index in `0..Choice::COUNT`, for table lookups: `op * 10 + tenths - 1`, `skip` last.
    pub fn index(self) -> usize {
        match self.op {
            Op::Skip => Choice::COUNT - 1,
            op => op as usize * 10 + usize::from(self.scale.tenths()) - 1,
        }
    }
}

/// Why the text of one choice was rejected (the architecture parser adds the layer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChoiceParseError {
    /// Not an operator name.
    UnknownOp(String),
    /// Not a multiple of 0.1 in 0.1..=1.0.
    BadScale(String),
    /// A non-skip operator without a scale.
    MissingScale(Op),
}

impl fmt::Display for ChoiceParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChoiceParseError::UnknownOp(op) => write!(f, "unknown operator '{op}'"),
            ChoiceParseError::BadScale(s) => {
                write!(f, "channel scale '{s}' is not one of 0.1, 0.2, ..., 1.0")
            }
            ChoiceParseError::MissingScale(op) => {
                write!(f, "'{op}' needs a channel scale, e.g. '{op}:0.5'")
            }
        }
    }
}

impl FromStr for Choice {
    type Err = ChoiceParseError;

    /// `op:scale`, or `skip` (whose scale, if written, is dropped). Operator names ignore case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (op_text, scale_text) = match text.split_once(':') {
            Some((op, scale)) => (op.trim(), Some(scale.trim())),
            None => (text, None),
        };
        let op: Op = op_text
            .to_ascii_lowercase()
            .parse()
            .map_err(|()| ChoiceParseError::UnknownOp(op_text.to_string()))?;
        let scale = match (op, scale_text) {
            (Op::Skip, _) => Scale::FULL,
            (_, None) => return Err(ChoiceParseError::MissingScale(op)),
            (_, Some(s)) => s
                .parse()
                .map_err(|()| ChoiceParseError::BadScale(s.to_string()))?,
        };
        Ok(Choice::new(op, scale))
    }
}

impl TryFrom<String> for Choice {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse().map_err(|e: ChoiceParseError| e.to_string())
    }
}

impl From<Choice> for String {
    fn from(c: Choice) -> String {
        c.to_string()
    }
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.op {
            Op::Skip => f.write_str("skip"),
            op => write!(f, "{op}:{}", self.scale),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_parses_multiples_of_a_tenth_only() {
        for (text, t) in [
            ("0.1", 1),
            (".5", 5),
            ("0.50", 5),
            ("1", 10),
            ("1.0", 10),
            ("0.7", 7),
        ] {
            assert_eq!(text.parse::<Scale>().map(Scale::tenths), Ok(t), "{text}");
        }
        for bad in [
            "0", "0.0", "1.1", "0.25", "-0.5", "abc", "", "0.5x", "1e-1", "nan", "inf",
        ] {
            assert!(bad.parse::<Scale>().is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn scale_displays_with_one_decimal() {
        let shown: Vec<String> = Scale::all().map(|s| s.to_string()).collect();
        assert_eq!(shown.first().map(String::as_str), Some("0.1"));
        assert_eq!(shown.last().map(String::as_str), Some("1.0"));
    }

    #[test]
    fn mid_channels_rounds_half_up() {
        // w = 48: w/2 = 24; t = 5 -> (120 + 5) / 10 = 12; t = 1 -> (24 + 5) / 10 = 2.
        assert_eq!(Scale::from_tenths(5).map(|s| s.mid_channels(48)), Some(12));
        assert_eq!(Scale::from_tenths(1).map(|s| s.mid_channels(48)), Some(2));
        // w = 4: w/2 = 2; t = 1 -> (2 + 5) / 10 = 0 -> clamped to 1.
        assert_eq!(Scale::from_tenths(1).map(|s| s.mid_channels(4)), Some(1));
        // w = 68: 34 * 5 + 5 = 175 -> 17 (round half up of 17.0); t = 3: 102 + 5 = 107 -> 10.
        assert_eq!(Scale::from_tenths(3).map(|s| s.mid_channels(68)), Some(10));
        assert_eq!(Scale::FULL.mid_channels(512), 256);
    }

    #[test]
    fn choice_indices_are_dense_and_distinct() {
        let mut seen = [false; Choice::COUNT];
        for op in Op::ALL {
            for scale in Scale::all() {
                seen[Choice::new(op, scale).index()] = true;
            }
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(Choice::SKIP.index(), Choice::COUNT - 1);
    }

    #[test]
    fn skip_drops_its_scale() {
        let s = Scale::from_tenths(3).map(|s| Choice::new(Op::Skip, s));
        assert_eq!(s, Some(Choice::SKIP));
        assert_eq!(Choice::SKIP.to_string(), "skip");
    }
}
