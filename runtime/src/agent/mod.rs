//! The HTTP agent that runs on the device, and the Rust client the host uses to drive it.
//!
//! Endpoints (JSON unless noted; every error is `{"error": message, "status": code}` with a 4xx/5xx code):
//!
//! | method and path | body | answer |
//! | --- | --- | --- |
//! | `GET /v1/health` | | `{"status": "ok", "version": ..}` |
//! | `GET /v1/device` | | device fingerprint and backends |
//! | `POST /v1/profile?<settings>` | ONNX bytes | [`MeasureOutcome`](crate::measure_job::MeasureOutcome) |
//! | `POST /v1/profile/group?sizes=N1,N2,..&<settings>` | the ONNX files, concatenated (at most [`MAX_GROUP`]) | `{"results": [MeasureOutcome, ..]}`, measured together in interleaved rounds |
//! | `PUT /v1/models/{name}?backend=ort\|tract` | ONNX bytes | [`DeployedModelInfo`] (201) |
//! | `GET /v1/models` | | `[DeployedModelInfo]` |
//! | `POST /v1/models/{name}/infer` | `{"inputs": [{"shape": [..], "data": [..]}]}` | `{"outputs": [..]}` |
//! | `DELETE /v1/models/{name}` | | `{"deleted": name}` |
//!
//! Profile settings are query parameters: `backend`, `provider` (comma-separated), `threads`, `optimize`,
//! `warmup`, `runs`, `min_time_ms`, `max_runs`, `seed`, `batch`, `burst`. When the agent has a token, every call
//! needs `Authorization: Bearer <token>`. Measurements are serialised (two never overlap) and each runs in a
//! worker process with a time limit.

mod client;
mod http;
mod server;
mod settings;

pub use client::{AgentClient, ClientError};
pub use server::{Agent, AgentConfig, DeployedModelInfo, MAX_GROUP};
pub use settings::ProfileSettings;
