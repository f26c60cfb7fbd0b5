//! One measurement as a self-contained job: what `bench` runs in process and what the agent runs in a
//! separate worker process (so that a model that crashes or hangs the backend cannot take the agent down).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::backend::{self, BackendConfig, Provider};
use crate::timing::{measure, random_inputs};
use crate::{Protocol, RuntimeError, Stats};

/// What to measure and how.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MeasureJob {
    /// The ONNX file.
    pub model: PathBuf,
    /// Backend settings.
    pub engine: BackendConfig,
    /// Timing protocol.
    pub protocol: Protocol,
    /// Batch size for symbolic batch dimensions.
    pub batch: usize,
}

/// The result of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasureOutcome {
    /// Timing statistics.
    pub stats: Stats,
    /// Engine and version.
    pub backend: String,
    /// Execution provider actually used.
    pub provider: Provider,
    /// Shapes of the inputs fed.
    pub input_shapes: Vec<Vec<usize>>,
}

/// Runs a job in this process.
pub fn run_job(job: &MeasureJob) -> Result<MeasureOutcome, RuntimeError> {
    let bytes = std::fs::read(&job.model).map_err(|source| RuntimeError::Io {
        action: "reading",
        path: job.model.clone(),
        source,
    })?;
    let engine = backend::build(&job.engine)?;
    let mut model = engine.load(&bytes)?;
    let inputs = random_inputs(model.inputs(), job.batch, job.protocol.seed);
    model.prepare(&inputs)?;
    let stats = measure(model.as_mut(), &job.protocol)?;
    Ok(MeasureOutcome {
        stats,
        backend: engine.version(),
        provider: model.provider(),
        input_shapes: inputs.into_iter().map(|t| t.shape).collect(),
    })
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
/// kills it after `timeout`.
pub fn run_in_worker(
    exe: &Path,
    job: &MeasureJob,
    timeout: Duration,
) -> Result<MeasureOutcome, WorkerError> {
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
    /// The measurement.
    Ok(MeasureOutcome),
    /// The job's error message.
    Err(String),
}

/// The worker side: reads a job from stdin, writes the answer to stdout. Returns whether the job succeeded.
pub fn worker_main() -> bool {
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
    println!("{text}");
    ok
}
