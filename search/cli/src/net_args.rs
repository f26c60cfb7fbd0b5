//! Network configuration flags shared by several commands.

use anyhow::Context;
use clap::Args;
use hsconas_models::{Layout, NetConfig};

/// `--layout`, `--input-size`, `--classes`; each is `None` unless given on the command line, so that a
/// command reading the geometry from a file can tell a flag it would ignore ([`NetArgs::refuse_conflicts`]).
#[derive(Debug, Clone, Default, Args)]
pub struct NetArgs {
    /// Stage widths: A (48,128,256,512), B (68,168,336,672) or four comma-separated even widths
    /// [default: A].
    #[arg(long, value_name = "A|B|W1,W2,W3,W4")]
    pub layout: Option<String>,
    /// Input height and width in pixels [default: 224].
    #[arg(long, value_name = "S")]
    pub input_size: Option<usize>,
    /// Number of output classes [default: 1000].
    #[arg(long, value_name = "N")]
    pub classes: Option<usize>,
}

impl NetArgs {
    /// The geometry when a flag is absent: layout A at ImageNet's 224 pixels and 1000 classes.
    pub fn defaults() -> NetConfig {
        NetConfig {
            layout: Layout::A,
            input_size: 224,
            classes: 1000,
        }
    }

    /// The validated configuration: the flags given, [`NetArgs::defaults`] for the others.
    pub fn config(&self) -> anyhow::Result<NetConfig> {
        let defaults = NetArgs::defaults();
        let layout = match &self.layout {
            Some(text) => text.parse().context("--layout")?,
            None => defaults.layout,
        };
        let config = NetConfig {
            layout,
            input_size: self.input_size.unwrap_or(defaults.input_size),
            classes: self.classes.unwrap_or(defaults.classes),
        };
        config.validate()?;
        Ok(config)
    }

    /// Refuses every flag given that differs from the geometry `file` describes (`layout`, `input_size`,
    /// `classes`): the file wins, and a flag the command cannot honour is an error that says why, never
    /// silently ignored. A flag equal to the file's value is accepted.
    pub fn refuse_conflicts(
        &self,
        file: &str,
        layout: &str,
        input_size: usize,
        classes: usize,
    ) -> anyhow::Result<()> {
        let mut conflicts = Vec::new();
        if let Some(given) = &self.layout {
            let given: Layout = given.parse().context("--layout")?;
            let described: Layout = layout
                .parse()
                .with_context(|| format!("the layout in {file}"))?;
            if given != described {
                conflicts.push(format!("--layout {given} (it was built with {described})"));
            }
        }
        if let Some(given) = self.input_size.filter(|&s| s != input_size) {
            conflicts.push(format!(
                "--input-size {given} (it was trained at {input_size}x{input_size})"
            ));
        }
        if let Some(given) = self.classes.filter(|&c| c != classes) {
            conflicts.push(format!("--classes {given} (it has {classes} classes)"));
        }
        anyhow::ensure!(
            conflicts.is_empty(),
            "{} cannot apply: {file} describes the network, and its weights fit only that geometry; \
             leave the flag out, or retrain at the geometry you want",
            conflicts.join(", ")
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(layout: Option<&str>, input_size: Option<usize>, classes: Option<usize>) -> NetArgs {
        NetArgs {
            layout: layout.map(String::from),
            input_size,
            classes,
        }
    }

    #[test]
    fn absent_flags_take_the_defaults() {
        let config = NetArgs::default().config().expect("valid");
        assert_eq!(config, NetArgs::defaults());
        let config = given(Some("B"), Some(32), Some(10))
            .config()
            .expect("valid");
        assert_eq!(
            (config.layout, config.input_size, config.classes),
            (Layout::B, 32, 10)
        );
    }

    #[test]
    fn a_flag_that_differs_from_the_file_is_refused_with_both_values() {
        let file = "runs/x/model.json";
        assert!(NetArgs::default()
            .refuse_conflicts(file, "A", 32, 10)
            .is_ok());
        assert!(given(Some("A"), Some(32), Some(10))
            .refuse_conflicts(file, "A", 32, 10)
            .is_ok());
        let error = given(None, Some(224), None)
            .refuse_conflicts(file, "A", 32, 10)
            .expect_err("224 is not 32")
            .to_string();
        assert!(
            error.contains("--input-size 224 (it was trained at 32x32)"),
            "{error}"
        );
        assert!(error.contains(file), "{error}");
        let error = given(Some("B"), None, Some(100))
            .refuse_conflicts(file, "A", 32, 10)
            .expect_err("two conflicts")
            .to_string();
        assert!(
            error.contains("--layout B") && error.contains("--classes 100"),
            "{error}"
        );
    }
}
