//! Stage widths, input size and class count: the fixed geometry of the search space.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ModelError;

/// Number of searchable layers.
pub const NUM_LAYERS: usize = 20;
/// Layers per stage.
pub const STAGE_REPEATS: [usize; 4] = [4, 4, 8, 4];
/// Output channels of the stem.
pub const STEM_WIDTH: usize = 16;
/// Output channels of the head's pointwise convolution.
pub const HEAD_WIDTH: usize = 1024;

/// The output widths of the four stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Layout {
    widths: [usize; 4],
}

impl Layout {
    /// Layout A of the paper: `[48, 128, 256, 512]`.
    pub const A: Layout = Layout {
        widths: [48, 128, 256, 512],
    };
    /// Layout B of the paper: `[68, 168, 336, 672]`.
    pub const B: Layout = Layout {
        widths: [68, 168, 336, 672],
    };

    /// A custom layout. Every width must be even, each wider than the one before it, and the first wider
    /// than the stem's 16 channels (a stride-2 block's main branch outputs `w - cin` channels).
    pub fn new(widths: [usize; 4]) -> Result<Layout, ModelError> {
        let bad = |reason: String| ModelError::BadLayout {
            layout: widths.map(|w| w.to_string()).join(","),
            reason,
        };
        if let Some(w) = widths.iter().find(|w| !w.is_multiple_of(2)) {
            return Err(bad(format!(
                "width {w} is odd; every stage width must be even"
            )));
        }
        let mut prev = STEM_WIDTH;
        for (stage, &w) in widths.iter().enumerate() {
            if w <= prev {
                return Err(bad(format!(
                    "stage {} width {w} must be wider than the {} before it ({prev})",
                    stage + 1,
                    if stage == 0 { "stem" } else { "stage" }
                )));
            }
            prev = w;
        }
        Ok(Layout { widths })
    }

    /// The four stage widths.
    pub fn widths(&self) -> [usize; 4] {
        self.widths
    }
}

impl Default for Layout {
    fn default() -> Self {
        Layout::A
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Layout::A => f.write_str("A"),
            Layout::B => f.write_str("B"),
            Layout { widths } => f.write_str(&widths.map(|w| w.to_string()).join(",")),
        }
    }
}

impl FromStr for Layout {
    type Err = ModelError;

    /// `A`, `B` or four comma-separated widths.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "A" | "a" => return Ok(Layout::A),
            "B" | "b" => return Ok(Layout::B),
            _ => {}
        }
        let bad = |reason: &str| ModelError::BadLayout {
            layout: s.to_string(),
            reason: reason.into(),
        };
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        if parts.len() != 4 {
            return Err(bad("expected A, B or four comma-separated stage widths"));
        }
        let mut widths = [0; 4];
        for (w, part) in widths.iter_mut().zip(parts) {
            *w = part
                .parse()
                .map_err(|_| bad("a stage width is not a whole number"))?;
        }
        Layout::new(widths)
    }
}

impl TryFrom<String> for Layout {
    type Error = ModelError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Layout> for String {
    fn from(l: Layout) -> String {
        l.to_string()
    }
}

/// Everything besides the architecture that fixes a network's shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NetConfig {
    /// Stage widths.
    pub layout: Layout,
    /// Input height and width `S` (square inputs).
    pub input_size: usize,
    /// Number of classes `N`.
    pub classes: usize,
}

impl Default for NetConfig {
    /// Layout A, 224x224 inputs, 1000 classes.
    fn default() -> Self {
        NetConfig {
            layout: Layout::A,
            input_size: 224,
            classes: 1000,
        }
    }
}

impl NetConfig {
    /// Checks the input size and class count.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.input_size < 8 || self.input_size > 4096 {
            return Err(ModelError::BadConfig(format!(
                "input size {} is outside 8..=4096",
                self.input_size
            )));
        }
        if self.classes == 0 {
            return Err(ModelError::BadConfig(
                "the class count must be at least 1".into(),
            ));
        }
        Ok(())
    }

    /// Stride of the stem: 2 for inputs of 128 pixels or more, else 1.
    pub fn stem_stride(&self) -> usize {
        if self.input_size >= 128 {
            2
        } else {
            1
        }
    }

    /// 0-based stage of a 0-based layer index.
    pub fn stage_of(layer: usize) -> usize {
        let mut end = 0;
        for (stage, repeats) in STAGE_REPEATS.iter().enumerate() {
            end += repeats;
            if layer < end {
                return stage;
            }
        }
        STAGE_REPEATS.len() - 1
    }

    /// Whether the 0-based layer is the first of its stage (stride 2).
    pub fn is_stride2(layer: usize) -> bool {
        let mut start = 0;
        for repeats in STAGE_REPEATS {
            if layer == start {
                return true;
            }
            start += repeats;
        }
        false
    }

    /// Output width of the 0-based layer.
    pub fn layer_width(&self, layer: usize) -> usize {
        self.layout.widths()[Self::stage_of(layer)]
    }

    /// Input channels of the 0-based layer.
    pub fn layer_in_channels(&self, layer: usize) -> usize {
        match layer {
            0 => STEM_WIDTH,
            l => self.layer_width(l - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_parse_and_display() {
        assert_eq!("A".parse::<Layout>(), Ok(Layout::A));
        assert_eq!("b".parse::<Layout>(), Ok(Layout::B));
        assert_eq!("48,128,256,512".parse::<Layout>(), Ok(Layout::A));
        let custom: Layout = "24, 48, 96, 192".parse().expect("valid layout");
        assert_eq!(custom.to_string(), "24,48,96,192");
        assert_eq!(Layout::A.to_string(), "A");
    }

    #[test]
    fn bad_layouts_are_refused_with_a_reason() {
        for (text, needle) in [
            ("47,128,256,512", "odd"),
            ("16,128,256,512", "stem"),
            ("48,48,256,512", "wider"),
            ("48,128,256", "four"),
            ("48,x,256,512", "whole number"),
        ] {
            let err = text.parse::<Layout>().expect_err(text).to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn stage_geometry() {
        let strided: Vec<usize> = (0..NUM_LAYERS)
            .filter(|&l| NetConfig::is_stride2(l))
            .collect();
        assert_eq!(strided, vec![0, 4, 8, 16]);
        assert_eq!(NetConfig::stage_of(15), 2);
        assert_eq!(NetConfig::stage_of(19), 3);
        let cfg = NetConfig::default();
        assert_eq!(cfg.layer_in_channels(0), 16);
        assert_eq!(cfg.layer_in_channels(4), 48);
        assert_eq!(cfg.layer_width(4), 128);
    }
}
