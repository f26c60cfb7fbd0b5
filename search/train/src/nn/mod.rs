//! Networks in libtorch (`tch`): an interpreter of the layer-graph IR ([`GraphModule`]), the
//! weight-sharing [`Supernet`] with dynamic channel scaling, and [`Standalone`] networks.

pub mod graph_module;
pub mod init;
pub mod standalone;
pub mod supernet;

pub use graph_module::{GraphModule, Mode};
pub use init::{initialise, InitScheme};
pub use standalone::Standalone;
pub use supernet::Supernet;
