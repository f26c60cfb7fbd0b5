//! Deployed models: `PUT`, `GET`, `DELETE /v1/models/..` and inference, with tensors as JSON or as
//! safetensors (chosen by `Content-Type`, answered as `Accept` asks or in the request's format).

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Path, RawQuery, State as Shared};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hsconas_foundation::Weights;
use serde::Deserialize;
use serde_json::json;

use super::api::{
    blocking, lock, not_deployed, valid_name, Answer, ApiError, Deployed, DeployedModelInfo, State,
};
use super::body;
use crate::backend::{self, BackendConfig, HostTensor, TensorSpec};
use hsconas_vocabulary::Engine;

/// `Content-Type` of tensors sent as safetensors (names are the model's input and output names).
pub const SAFETENSORS: &str = "application/x-safetensors";

/// How tensors travel.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    Json,
    Safetensors,
}

impl Format {
    fn named(value: &str) -> Option<Format> {
        let mime = value.split(';').next().unwrap_or("").trim();
        match mime.to_ascii_lowercase().as_str() {
            "application/json" => Some(Format::Json),
            "application/x-safetensors" | "application/safetensors" => Some(Format::Safetensors),
            _ => None,
        }
    }
}

fn header(headers: &HeaderMap, name: axum::http::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub(super) async fn list(Shared(state): Shared<Arc<State>>) -> Answer {
    let models = state.models()?;
    let infos: Vec<&DeployedModelInfo> = models.values().map(|d| &d.info).collect();
    Ok(Json(json!(infos)).into_response())
}

pub(super) async fn delete(Shared(state): Shared<Arc<State>>, Path(name): Path<String>) -> Answer {
    match state.models()?.remove(&name) {
        Some(_) => Ok(Json(json!({ "deleted": name })).into_response()),
        None => Err(not_deployed(&name)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeployQuery {
    backend: Option<String>,
    /// ONNX Runtime's U8U8 kernels for quantised models (`x64_quant_precision=true`).
    x64_quant_precision: Option<bool>,
}

pub(super) async fn deploy(
    Shared(state): Shared<Arc<State>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    valid_name(&name)?;
    let query: DeployQuery =
        serde_urlencoded::from_str(query.as_deref().unwrap_or("")).map_err(|e| {
            ApiError::bad_request(format!(
                "query: {e} (only backend=ort|tract and x64_quant_precision=true|false)"
            ))
        })?;
    let kind = match query.backend {
        Some(k) => k.parse::<Engine>()?,
        None => Engine::Ort,
    };
    let x64_quant_precision = query.x64_quant_precision.unwrap_or(false);
    if x64_quant_precision && kind != Engine::Ort {
        return Err(ApiError::bad_request(
            "x64_quant_precision is an ONNX Runtime session option: deploy with backend=ort",
        ));
    }
    // Refused before the upload when a measurement runs, and again before the load if one began meanwhile.
    drop(state.outside_measurement()?);
    let onnx = body::read_all(body, &headers, state.body).await?;
    let device = state.outside_measurement()?;
    let (info, model) = blocking(move || {
        let _device = device;
        let engine = backend::build(&BackendConfig {
            kind,
            x64_quant_precision,
            ..BackendConfig::default()
        })?;
        let model = engine.load(&onnx)?;
        let info = DeployedModelInfo {
            name,
            backend: engine.version(),
            inputs: model.inputs().to_vec(),
            outputs: model.outputs().to_vec(),
            bytes: onnx.len(),
            x64_quant_precision,
        };
        Ok((info, model))
    })
    .await?;
    state.models()?.insert(
        info.name.clone(),
        Arc::new(Deployed {
            info: info.clone(),
            model: Mutex::new(model),
        }),
    );
    Ok((StatusCode::CREATED, Json(json!(info))).into_response())
}

#[derive(Deserialize)]
struct JsonInputs {
    inputs: Vec<HostTensor>,
}

pub(super) async fn infer(
    Shared(state): Shared<Arc<State>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Answer {
    let deployed = state
        .models()?
        .get(&name)
        .cloned()
        .ok_or_else(|| not_deployed(&name))?;
    let request_format = match header(&headers, CONTENT_TYPE) {
        None => Format::Json,
        Some(t) => Format::named(t).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Content-Type '{t}': send application/json or {SAFETENSORS}"),
            )
        })?,
    };
    let answer_format = header(&headers, ACCEPT)
        .and_then(|accept| accept.split(',').find_map(Format::named))
        .unwrap_or(request_format);
    drop(state.outside_measurement()?);
    let bytes = body::read_all(body, &headers, state.body).await?;
    let inputs = match request_format {
        Format::Json => {
            serde_json::from_slice::<JsonInputs>(&bytes)
                .map_err(|e| ApiError::bad_request(format!("malformed infer request: {e}")))?
                .inputs
        }
        Format::Safetensors => by_name(&bytes, &deployed.info.inputs)?,
    };
    drop(bytes);
    let device = state.outside_measurement()?;
    let run = deployed.clone();
    let outputs = blocking(move || {
        let _device = device;
        Ok(lock(&run.model)?.run(&inputs)?)
    })
    .await?;
    Ok(match answer_format {
        Format::Json => Json(json!({ "outputs": outputs })).into_response(),
        Format::Safetensors => safetensors_answer(&deployed.info.outputs, outputs),
    })
}

/// The model's inputs, in order, from a safetensors file whose tensors carry the inputs' names.
fn by_name(bytes: &[u8], specs: &[TensorSpec]) -> Result<Vec<HostTensor>, ApiError> {
    let mut named = Weights::from_safetensors_bytes(bytes)
        .map_err(|e| ApiError::bad_request(format!("malformed safetensors body: {e}")))?;
    let inputs = specs
        .iter()
        .map(|spec| {
            named.remove(&spec.name).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "the safetensors body has no tensor named '{}' (the model's inputs: {})",
                    spec.name,
                    names(specs)
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if let Some((extra, _)) = named.iter().next() {
        return Err(ApiError::bad_request(format!(
            "the safetensors body has a tensor '{extra}' that is not an input of the model (its inputs: {})",
            names(specs)
        )));
    }
    Ok(inputs)
}

fn names(specs: &[TensorSpec]) -> String {
    specs
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn safetensors_answer(specs: &[TensorSpec], outputs: Vec<HostTensor>) -> Response {
    let mut named = Weights::default();
    for (spec, tensor) in specs.iter().zip(outputs) {
        named.insert(spec.name.clone(), tensor);
    }
    let mut response = named.to_safetensors_bytes().into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(SAFETENSORS));
    response
}
