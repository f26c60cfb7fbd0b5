//! The agent's endpoints on top of its small HTTP server ([`super::http`]: a few request threads, no async
//! runtime; it must stay small enough to build on a Jetson).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::http::{BodyError, HttpRequest, HttpServer};

use super::settings::ProfileSettings;
use crate::backend::{self, BackendConfig, BackendKind, HostTensor, LoadedModel, TensorSpec};
use crate::measure_job::{run_in_worker, MeasureJob, MeasureOutcome, WorkerError};
use crate::{Fingerprint, RuntimeError};

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Address to listen on (loopback unless told otherwise).
    pub listen: String,
    /// When set, every call needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Longest a measurement may run before its worker is killed.
    pub worker_timeout: Duration,
    /// The executable that runs `<exe> worker` (normally `hsconas-runtime` itself).
    pub worker_exe: PathBuf,
    /// Request-handling threads.
    pub threads: usize,
    /// Longest a connection may stay silent while its request is read (headers or body); a stalled client
    /// is dropped instead of holding a request thread.
    pub read_timeout: Duration,
}

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
}

struct Deployed {
    info: DeployedModelInfo,
    model: Mutex<Box<dyn LoadedModel>>,
}

struct State {
    config: AgentConfig,
    models: Mutex<BTreeMap<String, Arc<Deployed>>>,
    /// Held while a measurement runs: two timings never overlap.
    measuring: Mutex<()>,
    scratch: tempfile::TempDir,
}

/// A bound, not yet serving, agent.
pub struct Agent {
    server: HttpServer,
    state: Arc<State>,
}

/// An HTTP error answer.
struct ApiError {
    status: u16,
    message: String,
}

impl ApiError {
    fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> ApiError {
        let status = match e {
            RuntimeError::BadModel(_) | RuntimeError::BadInput(_) | RuntimeError::BadSetting(_) => {
                400
            }
            RuntimeError::OrtLibrary { .. } => 503,
            _ => 500,
        };
        ApiError::new(status, e.to_string())
    }
}

type Answer = Result<(u16, Value), ApiError>;

impl Agent {
    /// Binds the listening socket.
    pub fn bind(config: AgentConfig) -> Result<Agent, RuntimeError> {
        if config.threads == 0 || config.max_body_bytes == 0 {
            return Err(RuntimeError::BadSetting(
                "threads and the body limit must be at least 1".into(),
            ));
        }
        let server = HttpServer::bind(&config.listen, config.threads, config.read_timeout)
            .map_err(|e| {
                RuntimeError::BadSetting(format!("cannot listen on {}: {e}", config.listen))
            })?;
        let scratch = tempfile::tempdir().map_err(|source| {
            RuntimeError::Fs(hsconas_foundation::FsError::new(
                "creating a scratch folder in",
                &std::env::temp_dir(),
                source,
            ))
        })?;
        let state = State {
            config,
            models: Mutex::new(BTreeMap::new()),
            measuring: Mutex::new(()),
            scratch,
        };
        Ok(Agent {
            server,
            state: Arc::new(state),
        })
    }

    /// The address it listens on (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.server.local_addr().ok()
    }

    /// Serves until the process ends.
    pub fn serve(self) {
        let state = self.state;
        self.server
            .serve(Arc::new(move |request: &mut HttpRequest| {
                handle(&state, request)
            }));
    }
}

fn handle(state: &State, request: &mut HttpRequest) -> (u16, Vec<u8>) {
    let (method, url) = (request.method.clone(), request.url.clone());
    let (status, body) = match route(state, request, &method, &url) {
        Ok((status, body)) => (status, body),
        Err(e) => (e.status, json!({ "error": e.message, "status": e.status })),
    };
    tracing::info!("{method} {url} -> {status}");
    (status, body.to_string().into_bytes())
}

