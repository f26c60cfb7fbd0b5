//! Network configuration flags shared by several commands.

use anyhow::Context;
use clap::Args;
use hsconas_models::{Layout, NetConfig};

/// `--layout`, `--input-size`, `--classes`.
#[derive(Debug, Clone, Args)]
pub struct NetArgs {
    /// Stage widths: A (48,128,256,512), B (68,168,336,672) or four comma-separated even widths.
    #[arg(long, default_value_t = NetArgs::default().layout, value_name = "A|B|W1,W2,W3,W4")]
    pub layout: String,
    /// Input height and width in pixels.
    #[arg(long, default_value_t = NetArgs::default().input_size, value_name = "S")]
    pub input_size: usize,
    /// Number of output classes.
    #[arg(long, default_value_t = NetArgs::default().classes, value_name = "N")]
    pub classes: usize,
}

/// The command line's defaults: layout A at ImageNet's 224 pixels and 1000 classes.
impl Default for NetArgs {
    fn default() -> NetArgs {
        NetArgs {
            layout: Layout::A.to_string(),
            input_size: 224,
            classes: 1000,
        }
    }
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
