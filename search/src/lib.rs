//! The host side of HSCoNAS: the `hsconas` command line and, as later issues land, supernet training with
//! `tch`, progressive space shrinking, the evolutionary search and the end-to-end pipeline.

pub mod libtorch;
