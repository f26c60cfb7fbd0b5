//! Device profiles: what to measure on, and how (docs/DESIGN.md section 3).

use std::fmt;
use std::path::{Path, PathBuf};

use hsconas_models::{Layout, NetConfig};
use hsconas_vocabulary::{Engine, ExecutionProvider, Precision, Statistic};
use serde::{Deserialize, Serialize};

/// Why a profile was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// A file-system step failed (what was done, to which path, and why).
    #[error(transparent)]
    Fs(#[from] hsconas_foundation::FsError),
    /// Not valid TOML, an unknown key or a value of the wrong type (the message names the key).
    #[error("device profile '{path}': {message}")]
    Parse {
        /// The file (or the shipped profile's name).
        path: PathBuf,
        /// The TOML parser's message.
        message: String,
    },
    /// Valid TOML with values that do not make sense together.
    #[error("device profile '{name}': {message}")]
    Invalid {
        /// The profile's name.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// A shipped profile name that does not exist.
    #[error("no shipped device profile named '{name}' (shipped: {known}); pass a path to a .toml file for your own")]
    Unknown {
        /// The name asked for.
        name: String,
        /// Comma-separated shipped names.
        known: String,
    },
}

/// The class of device (decides the paper's default batch: 1 for CPUs, 32 for GPUs, 16 for edge boards).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// A CPU box.
    Cpu,
    /// A GPU server.
    Gpu,
    /// An embedded board such as a Jetson.
    Edge,
}

/// A device profile (`devices/profiles/<name>.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceProfile {
    /// Name; equals the file name without `.toml` for shipped profiles.
    pub name: String,
    /// Device class.
    pub kind: DeviceKind,
    /// Engine.
    pub backend: Engine,
    /// Preferred execution provider (ort only; `cpu` for tract).
    pub provider: ExecutionProvider,
    /// Providers to try, in order, if the preferred one is unavailable (CPU is always the last resort).
    #[serde(default)]
    pub fallback_providers: Vec<ExecutionProvider>,
    /// Batch size of every measurement.
    pub batch: usize,
    /// Intra-op threads.
    pub threads: usize,
    /// CPUs to pin the measuring thread to (empty: no pinning).
    #[serde(default)]
    pub cpu_affinity: Vec<usize>,
    /// Precision: `fp16` lets TensorRT choose FP16 kernels (the models stay FP32 for the other providers).
    pub precision: Precision,
    /// TensorRT's scratch memory for building engines, in MiB (absent: ONNX Runtime's default). Part of
    /// what a table records, since it can change the kernels TensorRT picks.
    #[serde(default)]
    pub tensorrt_workspace_mib: Option<usize>,
    /// Input height and width.
    pub input_size: usize,
    /// Stage widths (`A`, `B` or four widths).
    pub layout: Layout,
    /// Statistic the latency table uses.
    pub statistic: Statistic,
    /// Address of the agent on the device (`http://host:7878`), for remote profiling.
    #[serde(default)]
    pub agent: Option<String>,
    /// Free text: power mode, clocks, anything that changes latency.
    #[serde(default)]
    pub notes: String,
}

/// Shipped profiles, embedded so that the binaries work from any folder.
const SHIPPED: [(&str, &str); 4] = [
    ("local-cpu", include_str!("../profiles/local-cpu.toml")),
    (
        "xeon-gold-6136",
        include_str!("../profiles/xeon-gold-6136.toml"),
    ),
    ("gv100", include_str!("../profiles/gv100.toml")),
    (
        "jetson-xavier",
        include_str!("../profiles/jetson-xavier.toml"),
    ),
];

