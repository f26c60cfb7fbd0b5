//! A small blocking client for the agent, used by the host to measure on a remote device.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::server::DeployedModelInfo;
use super::settings::ProfileSettings;
use crate::backend::{BackendKind, HostTensor};
use crate::measure_job::MeasureOutcome;

/// Why a call to the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The agent answered with an error status and message.
    #[error("the agent answered {status}: {message}")]
    Http {
        /// HTTP status.
        status: u16,
        /// The agent's message.
        message: String,
    },
    /// The agent could not be reached.
    #[error("cannot reach the agent at {url}: {reason}")]
    Transport {
        /// The URL called.
        url: String,
        /// Why.
        reason: String,
    },
    /// The answer was not what the API promises.
    #[error("unexpected answer from the agent: {0}")]
    Decode(String),
}

/// Talks to one agent.
#[derive(Debug, Clone)]
pub struct AgentClient {
    base: String,
    token: Option<String>,
    http: ureq::Agent,
}

impl AgentClient {
    /// A client for `base_url` (e.g. `http://jetson.local:7878`), with the agent's token if it has one.
    /// `timeout` bounds each call (a profile call lasts as long as its measurement).
    pub fn new(base_url: &str, token: Option<String>, timeout: Duration) -> AgentClient {
        let http = ureq::AgentBuilder::new().timeout(timeout).build();
        AgentClient {
            base: base_url.trim_end_matches('/').to_string(),
            token,
            http,
        }
    }

    /// The agent's address.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        let r = self.http.request(method, &format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.set("Authorization", &format!("Bearer {t}")),
            None => r,
        }
    }

    fn finish<T: DeserializeOwned>(
        &self,
        path: &str,
        result: Result<ureq::Response, ureq::Error>,
    ) -> Result<T, ClientError> {
        match result {
            Ok(response) => response
                .into_json()
                .map_err(|e| ClientError::Decode(e.to_string())),
            Err(ureq::Error::Status(status, response)) => {
                let body: Value = response.into_json().unwrap_or(Value::Null);
                let message = body["error"].as_str().unwrap_or("(no message)").to_string();
                Err(ClientError::Http { status, message })
            }
            Err(e) => Err(ClientError::Transport {
                url: format!("{}{path}", self.base),
                reason: e.to_string(),
            }),
        }
    }

    /// `GET /v1/health`.
    pub fn health(&self) -> Result<Value, ClientError> {
        self.finish("/v1/health", self.request("GET", "/v1/health").call())
    }

    /// `GET /v1/device`: the device's fingerprint and backends.
    pub fn device(&self) -> Result<Value, ClientError> {
        self.finish("/v1/device", self.request("GET", "/v1/device").call())
    }

    /// `POST /v1/profile`: measures an ONNX model on the device.
    pub fn profile(
        &self,
        onnx: &[u8],
        settings: &ProfileSettings,
    ) -> Result<MeasureOutcome, ClientError> {
        let path = format!("/v1/profile?{}", settings.to_query());
        self.finish(&path, self.request("POST", &path).send_bytes(onnx))
    }

    /// `POST /v1/profile/group`: measures several ONNX models together, in interleaved rounds; one outcome
    /// per model, in order.
    pub fn profile_group(
        &self,
        models: &[&[u8]],
        settings: &ProfileSettings,
    ) -> Result<Vec<MeasureOutcome>, ClientError> {
        let sizes: Vec<String> = models.iter().map(|m| m.len().to_string()).collect();
        let path = format!(
            "/v1/profile/group?sizes={}&{}",
            sizes.join(","),
            settings.to_query()
        );
        let body = models.concat();
        let answer: Value = self.finish(&path, self.request("POST", &path).send_bytes(&body))?;
        let outcomes: Vec<MeasureOutcome> = serde_json::from_value(answer["results"].clone())
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        if outcomes.len() != models.len() {
            return Err(ClientError::Decode(format!(
                "{} results for {} models",
                outcomes.len(),
                models.len()
            )));
        }
        Ok(outcomes)
    }

    /// `PUT /v1/models/{name}`: deploys a model for inference.
    pub fn deploy(
        &self,
        name: &str,
        onnx: &[u8],
        backend: BackendKind,
    ) -> Result<DeployedModelInfo, ClientError> {
        let path = format!("/v1/models/{name}?backend={backend}");
        self.finish(&path, self.request("PUT", &path).send_bytes(onnx))
    }

    /// `GET /v1/models`.
    pub fn models(&self) -> Result<Vec<DeployedModelInfo>, ClientError> {
        self.finish("/v1/models", self.request("GET", "/v1/models").call())
    }

    /// `POST /v1/models/{name}/infer`.
    pub fn infer(&self, name: &str, inputs: &[HostTensor]) -> Result<Vec<HostTensor>, ClientError> {
        let path = format!("/v1/models/{name}/infer");
        let answer: Value = self.finish(
            &path,
            self.request("POST", &path)
                .send_json(json!({ "inputs": inputs })),
        )?;
        serde_json::from_value(answer["outputs"].clone())
            .map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `DELETE /v1/models/{name}`.
    pub fn delete(&self, name: &str) -> Result<(), ClientError> {
        let path = format!("/v1/models/{name}");
        self.finish::<Value>(&path, self.request("DELETE", &path).call())
            .map(|_| ())
    }
}
