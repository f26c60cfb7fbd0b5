//! The host side of HSCoNAS: the `hsconas` command line, the latency model's measurement side (profiling,
//! calibration, validation) and, as later issues land, supernet training with `tch`, progressive space
//! shrinking, the evolutionary search and the end-to-end pipeline.

pub mod data;
pub mod latency;
pub mod libtorch;
pub mod nas;
pub mod nn;
pub mod plots;
pub mod train;