impl DeviceProfile {
    /// Names of the shipped profiles.
    pub fn shipped_names() -> Vec<&'static str> {
        SHIPPED.iter().map(|(n, _)| *n).collect()
    }

    /// A shipped profile by name, or a profile file if `name_or_path` ends in `.toml` or names a file.
    pub fn find(name_or_path: &str) -> Result<DeviceProfile, ProfileError> {
        if let Some((_, text)) = SHIPPED.iter().find(|(n, _)| *n == name_or_path) {
            return DeviceProfile::parse(text, Path::new(name_or_path));
        }
        let path = Path::new(name_or_path);
        if name_or_path.ends_with(".toml") || path.is_file() {
            return DeviceProfile::load(path);
        }
        Err(ProfileError::Unknown {
            name: name_or_path.to_string(),
            known: Self::shipped_names().join(", "),
        })
    }

    /// Reads and validates a profile file.
    pub fn load(path: &Path) -> Result<DeviceProfile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| {
            hsconas_foundation::FsError::new("reading device profile", path, source)
        })?;
        DeviceProfile::parse(&text, path)
    }

    /// Parses and validates profile text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<DeviceProfile, ProfileError> {
        let profile: DeviceProfile = toml::from_str(text).map_err(|e| ProfileError::Parse {
            path: origin.into(),
            message: e.to_string(),
        })?;
        profile.validate()?;
        Ok(profile)
    }

    /// Checks that the values make sense together.
    pub fn validate(&self) -> Result<(), ProfileError> {
        let invalid = |message: String| {
            Err(ProfileError::Invalid {
                name: self.name.clone(),
                message,
            })
        };
        if self.name.trim().is_empty() {
            return invalid("the name is empty".into());
        }
        if self.batch == 0 || self.threads == 0 {
            return invalid(format!(
                "batch ({}) and threads ({}) must be at least 1",
                self.batch, self.threads
            ));
        }
        if self.backend == Engine::Tract
            && (self.provider != ExecutionProvider::Cpu || !self.fallback_providers.is_empty())
        {
            return invalid("the tract backend runs on the CPU only: use provider = \"cpu\" and no fallback_providers".into());
        }
        if self.precision == Precision::Fp16 && self.provider != ExecutionProvider::Tensorrt {
            return invalid("fp16 precision needs the tensorrt provider".into());
        }
        if self.precision == Precision::Int8 {
            return invalid(
                "latency tables do not measure int8 yet; export INT8 models with `hsconas export \
                 onnx --precision int8`"
                    .into(),
            );
        }
        if let Some(agent) = &self.agent {
            if !(agent.starts_with("http://") || agent.starts_with("https://")) {
                return invalid(format!(
                    "agent '{agent}' must be an http:// or https:// address"
                ));
            }
        }
        self.net_config(1)
            .validate()
            .map_err(|e| ProfileError::Invalid {
                name: self.name.clone(),
                message: e.to_string(),
            })
    }

    /// The network configuration this device is profiled at, for `classes` outputs.
    pub fn net_config(&self, classes: usize) -> NetConfig {
        NetConfig {
            layout: self.layout,
            input_size: self.input_size,
            classes,
        }
    }
}

impl fmt::Display for DeviceProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({:?}, {:?}/{:?}, batch {}, {} thread(s), input {}, layout {})",
            self.name,
            self.kind,
            self.backend,
            self.provider,
            self.batch,
            self.threads,
            self.input_size,
            self.layout
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_profile_loads_and_matches_its_name() {
        for name in DeviceProfile::shipped_names() {
            let p = DeviceProfile::find(name).expect("shipped profiles are valid");
            assert_eq!(p.name, name);
            let file = hsconas_foundation::package_dir!()
                .join("profiles")
                .join(format!("{name}.toml"));
            assert_eq!(DeviceProfile::load(&file).expect("loads from disk"), p);
        }
        let batches: Vec<usize> = ["local-cpu", "gv100", "jetson-xavier"]
            .iter()
            .map(|n| DeviceProfile::find(n).map(|p| p.batch).expect("shipped"))
            .collect();
        assert_eq!(batches, vec![1, 32, 16], "the paper's batch sizes");
    }

    #[test]
    fn bad_profiles_are_refused_with_the_reason() {
        let base = include_str!("../profiles/local-cpu.toml");
        let cases = [
            (base.replace("batch = 1", "batch = 0"), "at least 1"),
            (
                base.replace("provider = \"cpu\"", "provider = \"npu\""),
                "npu",
            ),
            (format!("{base}\ncolour = \"red\"\n"), "colour"),
            (
                base.replace("backend = \"ort\"", "backend = \"tract\"")
                    .replace("provider = \"cpu\"", "provider = \"cuda\""),
                "tract",
            ),
            (
                base.replace("layout = \"A\"", "layout = \"47,128,256,512\""),
                "odd",
            ),
            (
                base.replace("input_size = 224", "input_size = 4"),
                "input size",
            ),
            (base.replace("threads = 1\n", ""), "threads"),
        ];
        for (text, needle) in cases {
            let err = DeviceProfile::parse(&text, Path::new("test.toml"))
                .expect_err(needle)
                .to_string();
            assert!(err.contains(needle), "wanted {needle:?} in {err:?}");
        }
        let err = DeviceProfile::find("pixel-9")
            .expect_err("unknown")
            .to_string();
        assert!(
            err.contains("pixel-9") && err.contains("jetson-xavier"),
            "{err}"
        );
    }
}
