//! Where models are measured: in this process with the runtime, or on a remote device through its agent.
//! Both measure a group of models together, in interleaved rounds, with the same protocol.

use crate::LatencyError;
use std::time::Duration;

use hsconas_devices::DeviceProfile;
use hsconas_runtime::agent::{AgentClient, MeasureSettings, MAX_GROUP};
use hsconas_runtime::backend::{self, Backend, BackendConfig, TensorrtOptions};
use hsconas_runtime::measure_job::{measure_models, MeasureOutcome};
use hsconas_vocabulary::{ExecutionProvider, Fingerprint, Precision, Protocol, ReferenceTiming};

/// Measures groups of ONNX models on one device.
pub enum Measurer {
    /// In this process.
    Local {
        /// The engine, built once.
        engine: Box<dyn Backend>,
        /// Timing protocol.
        protocol: Protocol,
        /// Batch size.
        batch: usize,
    },
    /// On the device the agent runs on.
    Remote {
        /// The agent.
        client: AgentClient,
        /// Engine, protocol and batch sent with every group.
        settings: MeasureSettings,
    },
}

/// The engine settings a device profile asks for (preferred provider, then its fallbacks).
pub fn engine_config(
    profile: &DeviceProfile,
    tensorrt_cache: Option<std::path::PathBuf>,
) -> BackendConfig {
    BackendConfig {
        kind: profile.backend,
        providers: std::iter::once(profile.provider)
            .chain(profile.fallback_providers.iter().copied())
            .collect(),
        threads: profile.threads,
        optimize: true,
        tensorrt: TensorrtOptions {
            fp16: profile.precision == Precision::Fp16,
            // Device profiles measure FP32 networks (and FP16 kernels); INT8 is a property of layers, not
            // yet of a table.
            int8: false,
            workspace_mib: profile.tensorrt_workspace_mib,
            cache: tensorrt_cache,
        },
        // The profile's fallback list says what may run instead; the provider that ran is recorded.
        require_provider: false,
        placement: false,
        io_binding: false,
        x64_quant_precision: false,
    }
}

/// Checks that every outcome ran on `expected` (the table's provider): one provider per table.
pub fn ensure_provider(
    expected: ExecutionProvider,
    outcomes: &[MeasureOutcome],
    what: impl FnOnce() -> String,
) -> Result<(), LatencyError> {
    match outcomes.iter().map(|o| o.provider).find(|&p| p != expected) {
        Some(ran) => Err(LatencyError::ProviderMismatch {
            what: what(),
            table: expected.to_string(),
            ran: ran.to_string(),
        }),
        None => Ok(()),
    }
}

impl Measurer {
    /// A measurer for `profile`: through the agent at `agent` (or the profile's own agent address) when
    /// given, in this process otherwise. An `https://` agent's certificate is checked against `ca` (a PEM
    /// file) when given, else against the public authorities. Checks that the engine loads (or the agent
    /// answers) up front.
    pub fn new(
        profile: &DeviceProfile,
        protocol: Protocol,
        agent: Option<&str>,
        token: Option<String>,
        ca: Option<&std::path::Path>,
    ) -> Result<Measurer, LatencyError> {
        let mut protocol = protocol;
        if protocol.pin.is_empty() {
            protocol.pin = profile.cpu_affinity.clone();
        }
        match agent.or(profile.agent.as_deref()) {
            Some(url) => {
                // A group of networks can take minutes on a slow board.
                let timeout = Duration::from_secs(3600);
                let unreachable = |source| LatencyError::AgentUnreachable {
                    url: url.to_string(),
                    source,
                };
                let client = match ca {
                    Some(ca) => {
                        AgentClient::with_ca(url, token, timeout, ca).map_err(unreachable)?
                    }
                    None => AgentClient::new(url, token, timeout),
                };
                client.health().map_err(unreachable)?;
                Ok(Measurer::Remote {
                    client,
                    settings: MeasureSettings {
                        engine: engine_config(profile, None),
                        protocol,
                        batch: profile.batch,
                    },
                })
            }
            None => {
                let cache = backend::default_tensorrt_cache();
                let engine = backend::build(&engine_config(profile, Some(cache)))?;
                Ok(Measurer::Local {
                    engine,
                    protocol,
                    batch: profile.batch,
                })
            }
        }
    }

    /// The timing protocol in use.
    pub fn protocol(&self) -> &Protocol {
        match self {
            Measurer::Local { protocol, .. } => protocol,
            Measurer::Remote { settings, .. } => &settings.protocol,
        }
    }

