//! Network configuration flags shared by several commands.

use anyhow::Context;
use clap::Args;
use hsconas_models::{Layout, NetConfig};

/// `--layout`, `--input-size`, `--classes`.
#[derive(Debug, Clone, Args)]
pub struct NetArgs {
    /// Stage widths: A (48,128,256,512), B (68,168,336,672) or four comma-separated even widths.
    #[arg(long, default_value = "A", value_name = "A|B|W1,W2,W3,W4")]
    pub layout: String,
    /// Input height and width in pixels.
    #[arg(long, default_value_t = 224, value_name = "S")]
    pub input_size: usize,
    /// Number of output classes.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub classes: usize,
}

impl NetArgs {
    /// The validated configuration.
    pub fn config(&self) -> anyhow::Result<NetConfig> {
        let layout: Layout = self.layout.parse().context("--layout")?;
        let config = NetConfig {
            layout,
            input_size: self.input_size,
            classes: self.classes,
        };
        config.validate()?;
        Ok(config)
    }
}
