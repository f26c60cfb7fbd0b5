use thiserror::Error;

/// Why an architecture string or JSON value was rejected. Messages name the layer (1-based).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ArchError {
    /// The string did not have exactly 20 comma-separated entries.
    #[error("an architecture has {expected} comma-separated layers, found {found}")]
    WrongLayerCount {
        /// Number of layers the space has.
        expected: usize,
        /// Number of entries given.
        found: usize,
    },
    /// The operator name is not one of the space's operators.
    #[error("layer {layer}: unknown operator '{op}' (expected one of shuffle3, shuffle5, shuffle7, xception, skip)")]
    UnknownOp {
        /// 1-based layer number.
        layer: usize,
        /// The text that was given.
        op: String,
    },
    /// The scale is not a multiple of 0.1 in 0.1..=1.0.
    #[error("layer {layer}: channel scale '{scale}' is not one of 0.1, 0.2, ..., 1.0")]
    BadScale {
        /// 1-based layer number.
        layer: usize,
        /// The text that was given.
        scale: String,
    },
    /// A non-skip operator was written without its scale.
    #[error("layer {layer}: '{op}' needs a channel scale, e.g. '{op}:0.5'")]
    MissingScale {
        /// 1-based layer number.
        layer: usize,
        /// The operator.
        op: String,
    },
    /// `skip` in the first layer of a stage (stride 2, the width changes).
    #[error("layer {layer}: 'skip' is not allowed in a stride-2 layer (the first layer of stage {stage})")]
    SkipInStride2 {
        /// 1-based layer number.
        layer: usize,
        /// 1-based stage number.
        stage: usize,
    },
    /// A precision suffix (`@...`) that is not `int8` or `fp32`, or on a layer that cannot take it.
    #[error("layer {layer}: precision '{text}' {reason}")]
    BadPrecision {
        /// 1-based layer number.
        layer: usize,
        /// The suffix that was given.
        text: String,
        /// Why it was refused.
        reason: String,
    },
    /// A choice outside a (shrunk) search space.
    #[error("layer {layer}: '{choice}' is not in the search space")]
    NotInSpace {
        /// 1-based layer number.
        layer: usize,
        /// The choice, in string form.
        choice: String,
    },
}

/// Errors of network configuration (layouts, input sizes, class counts, reference network names).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ModelError {
    /// A malformed architecture.
    #[error(transparent)]
    Arch(#[from] ArchError),
    /// A layout that the space cannot build.
    #[error("invalid layout '{layout}': {reason}")]
    BadLayout {
        /// The layout as given.
        layout: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An input size or class count the networks cannot use.
    #[error("invalid network configuration: {0}")]
    BadConfig(String),
    /// A reference network name that is not known.
    #[error("unknown reference network '{name}' (known: {known})")]
    UnknownReference {
        /// The name given.
        name: String,
        /// Comma-separated known names.
        known: String,
    },
    /// A profiling-piece key that is not `stem`, `head` or `L<layer>:<choice>`.
    #[error("invalid piece '{key}': {reason}")]
    BadPiece {
        /// The key as given.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A layer index outside 0..20.
    #[error("layer index {0} is out of range (the space has 20 layers, numbered 1..=20)")]
    LayerOutOfRange(usize),
}

/// Why a search space (a `--space` file, a shrunk layer) was rejected. Messages name the layer (1-based).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SpaceError {
    /// The space does not have one entry per layer.
    #[error("a search space has {expected} layers, found {found}")]
    WrongLayerCount {
        /// Number of layers of the networks.
        expected: usize,
        /// Number of layer entries given.
        found: usize,
    },
    /// A layer allows no architecture (no operator, or only block operators and no scale).
    #[error("layer {layer}: no choice is left (ops {ops:?}, scales {scales:?}); a layer needs an operator, and a block operator needs a scale")]
    EmptyLayer {
        /// 1-based layer number.
        layer: usize,
        /// The operators given.
        ops: Vec<String>,
        /// The scales given, in tenths.
        scales: Vec<u8>,
    },
    /// A layer's precisions are empty or name FP16 (TensorRT's setting of a whole engine).
    #[error("layer {layer}: precisions {precisions:?} are not a layer's: give fp32, int8 or both")]
    BadPrecisions {
        /// 1-based layer number.
        layer: usize,
        /// The precisions given.
        precisions: Vec<String>,
    },
    /// A scale outside `1..=10` tenths.
    #[error("layer {layer}: scale {tenths} is not a number of tenths in 1..=10 (0.1 .. 1.0)")]
    BadScale {
        /// 1-based layer number.
        layer: usize,
        /// The value given.
        tenths: u8,
    },
    /// `skip` in the first layer of a stage (stride 2).
    #[error("layer {layer}: 'skip' is not allowed in a stride-2 layer (the first layer of stage {stage})")]
    SkipInStride2 {
        /// 1-based layer number.
        layer: usize,
        /// 1-based stage number.
        stage: usize,
    },
    /// A 0-based layer index outside the space.
    #[error("layer index {0} is out of range (the space has 20 layers, numbered 1..=20)")]
    LayerOutOfRange(usize),
}