    /// Most models one group may hold.
    pub fn max_group(&self) -> usize {
        match self {
            Measurer::Local { .. } => usize::MAX,
            Measurer::Remote { .. } => MAX_GROUP,
        }
    }

    /// Where it measures, for messages: `this machine` or the agent's address.
    pub fn place(&self) -> String {
        match self {
            Measurer::Local { .. } => "this machine".into(),
            Measurer::Remote { client, .. } => format!("the agent at {}", client.base_url()),
        }
    }

    /// The device's fingerprint, as its runtime reads it.
    pub fn fingerprint(&self) -> Result<Fingerprint, LatencyError> {
        match self {
            Measurer::Local { .. } => Ok(hsconas_runtime::fingerprint::detect()),
            Measurer::Remote { client, .. } => Ok(serde_json::from_value(
                client.device()?["fingerprint"].clone(),
            )?),
        }
    }

    /// Most models one group may hold besides the reference network when there is one.
    pub fn group_capacity(&self, with_reference: bool) -> usize {
        self.max_group()
            .saturating_sub(usize::from(with_reference))
            .max(1)
    }

    /// Measures the models together with the reference network (when given) appended as the group's
    /// last model, in the same interleaved rounds; returns the models' outcomes, in order, and the
    /// reference's outcome, which has also been recorded in its trace (with the index of its point).
    pub fn measure_with_reference(
        &self,
        models: &[&[u8]],
        reference: Option<&mut super::reference::ReferenceModel>,
        on_round: impl FnMut(usize, usize),
    ) -> Result<(Vec<MeasureOutcome>, Option<usize>), LatencyError> {
        let Some(reference) = reference else {
            return Ok((self.measure(models, on_round)?, None));
        };
        let (outcomes, reference_outcome) =
            self.measure_beside(models, &reference.onnx, reference.timing, on_round)?;
        let point = reference.record(&reference_outcome);
        Ok((outcomes, Some(point)))
    }

    /// Measures the models together with `reference` (ONNX bytes) appended as the group's last model,
    /// timed as `timing` says (its own burst whatever the models' burst; alone before and after the
    /// group, or interleaved with it); returns the models' outcomes, in order, and the reference's (not
    /// recorded anywhere: the caller records it in its trace).
    pub fn measure_beside(
        &self,
        models: &[&[u8]],
        reference: &[u8],
        timing: ReferenceTiming,
        on_round: impl FnMut(usize, usize),
    ) -> Result<(Vec<MeasureOutcome>, MeasureOutcome), LatencyError> {
        let mut all: Vec<&[u8]> = models.to_vec();
        all.push(reference);
        let mut outcomes = self.measure_as(&all, Some(timing), on_round)?;
        let reference_outcome = outcomes.pop().ok_or_else(|| {
            LatencyError::Invalid("the device returned no outcome for the reference network".into())
        })?;
        if outcomes.len() != models.len() {
            return Err(LatencyError::Invalid(format!(
                "the device returned {} outcomes for {} models",
                outcomes.len() + 1,
                models.len() + 1
            )));
        }
        Ok((outcomes, reference_outcome))
    }

    /// Measures the models (ONNX bytes) together; one outcome per model, in order. `on_round` is called
    /// after each interleaved round when measuring locally.
    pub fn measure(
        &self,
        models: &[&[u8]],
        on_round: impl FnMut(usize, usize),
    ) -> Result<Vec<MeasureOutcome>, LatencyError> {
        self.measure_as(models, None, on_round)
    }

    /// [`Measurer::measure`] with the last model timed as a drift reference when `reference` is set
    /// (`Protocol::last_burst`, `Protocol::last_alone`).
    fn measure_as(
        &self,
        models: &[&[u8]],
        reference: Option<ReferenceTiming>,
        on_round: impl FnMut(usize, usize),
    ) -> Result<Vec<MeasureOutcome>, LatencyError> {
        match self {
            Measurer::Local {
                engine,
                protocol,
                batch,
            } => {
                let protocol = match reference {
                    Some(timing) => timing.apply(protocol),
                    None => protocol.clone(),
                };
                Ok(measure_models(
                    engine.as_ref(),
                    models,
                    &protocol,
                    *batch,
                    on_round,
                )?)
            }
            Measurer::Remote { client, settings } => {
                let mut settings = settings.clone();
                if let Some(timing) = reference {
                    settings.protocol = timing.apply(&settings.protocol);
                }
                Ok(client.profile_group(models, &settings)?)
            }
        }
    }
}
