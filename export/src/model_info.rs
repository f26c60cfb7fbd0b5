//! `model.json`: what a trained network needs beside its weights to be exported and used — its
//! architecture, geometry, class names and input normalisation. `hsconas train` writes it next to
//! `weights.safetensors`; the exporters read it.

use std::path::{Path, PathBuf};

use hsconas_models::graph::Graph;
use hsconas_models::reference::Reference;
use hsconas_models::{build, Arch, Layout, NetConfig};
use serde::{Deserialize, Serialize};

use hsconas_foundation::write_atomic;

use crate::ExportError;

/// File name of the metadata next to the weights.
pub const MODEL_INFO_FILE: &str = "model.json";
/// File name of the weights written by `hsconas train`.
pub const WEIGHTS_FILE: &str = "weights.safetensors";

/// Metadata of a trained network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Architecture string (20 `op:scale` entries), or the name of a reference network.
    pub architecture: String,
    /// Stage widths (`A`, `B` or four widths); not used by reference networks.
    pub layout: String,
    /// Set for a hand-designed baseline (`hsconas train --reference`): `architecture` is then its name
    /// (e.g. `shufflenet_v2_x1_0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<ReferenceInfo>,
    /// Input height and width.
    pub input_size: usize,
    /// Class names, in output order.
    pub classes: Vec<String>,
    /// Per-channel normalisation applied to pixels scaled to `0..1`.
    pub normalisation: Normalisation,
    /// Epochs trained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    /// Accuracy on the validation split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val: Option<Accuracy>,
    /// Accuracy on the test split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Accuracy>,
}

/// How a reference network was adapted to its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferenceInfo {
    /// Stem stride 1 and no max pooling (the CIFAR adaptation of [`Reference::build`]).
    pub small_input_stem: bool,
}

/// `(pixel / 255 - mean[c]) / std[c]` per RGB channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalisation {
    /// Per-channel mean.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation.
    pub std: Vec<f32>,
}

/// Classification accuracy on a split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// Top-1, percent.
    pub top1: f64,
    /// Top-5, percent.
    #[serde(default)]
    pub top5: Option<f64>,
    /// Images evaluated.
    pub images: usize,
}

impl ModelInfo {
    /// Reads and validates a `model.json`.
    pub fn load(path: &Path) -> Result<ModelInfo, ExportError> {
        let bytes = std::fs::read(path).map_err(|source| {
            ExportError::Fs(hsconas_foundation::FsError::new("reading", path, source))
        })?;
        let info: ModelInfo =
            serde_json::from_slice(&bytes).map_err(|e| ExportError::BadModelInfo {
                path: path.into(),
                reason: e.to_string(),
            })?;
        info.validate()
            .map_err(|reason| ExportError::BadModelInfo {
                path: path.into(),
                reason,
            })?;
        Ok(info)
    }

    /// Writes it atomically as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<(), ExportError> {
        let json = serde_json::to_vec_pretty(self)
            .unwrap_or_else(|e| unreachable!("model info always serialises: {e}"));
        Ok(write_atomic(path, &json)?)
    }

    /// The weights and metadata of a training output: `path` is the directory `hsconas train` wrote
    /// (holding `weights.safetensors` and `model.json`) or a weights file with `model.json` beside it.
    pub fn locate(path: &Path) -> Result<(PathBuf, ModelInfo), ExportError> {
        let (weights, dir) = if path.is_dir() {
            (path.join(WEIGHTS_FILE), path.to_path_buf())
        } else {
            let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
            (path.to_path_buf(), dir)
        };
        if !weights.is_file() {
            return Err(ExportError::BadModelInfo {
                path: weights,
                reason: "no such weights file (expected the output of `hsconas train`)".into(),
            });
        }
        let info_path = dir.join(MODEL_INFO_FILE);
        if !info_path.is_file() {
            return Err(ExportError::BadModelInfo {
                path: info_path,
                reason: format!(
                    "missing: the weights need the {MODEL_INFO_FILE} that `hsconas train` writes beside them \
                     (architecture, classes, normalisation)"
                ),
            });
        }
        Ok((weights, ModelInfo::load(&info_path)?))
    }

    /// The parsed architecture.
    pub fn arch(&self) -> Result<Arch, String> {
        self.architecture
            .parse()
            .map_err(|e| format!("architecture '{}': {e}", self.architecture))
    }

    /// The network's layer graph: the architecture in its layout, or the reference network.
    pub fn graph(&self) -> Result<Graph, String> {
        match self.reference {
            Some(adaptation) => {
                let net: Reference = self.architecture.parse().map_err(|e| format!("{e}"))?;
                net.build(
                    self.input_size,
                    self.classes.len(),
                    adaptation.small_input_stem,
                )
                .map_err(|e| e.to_string())
            }
            None => build::network(&self.arch()?, &self.config()?).map_err(|e| e.to_string()),
        }
    }

    /// The network configuration (layout, input size, number of classes).
    pub fn config(&self) -> Result<NetConfig, String> {
        let layout: Layout = self
            .layout
            .parse()
            .map_err(|e| format!("layout '{}': {e}", self.layout))?;
        let config = NetConfig {
            layout,
            input_size: self.input_size,
            classes: self.classes.len(),
        };
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        self.graph()?;
        let n = &self.normalisation;
        if n.mean.len() != 3 || n.std.len() != 3 {
            return Err("normalisation needs three means and three standard deviations".into());
        }
        if n.std.iter().any(|s| !(s.is_finite() && *s > 0.0))
            || n.mean.iter().any(|m| !m.is_finite())
        {
            return Err(format!("invalid normalisation {n:?}"));
        }
        Ok(())
    }

    /// The `key -> value` pairs stored in an exported ONNX model's `metadata_props`: `architecture`,
    /// `layout`, `input_size`, `num_classes`, `classes` (a JSON array of names), `mean` and `std` (JSON
    /// arrays), `producer`, and `test_top1` when known.
    pub fn onnx_metadata(&self) -> Vec<(String, String)> {
        let mut props = vec![
            ("architecture".to_string(), self.architecture.clone()),
            ("layout".to_string(), self.layout.clone()),
            ("input_size".to_string(), self.input_size.to_string()),
            ("num_classes".to_string(), self.classes.len().to_string()),
            ("classes".to_string(), json(&self.classes)),
            ("mean".to_string(), json(&self.normalisation.mean)),
            ("std".to_string(), json(&self.normalisation.std)),
            ("producer".to_string(), producer()),
        ];
        if let Some(test) = self.test {
            props.push(("test_top1".to_string(), format!("{:.2}", test.top1)));
        }
        props
    }
}