fn route(state: &State, request: &mut HttpRequest, method: &str, url: &str) -> Answer {
    authorize(state, request)?;
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method, parts.as_slice()) {
        ("GET", ["v1", "health"]) => Ok((
            200,
            json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }),
        )),
        ("GET", ["v1", "device"]) => Ok((200, device())),
        ("POST", ["v1", "profile"]) => profile(state, request, query),
        ("POST", ["v1", "profile", "group"]) => profile_group(state, request, query),
        ("GET", ["v1", "models"]) => {
            let models = lock(&state.models)?;
            Ok((
                200,
                json!(models.values().map(|d| &d.info).collect::<Vec<_>>()),
            ))
        }
        ("PUT", ["v1", "models", name]) => deploy(state, request, name, query),
        ("POST", ["v1", "models", name, "infer"]) => infer(state, request, name),
        ("DELETE", ["v1", "models", name]) => match lock(&state.models)?.remove(*name) {
            Some(_) => Ok((200, json!({ "deleted": name }))),
            None => Err(not_deployed(name)),
        },
        (_, ["v1", "health" | "device" | "profile" | "models"])
        | (_, ["v1", "profile", "group"] | ["v1", "models", _] | ["v1", "models", _, "infer"]) => {
            Err(ApiError::new(
                405,
                format!("{method} is not allowed on {path}"),
            ))
        }
        _ => Err(ApiError::new(404, format!("no such endpoint: {path}"))),
    }
}

fn authorize(state: &State, request: &HttpRequest) -> Result<(), ApiError> {
    let Some(token) = &state.config.token else {
        return Ok(());
    };
    match request
        .header("Authorization")
        .and_then(|v| v.trim().strip_prefix("Bearer "))
    {
        // Constant time, so the answer's timing says nothing about how much of a guess was right.
        Some(t)
            if bool::from(subtle::ConstantTimeEq::ct_eq(
                t.as_bytes(),
                token.as_bytes(),
            )) =>
        {
            Ok(())
        }
        Some(_) => Err(ApiError::new(401, "wrong token")),
        None => Err(ApiError::new(
            401,
            "this agent needs 'Authorization: Bearer <token>'",
        )),
    }
}

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>, ApiError> {
    m.lock()
        .map_err(|_| ApiError::new(500, "internal state poisoned by an earlier failure"))
}

fn not_deployed(name: &str) -> ApiError {
    ApiError::new(404, format!("no model named '{name}' is deployed"))
}

/// Reads the body, refusing more than the limit (413), fewer bytes than announced or a stalled upload
/// (400), a body without a length (411) and an empty one (400).
fn read_body(state: &State, request: &mut HttpRequest) -> Result<Vec<u8>, ApiError> {
    let limit = state.config.max_body_bytes;
    let body = request.read_body(limit).map_err(|e| match e {
        BodyError::TooLarge => ApiError::new(
            413,
            format!("the body is larger than this agent's limit of {limit} bytes"),
        ),
        BodyError::Truncated {
            got,
            announced,
            reason,
        } => ApiError::new(
            400,
            format!("truncated body: {got} of {announced} announced bytes arrived ({reason})"),
        ),
        BodyError::NoLength => ApiError::new(411, "send the body with a Content-Length"),
    })?;
    if body.is_empty() {
        return Err(ApiError::new(400, "the body is empty"));
    }
    Ok(body)
}

fn valid_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            400,
            format!("invalid model name '{name}': use 1 to 64 of A-Z a-z 0-9 . _ -"),
        ))
    }
}

fn device() -> Value {
    json!({ "fingerprint": Fingerprint::detect(), "backends": backend::availability() })
}

/// Most models one `POST /v1/profile/group` may carry.
pub const MAX_GROUP: usize = 256;

fn profile(state: &State, request: &mut HttpRequest, query: &str) -> Answer {
    let settings = ProfileSettings::from_query(query).map_err(|e| ApiError::new(400, e))?;
    let body = read_body(state, request)?;
    let mut outcomes = measure_in_worker(state, settings, &[&body])?;
    Ok((200, json!(outcomes.remove(0))))
}

