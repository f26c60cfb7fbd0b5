//! Training checkpoints: one safetensors file holding the model's tensors (`model.<name>`), the optimiser's
//! momentum buffers (`momentum.<name>`) and the training state as JSON metadata, written atomically so that
//! a killed run leaves the previous checkpoint intact.

use crate::TrainError;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde::{de::DeserializeOwned, Serialize};
use tch::{nn, Device, Kind, Tensor};

const STATE_KEY: &str = "hsconas_training_state";

fn to_bytes(t: &Tensor) -> Result<(Vec<usize>, Vec<u8>), TrainError> {
    let t = t
        .detach()
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .contiguous();
    let shape: Vec<usize> = t.size().iter().map(|&d| d as usize).collect();
    let data = Vec::<f32>::try_from(t.view([-1]))?;
    Ok((shape, data.iter().flat_map(|v| v.to_le_bytes()).collect()))
}

/// Writes the checkpoint: every variable of `vs`, the momentum buffers and `state`.
pub fn save<S: Serialize>(
    path: &Path,
    vs: &nn::VarStore,
    momentum: &BTreeMap<String, Tensor>,
    state: &S,
) -> Result<(), TrainError> {
    let bytes = encode(vs, momentum, state)?;
    Ok(hsconas_foundation::write_atomic(path, &bytes)?)
}

/// The bytes [`save`] writes (a data-parallel run sends them from rank 0 to the other ranks).
pub fn encode<S: Serialize>(
    vs: &nn::VarStore,
    momentum: &BTreeMap<String, Tensor>,
    state: &S,
) -> Result<Vec<u8>, TrainError> {
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in &vars {
        let (shape, bytes) = to_bytes(t)?;
        owned.push((format!("model.{name}"), shape, bytes));
    }
    for (name, t) in momentum {
        let (shape, bytes) = to_bytes(t)?;
        owned.push((format!("momentum.{name}"), shape, bytes));
    }
    let views = owned
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes).map(|v| (name.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let metadata = HashMap::from([(STATE_KEY.to_string(), serde_json::to_string(state)?)]);
    Ok(safetensors::serialize(views, Some(metadata))?)
}

/// What a checkpoint holds, read back.
pub struct Loaded<S> {
    /// The training state.
    pub state: S,
    /// Momentum buffers by parameter name.
    pub momentum: BTreeMap<String, Tensor>,
}

/// Reads a checkpoint into `vs` (every variable must be there with its shape) and returns the state and
/// the momentum buffers (on `device`).
pub fn load<S: DeserializeOwned>(
    path: &Path,
    vs: &mut nn::VarStore,
) -> Result<Loaded<S>, TrainError> {
    decode(path, &read_file(path)?, vs)
}

/// [`load`] from the bytes of a checkpoint (`path` names them in errors).
pub fn decode<S: DeserializeOwned>(
    path: &Path,
    bytes: &[u8],
    vs: &mut nn::VarStore,
) -> Result<Loaded<S>, TrainError> {
    let file = SafeTensors::deserialize(bytes).map_err(|source| corrupt(path, source))?;
    let state: S = state_of(path, bytes)?;
    let device = vs.device();
    let read = |name: &str| -> Result<Tensor, TrainError> {
        let view = file.tensor(name)?;
        if view.dtype() != Dtype::F32 {
            return Err(TrainError::Mismatch {
                path: path.to_path_buf(),
                message: format!("tensor '{name}' is {:?}, expected F32", view.dtype()),
            });
        }
        let data: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let dims: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        Ok(Tensor::from_slice(&data)
            .view(dims.as_slice())
            .to_device(device))
    };
    tch::no_grad(|| -> Result<(), TrainError> {
        for (name, t) in vs.variables() {
            let value = read(&format!("model.{name}")).map_err(|_| TrainError::Mismatch {
                path: path.to_path_buf(),
                message: format!("the checkpoint lacks '{name}' (another network?)"),
            })?;
            if value.size() != t.size() {
                return Err(TrainError::Mismatch {
                    path: path.to_path_buf(),
                    message: format!(
                        "'{name}' has shape {:?}, the network needs {:?} (another layout or input size?)",
                        value.size(),
                        t.size()
                    ),
                });
            }
            t.shallow_clone().copy_(&value);
        }
        Ok(())
    })?;
    let mut momentum = BTreeMap::new();
    for name in file.names() {
        if let Some(param) = name.strip_prefix("momentum.") {
            momentum.insert(param.to_string(), read(name)?);
        }
    }
    Ok(Loaded { state, momentum })
}

/// Reads only the training state of a checkpoint (to learn which network to build before loading it).
pub fn read_state<S: DeserializeOwned>(path: &Path) -> Result<S, TrainError> {
    state_of(path, &read_file(path)?)
}

/// The bytes of the checkpoint at `path`.
pub fn read_file(path: &Path) -> Result<Vec<u8>, TrainError> {
    std::fs::read(path).map_err(|source| {
        TrainError::Fs(hsconas_foundation::FsError::new(
            "reading checkpoint",
            path,
            source,
        ))
    })
}

fn corrupt(path: &Path, source: safetensors::SafeTensorError) -> TrainError {
    TrainError::Corrupt {
        path: path.to_path_buf(),
        source,
    }
}

/// The training state in the header of the checkpoint `bytes` read from `path`.
fn state_of<S: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<S, TrainError> {
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|source| corrupt(path, source))?;
    let json = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(STATE_KEY))
        .ok_or_else(|| TrainError::NotACheckpoint {
            path: path.to_path_buf(),
        })?;
    serde_json::from_str(json).map_err(|source| TrainError::UnreadableState {
        path: path.to_path_buf(),
        source,
    })
}