/// `hsconas <version>`.
pub fn producer() -> String {
    format!("hsconas {}", env!("CARGO_PKG_VERSION"))
}

/// Compact JSON of plain data.
fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|e| unreachable!("plain data always serialises: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ModelInfo {
        ModelInfo {
            architecture: ["shuffle3:1.0"; 20].join(","),
            layout: "A".into(),
            reference: None,
            input_size: 32,
            classes: (0..10).map(|i| format!("class{i}")).collect(),
            normalisation: Normalisation {
                mean: vec![0.49, 0.48, 0.45],
                std: vec![0.25, 0.24, 0.26],
            },
            epochs: Some(3),
            val: None,
            test: Some(Accuracy {
                top1: 41.5,
                top5: Some(88.0),
                images: 200,
            }),
        }
    }

    #[test]
    fn round_trips_and_describes_the_network() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(WEIGHTS_FILE), b"x").expect("write");
        info()
            .save(&dir.path().join(MODEL_INFO_FILE))
            .expect("save");
        let (weights, back) = ModelInfo::locate(dir.path()).expect("locate");
        assert_eq!(back, info());
        assert_eq!(weights, dir.path().join(WEIGHTS_FILE));
        assert_eq!(back.config().expect("config").classes, 10);
        let meta = back.onnx_metadata();
        let get = |k: &str| {
            meta.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            get("classes"),
            Some(
                r#"["class0","class1","class2","class3","class4","class5","class6","class7","class8","class9"]"#
            )
        );
        assert_eq!(get("test_top1"), Some("41.50"));
        assert_eq!(get("mean"), Some("[0.49,0.48,0.45]"));
    }

    #[test]
    fn describes_a_reference_network() {
        let mut info = info();
        info.architecture = "shufflenet_v2_x0_5".into();
        info.reference = Some(ReferenceInfo {
            small_input_stem: true,
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(MODEL_INFO_FILE);
        info.save(&path).expect("save");
        let back = ModelInfo::load(&path).expect("load");
        assert_eq!(back, info);
        let graph = back.graph().expect("graph");
        let expected = Reference::ShufflenetV2X0_5
            .build(32, 10, true)
            .expect("reference");
        assert_eq!(graph.macs(), expected.macs());
        assert_ne!(
            graph.macs(),
            Reference::ShufflenetV2X0_5
                .build(32, 10, false)
                .expect("reference")
                .macs()
        );

        info.architecture = "resnet50".into();
        info.save(&path).expect("save");
        let err = ModelInfo::load(&path).expect_err("unknown").to_string();
        assert!(err.contains("resnet50"), "{err}");
    }

    #[test]
    fn clear_errors_for_missing_or_bad_metadata() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = ModelInfo::locate(dir.path())
            .expect_err("no weights")
            .to_string();
        assert!(err.contains(WEIGHTS_FILE), "{err}");
        std::fs::write(dir.path().join(WEIGHTS_FILE), b"x").expect("write");
        let err = ModelInfo::locate(dir.path())
            .expect_err("no model.json")
            .to_string();
        assert!(err.contains(MODEL_INFO_FILE), "{err}");

        let mut bad = info();
        bad.architecture = "shuffle3:1.0".into();
        bad.save(&dir.path().join(MODEL_INFO_FILE)).expect("save");
        let err = ModelInfo::locate(dir.path())
            .expect_err("bad arch")
            .to_string();
        assert!(err.contains("architecture"), "{err}");

        let mut bad = info();
        bad.normalisation.std[1] = 0.0;
        bad.save(&dir.path().join(MODEL_INFO_FILE)).expect("save");
        let err = ModelInfo::locate(dir.path())
            .expect_err("bad std")
            .to_string();
        assert!(err.contains("normalisation"), "{err}");
    }
}
