//! The HSCoNAS search space and the layer-graph IR every other crate builds on.
//!
//! - [`Op`], [`Scale`], [`Choice`]: what one layer of the search space can be.
//! - [`Layout`], [`NetConfig`]: stage widths, input size and class count; the fixed geometry of the space.
//! - [`Arch`]: one architecture (20 choices), with its string and JSON forms and validation.
//! - [`SearchSpace`]: per layer the allowed choices; size, uniform sampling, membership.
//! - [`graph`]: a small layer-graph IR (convolutions, batch norm, activations, channel slicing, ...) with
//!   shape inference and parameter / MAC counting; [`hsconas`] builds it for an architecture or for one
//!   profiling piece, [`reference`] for the hand-designed baselines (MobileNetV2, ShuffleNetV2, ...).
//!
//! This crate has no heavy dependencies: the exporter, the latency model and the search all share it.

mod arch;
pub mod build;
mod error;
pub mod graph;
mod layout;
mod op;
pub mod reference;
mod space;

pub use arch::Arch;
pub use error::{ArchError, ModelError, SpaceError};
pub use layout::{Layout, NetConfig, NUM_LAYERS, STAGE_REPEATS, STEM_WIDTH};
pub use op::{Choice, ChoiceParseError, Op, Scale};
pub use space::{LayerSpace, SearchSpace};
