//! The host tensor.

use serde::{Deserialize, Serialize};

/// A dense row-major `f32` tensor: model inputs and outputs in the runtime, network weights in export and
/// training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostTensor {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values, row-major.
    pub data: Vec<f32>,
}

impl HostTensor {
    /// Number of elements the shape holds.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}
