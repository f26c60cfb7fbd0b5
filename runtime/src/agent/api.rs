//! What every endpoint shares: the agent's state, the JSON error answer and the measurement lock that keeps
//! inference and deployment off the device while it is timed.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{OwnedRwLockReadGuard, RwLock, Semaphore};

use crate::backend::{LoadedModel, TensorSpec};
use crate::RuntimeError;

/// A deployed model, as listed by `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployedModelInfo {
    /// Name it was deployed under.
    pub name: String,
    /// Engine and version.
    pub backend: String,
    /// Inputs.
    pub inputs: Vec<TensorSpec>,
    /// Outputs.
    pub outputs: Vec<TensorSpec>,
    /// Size of the ONNX file.
    pub bytes: usize,
    /// ONNX Runtime runs quantised models with its U8U8 kernels (`session.x64quantprecision`: for x86
    /// CPUs without VNNI and INT8 models with full-range weights); absent in answers of older agents.
    #[serde(default)]
    pub x64_quant_precision: bool,
}

/// A model ready for inference.
pub(super) struct Deployed {
    pub info: DeployedModelInfo,
    pub model: Mutex<Box<dyn LoadedModel>>,
}

/// Bounds on how a request body arrives.
#[derive(Debug, Clone, Copy)]
pub(super) struct BodyLimits {
    /// Largest accepted body.
    pub max_bytes: usize,
    /// Longest silence while the body arrives.
    pub read_timeout: Duration,
    /// Longest the whole body may take.
    pub request_timeout: Duration,
}

/// Everything the handlers share.
pub(super) struct State {
    pub token: Option<String>,
    pub body: BodyLimits,
    pub worker_exe: PathBuf,
    pub worker_timeout: Duration,
    pub models: Mutex<BTreeMap<String, Arc<Deployed>>>,
    /// Written while a measurement runs (measurements queue for it); read while a model is deployed or
    /// run, which is refused while a measurement holds or awaits it.
    pub measuring: Arc<RwLock<()>>,
    /// Permits for requests in flight (health and device checks need none).
    pub in_flight: Arc<Semaphore>,
    pub scratch: tempfile::TempDir,
}

impl State {
    /// Permission to use the device outside a measurement, refused (503) while one runs or waits.
    pub fn outside_measurement(&self) -> Result<OwnedRwLockReadGuard<()>, ApiError> {
        self.measuring.clone().try_read_owned().map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "a measurement is running on this device; inference and deployment are refused until \
                 it ends so that they cannot disturb its timing (retry later)",
            )
            .retry_after(5)
        })
    }

    /// The deployed models.
    pub fn models(&self) -> Result<MutexGuard<'_, BTreeMap<String, Arc<Deployed>>>, ApiError> {
        lock(&self.models)
    }
}

/// An error answer: `{"error": message, "status": code}`.
#[derive(Debug)]
pub(super) struct ApiError {
    pub status: StatusCode,
    pub message: String,
    retry_after_s: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after_s: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// Adds `Retry-After: seconds`.
    pub fn retry_after(mut self, seconds: u32) -> ApiError {
        self.retry_after_s = Some(seconds);
        self
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> ApiError {
        let status = match e {
            RuntimeError::BadModel(_)
            | RuntimeError::BadInput(_)
            | RuntimeError::BadSetting(_)
            | RuntimeError::Vocabulary(_) => StatusCode::BAD_REQUEST,
            RuntimeError::OrtLibrary { .. } => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<hsconas_vocabulary::VocabularyError> for ApiError {
    fn from(e: hsconas_vocabulary::VocabularyError) -> ApiError {
        ApiError::from(RuntimeError::from(e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.message, "status": self.status.as_u16() });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(s) = self.retry_after_s {
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}

/// A handler's result.
pub(super) type Answer = Result<Response, ApiError>;

pub(super) fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, ApiError> {
    m.lock()
        .map_err(|_| ApiError::internal("internal state poisoned by an earlier failure"))
}

pub(super) fn not_deployed(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no model named '{name}' is deployed"),
    )
}

/// Model names: 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with a dot.
pub(super) fn valid_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "invalid model name '{name}': use 1 to 64 of A-Z a-z 0-9 . _ - (not starting with '.')"
        )))
    }
}

/// Runs blocking work (a model load or run, a worker process) off the request threads; a panic in it is a
/// 500.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal(format!("the work failed: {e}")))?
}
