//! The HTTP agent that runs on the device, and the Rust client the host uses to drive it.
//!
//! The API (paths, bodies, status codes, limits) is documented in one place, `docs/agent-api.md`; in short:
//!
//! | method and path | body | answer |
//! | --- | --- | --- |
//! | `GET /v1/health` | | `{"status": "ok", "version": ..}` |
//! | `GET /v1/device` | | device fingerprint and backends |
//! | `POST /v1/profile?<settings>` | ONNX bytes | [`MeasureOutcome`](crate::measure_job::MeasureOutcome) |
//! | `POST /v1/profile/group?sizes=N1,N2,..&<settings>` | the ONNX files, concatenated (at most [`MAX_GROUP`]) | `{"results": [MeasureOutcome, ..]}` |
//! | `PUT /v1/models/{name}?backend=ort\|tract` | ONNX bytes | [`DeployedModelInfo`] (201) |
//! | `GET /v1/models` | | `[DeployedModelInfo]` |
//! | `POST /v1/models/{name}/infer` | JSON `{"inputs": [..]}` or safetensors ([`SAFETENSORS`]) | the outputs, in the format `Accept` names, else the request's |
//! | `DELETE /v1/models/{name}` | | `{"deleted": name}` |
//!
//! Every error is `{"error": message, "status": code}`. Measurements are serialised, each runs in a worker
//! process with a time limit, and inference and deployment are refused (503) while one runs.

mod api;
mod body;
mod client;
mod measure;
mod models;
mod routes;
mod server;
mod settings;

pub use api::DeployedModelInfo;
pub use client::{AgentClient, ClientError};
pub use measure::MAX_GROUP;
pub use models::SAFETENSORS;
pub use server::{Agent, AgentConfig, TlsFiles};
pub use settings::MeasureSettings;
