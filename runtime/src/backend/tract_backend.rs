//! `tract`: pure Rust, always available. Models with symbolic dimensions are optimised for the concrete
//! input shape when they are first run or prepared (and again only if that shape changes).

use std::sync::Arc;

use tract_onnx::pb::tensor_shape_proto::dimension;
use tract_onnx::pb::type_proto;
use tract_onnx::pb::ValueInfoProto;
use tract_onnx::prelude::*;

use super::{check_inputs, Backend, ExecutionProvider, HostTensor, LoadedModel, TensorSpec};
use crate::RuntimeError;

/// The `tract` backend.
#[derive(Debug, Clone)]
pub struct TractBackend {
    optimize: bool,
}

impl TractBackend {
    /// With `optimize`, models run as tract's optimised plan (decluttered and codegen'd); otherwise as the
    /// decluttered typed model.
    pub fn new(optimize: bool) -> TractBackend {
        TractBackend { optimize }
    }
}

type Plan = Arc<TypedSimplePlan>;

/// The tract release this build links (`tract-onnx` in `Cargo.lock`, recorded by `build.rs`).
const TRACT_VERSION: &str = env!("HSCONAS_TRACT_VERSION");

struct TractModel {
    model: InferenceModel,
    optimize: bool,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
    /// The plan and the input shapes it was made for.
    plan: Option<(Vec<Vec<usize>>, Plan, TypedSimpleState)>,
    prepared: Option<TVec<TValue>>,
}

fn bad_model(e: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::BadModel(format!("{e:#}"))
}

fn spec_of(info: &ValueInfoProto) -> TensorSpec {
    let shape = match info.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => t
            .shape
            .as_ref()
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match d.value {
                        Some(dimension::Value::DimValue(n)) if n > 0 => Some(n as usize),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        None => Vec::new(),
    };
    TensorSpec {
        name: info.name.clone(),
        shape,
    }
}

impl Backend for TractBackend {
    fn version(&self) -> String {
        format!("tract {TRACT_VERSION}")
    }

    fn load(&self, onnx_bytes: &[u8]) -> Result<Box<dyn LoadedModel>, RuntimeError> {
        let onnx = tract_onnx::onnx();
        let proto = onnx
            .proto_model_for_read(&mut &onnx_bytes[..])
            .map_err(bad_model)?;
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| bad_model("the model has no graph"))?;
        let initializers: std::collections::HashSet<&str> =
            graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let inputs: Vec<TensorSpec> = graph
            .input
            .iter()
            .filter(|i| !initializers.contains(i.name.as_str()))
            .map(spec_of)
            .collect();
        let outputs: Vec<TensorSpec> = graph.output.iter().map(spec_of).collect();
        let model = onnx.model_for_proto_model(&proto).map_err(bad_model)?;
        let mut loaded = TractModel {
            model,
            optimize: self.optimize,
            inputs,
            outputs,
            plan: None,
            prepared: None,
        };
        // Fully specified models are planned now, so that load errors surface at load time.
        if loaded
            .inputs
            .iter()
            .all(|s| s.shape.iter().all(Option::is_some))
        {
            let shapes = loaded.inputs.iter().map(|s| s.concrete_shape(1)).collect();
            loaded.plan_for(shapes)?;
        }
        Ok(Box::new(loaded))
    }
}

impl TractModel {
    fn plan_for(&mut self, shapes: Vec<Vec<usize>>) -> Result<(), RuntimeError> {
        if self.plan.as_ref().is_some_and(|(s, _, _)| *s == shapes) {
            return Ok(());
        }
        let mut model = self.model.clone();
        for (i, shape) in shapes.iter().enumerate() {
            model = model
                .with_input_fact(i, f32::fact(shape).into())
                .map_err(bad_model)?;
        }
        let typed = if self.optimize {
            model.into_optimized()
        } else {
            model.into_typed().and_then(|m| m.into_decluttered())
        }
        .map_err(bad_model)?;
        let plan = typed.into_runnable().map_err(bad_model)?;
        let state = TypedSimpleState::new(&plan).map_err(bad_model)?;
        self.plan = Some((shapes, plan, state));
        Ok(())
    }

    fn to_values(inputs: &[HostTensor]) -> Result<TVec<TValue>, RuntimeError> {
        inputs
            .iter()
            .map(|t| {
                tract_ndarray::ArrayD::from_shape_vec(t.shape.clone(), t.data.clone())
                    .map(|a| a.into_tensor().into_tvalue())
                    .map_err(|e| RuntimeError::BadInput(e.to_string()))
            })
            .collect()
    }

    fn state(&mut self) -> &mut TypedSimpleState {
        match self.plan.as_mut() {
            Some((_, _, state)) => state,
            None => unreachable!("plan_for runs before every use of the state"),
        }
    }
}

impl LoadedModel for TractModel {
    fn inputs(&self) -> &[TensorSpec] {
        &self.inputs
    }

    fn outputs(&self) -> &[TensorSpec] {
        &self.outputs
    }

    fn provider(&self) -> ExecutionProvider {
        ExecutionProvider::Cpu
    }

    fn run(&mut self, inputs: &[HostTensor]) -> Result<Vec<HostTensor>, RuntimeError> {
        check_inputs(&self.inputs, inputs)?;
        self.plan_for(inputs.iter().map(|t| t.shape.clone()).collect())?;
        let values = Self::to_values(inputs)?;
        let outputs = self
            .state()
            .run(values)
            .map_err(|e| RuntimeError::Inference(format!("{e:#}")))?;
        outputs
            .into_iter()
            .map(|v| {
                let t = v.into_tensor();
                let view = t
                    .to_plain_array_view::<f32>()
                    .map_err(|e| RuntimeError::Inference(format!("{e:#}")))?;
                Ok(HostTensor {
                    shape: view.shape().to_vec(),
                    data: view.iter().copied().collect(),
                })
            })
            .collect()
    }

    fn prepare(&mut self, inputs: &[HostTensor]) -> Result<(), RuntimeError> {
        check_inputs(&self.inputs, inputs)?;
        self.plan_for(inputs.iter().map(|t| t.shape.clone()).collect())?;
        self.prepared = Some(Self::to_values(inputs)?);
        Ok(())
    }

    fn run_prepared(&mut self) -> Result<(), RuntimeError> {
        let values = self
            .prepared
            .clone()
            .ok_or_else(|| RuntimeError::BadInput("run_prepared before prepare".into()))?;
        self.state()
            .run(values)
            .map_err(|e| RuntimeError::Inference(format!("{e:#}")))?;
        Ok(())
    }
}
