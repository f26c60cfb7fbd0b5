//! A small blocking client for the agent, used by the host to measure on a remote device.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hsconas_foundation::Weights;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::api::DeployedModelInfo;
use super::models::SAFETENSORS;
use super::settings::MeasureSettings;
use crate::backend::HostTensor;
use crate::measure_job::MeasureOutcome;
use hsconas_vocabulary::Engine;

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
    /// The certificate authority file could not be used.
    #[error("the CA certificate {path}: {reason}")]
    Ca {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Talks to one agent.
#[derive(Debug, Clone)]
pub struct AgentClient {
    base: String,
    token: Option<String>,
    http: ureq::Agent,
}

impl AgentClient {
    /// A client for `base_url` (e.g. `http://jetson.local:7878`, or `https://..` for an agent with a
    /// certificate from a public authority), with the agent's token if it has one. `timeout` bounds each
    /// call (a profile call lasts as long as its measurement).
    pub fn new(base_url: &str, token: Option<String>, timeout: Duration) -> AgentClient {
        AgentClient::with_builder(base_url, token, ureq::AgentBuilder::new().timeout(timeout))
    }

    /// A client for an `https://` agent whose certificate is signed by the authority in `ca_pem` (a PEM
    /// file: a lab's own CA, or the agent's self-signed certificate itself). Only that authority is
    /// trusted.
    pub fn with_ca(
        base_url: &str,
        token: Option<String>,
        timeout: Duration,
        ca_pem: &Path,
    ) -> Result<AgentClient, ClientError> {
        let bad = |reason: String| ClientError::Ca {
            path: ca_pem.display().to_string(),
            reason,
        };
        let mut roots = rustls::RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(ca_pem)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| bad(format!("not a PEM certificate ({e})")))?;
        if certs.is_empty() {
            return Err(bad("no certificate in the file".into()));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| bad(format!("not a usable certificate ({e})")))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| bad(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let builder = ureq::AgentBuilder::new()
            .timeout(timeout)
            .tls_config(Arc::new(tls));
        Ok(AgentClient::with_builder(base_url, token, builder))
    }

    fn with_builder(
        base_url: &str,
        token: Option<String>,
        builder: ureq::AgentBuilder,
    ) -> AgentClient {
        AgentClient {
            base: base_url.trim_end_matches('/').to_string(),
            token,
            http: builder.build(),
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
        result
            .map_err(|e| self.error(path, e))?
            .into_json()
            .map_err(|e| ClientError::Decode(e.to_string()))
    }

    fn error(&self, path: &str, e: ureq::Error) -> ClientError {
        match e {
            ureq::Error::Status(status, response) => {
                let body: Value = response.into_json().unwrap_or(Value::Null);
                let message = body["error"].as_str().unwrap_or("(no message)").to_string();
                ClientError::Http { status, message }
            }
            e => ClientError::Transport {
                url: format!("{}{path}", self.base),
                reason: e.to_string(),
            },
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
        settings: &MeasureSettings,
    ) -> Result<MeasureOutcome, ClientError> {
        let path = format!("/v1/profile?{}", settings.to_query());
        self.finish(&path, self.request("POST", &path).send_bytes(onnx))
    }

    /// `POST /v1/profile/group`: measures several ONNX models together, in interleaved rounds; one outcome
    /// per model, in order.
    pub fn profile_group(
        &self,
        models: &[&[u8]],
        settings: &MeasureSettings,
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
        backend: Engine,
    ) -> Result<DeployedModelInfo, ClientError> {
        self.deploy_with(name, onnx, backend, false)
    }

    /// [`Client::deploy`], with ONNX Runtime's U8U8 kernels for a quantised model when
    /// `x64_quant_precision` (x86 CPUs without VNNI; refused with tract).
    pub fn deploy_with(
        &self,
        name: &str,
        onnx: &[u8],
        backend: Engine,
        x64_quant_precision: bool,
    ) -> Result<DeployedModelInfo, ClientError> {
        let x64 = if x64_quant_precision {
            "&x64_quant_precision=true"
        } else {
            ""
        };
        let path = format!("/v1/models/{name}?backend={backend}{x64}");
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

    /// `POST /v1/models/{name}/infer` with tensors as safetensors: inputs and outputs by their names in the
    /// model (no JSON float arrays on the way).
    pub fn infer_named(&self, name: &str, inputs: &Weights) -> Result<Weights, ClientError> {
        let path = format!("/v1/models/{name}/infer");
        let response = self
            .request("POST", &path)
            .set("Content-Type", SAFETENSORS)
            .send_bytes(&inputs.to_safetensors_bytes())
            .map_err(|e| self.error(&path, e))?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut response.into_reader(), &mut bytes)
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        Weights::from_safetensors_bytes(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `DELETE /v1/models/{name}`.
    pub fn delete(&self, name: &str) -> Result<(), ClientError> {
        let path = format!("/v1/models/{name}");
        self.finish::<Value>(&path, self.request("DELETE", &path).call())
            .map(|_| ())
    }
}