/// `sizes=N1,N2,..` splits the body into models; the other query parameters are the settings.
fn profile_group(state: &State, request: &mut HttpRequest, query: &str) -> Answer {
    let (mut sizes, mut rest) = (None, Vec::new());
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.strip_prefix("sizes=") {
            Some(list) => sizes = Some(list),
            None => rest.push(pair),
        }
    }
    let sizes: Vec<usize> = sizes
        .ok_or_else(|| {
            ApiError::new(
                400,
                "missing query parameter 'sizes' (bytes of each model, comma-separated)",
            )
        })?
        .split(',')
        .map(|n| n.parse::<usize>().ok().filter(|&n| n > 0))
        .collect::<Option<_>>()
        .ok_or_else(|| {
            ApiError::new(
                400,
                "query parameter 'sizes': expected positive whole numbers",
            )
        })?;
    if sizes.len() > MAX_GROUP {
        return Err(ApiError::new(
            400,
            format!("{} models in one group; at most {MAX_GROUP}", sizes.len()),
        ));
    }
    let settings =
        ProfileSettings::from_query(&rest.join("&")).map_err(|e| ApiError::new(400, e))?;
    // Checked: sizes near usize::MAX must be a 400, not an overflow.
    let total = sizes
        .iter()
        .try_fold(0usize, |sum, &n| sum.checked_add(n))
        .ok_or_else(|| ApiError::new(400, "query parameter 'sizes': the sizes overflow"))?;
    let body = read_body(state, request)?;
    if total != body.len() {
        return Err(ApiError::new(
            400,
            format!(
                "the sizes add up to {total} bytes but the body has {}",
                body.len()
            ),
        ));
    }
    let mut parts = Vec::with_capacity(sizes.len());
    let mut start = 0;
    for n in sizes {
        parts.push(&body[start..start + n]);
        start += n;
    }
    let outcomes = measure_in_worker(state, settings, &parts)?;
    Ok((200, json!({ "results": outcomes })))
}

/// Measures the models together in a worker process (one at a time on this agent), with the time limit
/// scaled by their number.
fn measure_in_worker(
    state: &State,
    settings: ProfileSettings,
    models: &[&[u8]],
) -> Result<Vec<MeasureOutcome>, ApiError> {
    let _serial = lock(&state.measuring)?;
    let mut paths = Vec::with_capacity(models.len());
    for (i, bytes) in models.iter().enumerate() {
        let path = state.scratch.path().join(format!("profile-{i}.onnx"));
        std::fs::write(&path, bytes)
            .map_err(|e| ApiError::new(500, format!("storing the model: {e}")))?;
        paths.push(path);
    }
    let mut engine = settings.engine;
    engine.tensorrt_cache = Some(state.scratch.path().join("tensorrt-cache"));
    let job = MeasureJob {
        models: paths,
        engine,
        protocol: settings.protocol,
        batch: settings.batch,
    };
    let timeout = state.config.worker_timeout * models.len() as u32;
    match run_in_worker(&state.config.worker_exe, &job, timeout) {
        Ok(outcomes) => Ok(outcomes),
        Err(WorkerError::Job(message)) => Err(ApiError::new(400, message)),
        Err(e @ WorkerError::Timeout(_)) => Err(ApiError::new(504, e.to_string())),
        Err(e) => Err(ApiError::new(500, e.to_string())),
    }
}

fn deploy(state: &State, request: &mut HttpRequest, name: &str, query: &str) -> Answer {
    valid_name(name)?;
    let kind = match query.strip_prefix("backend=") {
        Some(k) => k
            .parse::<BackendKind>()
            .map_err(|e| ApiError::new(400, e.to_string()))?,
        None if query.is_empty() => BackendKind::Ort,
        None => {
            return Err(ApiError::new(
                400,
                format!("unknown query '{query}' (only backend=ort|tract)"),
            ))
        }
    };
    let body = read_body(state, request)?;
    let engine = backend::build(&BackendConfig {
        kind,
        ..BackendConfig::default()
    })?;
    let model = engine.load(&body)?;
    let info = DeployedModelInfo {
        name: name.to_string(),
        backend: engine.version(),
        inputs: model.inputs().to_vec(),
        outputs: model.outputs().to_vec(),
        bytes: body.len(),
    };
    lock(&state.models)?.insert(
        name.to_string(),
        Arc::new(Deployed {
            info: info.clone(),
            model: Mutex::new(model),
        }),
    );
    Ok((201, json!(info)))
}

#[derive(Deserialize)]
struct InferRequest {
    inputs: Vec<HostTensor>,
}

fn infer(state: &State, request: &mut HttpRequest, name: &str) -> Answer {
    let deployed = lock(&state.models)?
        .get(name)
        .cloned()
        .ok_or_else(|| not_deployed(name))?;
    let body = read_body(state, request)?;
    let req: InferRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(400, format!("malformed infer request: {e}")))?;
    let outputs = lock(&deployed.model)?.run(&req.inputs)?;
    Ok((200, json!({ "outputs": outputs })))
}
