//! One measurement as a self-contained job: what `bench` runs in process and what the agent runs in a
//! separate worker process (so that a model that crashes or hangs the backend cannot take the agent down).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::backend::{self, Backend, BackendConfig, LoadedModel};
use crate::timing::{measure_interleaved, random_inputs};
use crate::RuntimeError;
use hsconas_vocabulary::{ExecutionProvider, Protocol, Stats};

/// What to measure and how: one model, or several measured together in interleaved rounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MeasureJob {
    /// The ONNX files (at least one).
    pub models: Vec<PathBuf>,
    /// Backend settings.
    pub engine: BackendConfig,
    /// Timing protocol.
    pub protocol: Protocol,
    /// Batch size for symbolic batch dimensions.
    pub batch: usize,
}

/// The measurement of one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasureOutcome {
    /// Timing statistics.
    pub stats: Stats,
    /// Engine and version.
    pub backend: String,
    /// Execution provider actually used.
    pub provider: ExecutionProvider,
    /// Shapes of the inputs fed.
    pub input_shapes: Vec<Vec<usize>>,
    /// Kernels per execution provider, when found out ([`BackendConfig::placement`], or a GPU provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<crate::backend::Placement>,
    /// The one host-to-device copy of the inputs, in ms, on a GPU provider (the timed runs exclude it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_copy_ms: Option<f64>,
    /// Copying one run's outputs back to the host, in ms, on a GPU provider (excluded from the timings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_copy_ms: Option<f64>,
}

/// Runs a job in this process; one outcome per model, in the job's order.
pub fn run_job(job: &MeasureJob) -> Result<Vec<MeasureOutcome>, RuntimeError> {
    let models = job
        .models
        .iter()
        .map(|path| {
            std::fs::read(path).map_err(|source| {
                RuntimeError::Fs(hsconas_foundation::FsError::new("reading", path, source))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let engine = backend::build(&job.engine)?;
    let refs: Vec<&[u8]> = models.iter().map(Vec::as_slice).collect();
    measure_models(engine.as_ref(), &refs, &job.protocol, job.batch, |_, _| {})
}

/// Loads and prepares every model (ONNX bytes; none of this is timed), then measures them together in
/// interleaved rounds ([`measure_interleaved`]). A model that fails to load is reported by its position.
pub fn measure_models(
    engine: &dyn Backend,
    models: &[&[u8]],
    protocol: &Protocol,
    batch: usize,
    on_round: impl FnMut(usize, usize),
) -> Result<Vec<MeasureOutcome>, RuntimeError> {
    let mut loaded = Vec::with_capacity(models.len());
    let mut shapes = Vec::with_capacity(models.len());
    for (i, bytes) in models.iter().enumerate() {
        let at = |e: RuntimeError| match e {
            RuntimeError::BadModel(m) if models.len() > 1 => {
                RuntimeError::BadModel(format!("model {} of {}: {m}", i + 1, models.len()))
            }
            other => other,
        };
        let mut model = engine.load(bytes).map_err(at)?;
        let inputs = random_inputs(model.inputs(), batch, protocol.seed);
        model.prepare(&inputs).map_err(at)?;
        shapes.push(inputs.into_iter().map(|t| t.shape).collect::<Vec<_>>());
        loaded.push(model);
    }
    let mut refs: Vec<&mut dyn LoadedModel> = loaded
        .iter_mut()
        .map(|m| &mut **m as &mut dyn LoadedModel)
        .collect();
    let stats = measure_interleaved(&mut refs, protocol, on_round)?;
    Ok(stats
        .into_iter()
        .zip(shapes)
        .zip(&loaded)
        .map(|((stats, input_shapes), model)| MeasureOutcome {
            stats,
            backend: engine.version(),
            provider: model.provider(),
            input_shapes,
            placement: model.placement().cloned(),
            input_copy_ms: model.input_copy_ms(),
            output_copy_ms: model.output_copy_ms(),
        })
        .collect())
}

/// Why a job run in a worker process failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The job itself failed (bad model, bad input, ...): the worker reported it.
    #[error("{0}")]
    Job(String),
    /// The worker ran past the time limit and was killed.
    #[error("the measurement ran past {0:?} and its worker process was killed")]
    Timeout(Duration),
    /// The worker died (crash, or killed from outside).
    #[error("the measurement's worker process died ({0})")]
    Died(String),
    /// The worker could not be started or talked to.
    #[error("cannot run the worker process: {0}")]
    Spawn(String),
}

/// Runs a job in a child process `<exe> worker`, which reads the job as JSON on stdin and answers on stdout;
/// kills it after `timeout`. One outcome per model, in the job's order.
pub fn run_in_worker(
    exe: &Path,
    job: &MeasureJob,
    timeout: Duration,
) -> Result<Vec<MeasureOutcome>, WorkerError> {
    let mut child = Command::new(exe)
        .arg("worker")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| WorkerError::Spawn(format!("{}: {e}", exe.display())))?;
    let job_json = serde_json::to_vec(job).map_err(|e| WorkerError::Spawn(e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(&job_json)
            .map_err(|e| WorkerError::Spawn(e.to_string()))?;
    }
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| WorkerError::Spawn("no stdout".into()))?;
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        stdout.read_to_end(&mut out).map(|_| out)
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if start.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(WorkerError::Timeout(timeout));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(WorkerError::Spawn(e.to_string())),
        }
    };
    let out = reader
        .join()
        .map_err(|_| WorkerError::Spawn("reader thread panicked".into()))?
        .map_err(|e| WorkerError::Spawn(e.to_string()))?;
    let answer: Result<WorkerAnswer, _> = serde_json::from_slice(&out);
    match (status.success(), answer) {
        (_, Ok(WorkerAnswer::Ok(outcome))) => Ok(outcome),
        (_, Ok(WorkerAnswer::Err(message))) => Err(WorkerError::Job(message)),
        (false, Err(_)) => Err(WorkerError::Died(describe_exit(status))),
        (true, Err(e)) => Err(WorkerError::Spawn(format!("unreadable answer: {e}"))),
    }
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (_, Some(sig)) => format!("killed by signal {sig}"),
        (Some(code), None) => format!("exit code {code}"),
        (None, None) => "unknown status".into(),
    }
}

/// The worker's answer on stdout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerAnswer {
    /// The measurements, one per model.
    Ok(Vec<MeasureOutcome>),
    /// The job's error message.
    Err(String),
}

/// The worker side: reads a job from stdin, writes the answer to stdout. Returns whether the job succeeded.
pub fn worker_main() -> bool {
    use hsconas_foundation::outln;
    let mut input = Vec::new();
    let answer = match std::io::stdin().read_to_end(&mut input) {
        Err(e) => WorkerAnswer::Err(format!("reading the job: {e}")),
        Ok(_) => match serde_json::from_slice::<MeasureJob>(&input) {
            Err(e) => WorkerAnswer::Err(format!("malformed job: {e}")),
            Ok(job) => match run_job(&job) {
                Ok(outcome) => WorkerAnswer::Ok(outcome),
                Err(e) => WorkerAnswer::Err(e.to_string()),
            },
        },
    };
    let ok = matches!(answer, WorkerAnswer::Ok(_));
    let text = serde_json::to_string(&answer)
        .unwrap_or_else(|e| format!("{{\"err\":\"serialising the answer: {e}\"}}"));
    // A parent that went away cannot read the answer either; the job failed from its side.
    outln!("{text}").is_ok() && ok
}
