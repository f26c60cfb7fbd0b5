//! Helpers shared by the end-to-end tests: running exported models in tract and, as an independent oracle,
//! in Python's `onnx.checker` + ONNX Runtime (from the virtual environment that `scripts/setup.sh` made);
//! the check of documented numbers against their committed evidence ([`evidence`]); and latency tables and
//! reports read as the tests check them ([`table_json`]).

pub mod evidence;
pub mod table_json;

use std::path::{Path, PathBuf};
use std::process::Command;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use tract_onnx::prelude::*;

/// The Python interpreter of the setup's virtual environment.
pub fn python() -> PathBuf {
    std::env::var_os("HSCONAS_PYTHON")
        .map(PathBuf::from)
        .or_else(|| option_env!("HSCONAS_PYTHON").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// `n` standard-normal values from a seeded generator.
pub fn random_input(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| StandardNormal.sample(&mut rng)).collect()
}

pub use hsconas_foundation::stats::relative_error;

/// Runs an ONNX file in tract (optimised plan) on one input; returns the output's shape and values.
pub fn run_tract(
    model: &Path,
    shape: &[usize],
    input: &[f32],
) -> TractResult<(Vec<usize>, Vec<f32>)> {
    let plan = tract_onnx::onnx()
        .model_for_path(model)?
        .with_input_fact(0, f32::fact(shape).into())?
        .into_optimized()?
        .into_runnable()?;
    let x = tract_ndarray::ArrayD::from_shape_vec(shape.to_vec(), input.to_vec())?;
    let out = plan.run(tvec!(x.into_tensor().into()))?;
    let y = out[0].clone().into_tensor();
    let y = y.to_plain_array_view::<f32>()?;
    Ok((y.shape().to_vec(), y.iter().copied().collect()))
}

/// One model for the Python oracle.
#[derive(Debug, Clone)]
pub struct OracleCase {
    /// The ONNX file.
    pub model: PathBuf,
    /// Input shape.
    pub shape: Vec<usize>,
    /// Input values.
    pub input: Vec<f32>,
}

/// Checks every model with `onnx.checker` (full check) and runs it in ONNX Runtime (CPU, 1 thread), in one
/// Python process. Returns each output's shape and values, in order. Panics with the oracle's message.
pub fn run_oracle(dir: &Path, cases: &[OracleCase]) -> Vec<(Vec<usize>, Vec<f32>)> {
    let mut manifest = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let input = dir.join(format!("case{i}.in.f32"));
        let output = dir.join(format!("case{i}.out.f32"));
        let bytes: Vec<u8> = case.input.iter().flat_map(|x| x.to_le_bytes()).collect();
        std::fs::write(&input, bytes).expect("writing an oracle input");
        manifest.push(serde_json::json!({
            "model": case.model, "input": input, "shape": case.shape, "output": output,
        }));
    }
    let manifest_path = dir.join("oracle.json");
    std::fs::write(
        &manifest_path,
        serde_json::json!({ "cases": manifest }).to_string(),
    )
    .expect("writing the manifest");
    let script = hsconas_foundation::package_dir!().join("oracle/onnx_oracle.py");
    let status = Command::new(python())
        .arg(&script)
        .arg(&manifest_path)
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} (run scripts/setup.sh): {e}",
                python().display()
            )
        });
    assert!(
        status.success(),
        "the ONNX oracle failed ({status}); see its message above"
    );
    (0..cases.len())
        .map(|i| {
            let output = dir.join(format!("case{i}.out.f32"));
            let bytes = std::fs::read(&output).expect("reading an oracle output");
            let meta: serde_json::Value = serde_json::from_slice(
                &std::fs::read(output.with_extension("f32.json")).expect("reading output shape"),
            )
            .expect("json");
            let shape = meta["shape"]
                .as_array()
                .expect("shape")
                .iter()
                .map(|d| d.as_u64().expect("dim") as usize)
                .collect();
            (
                shape,
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )
        })
        .collect()
}

/// The repository root (the workspace's), for tests that read committed files (documents, evidence,
/// tables).
pub fn repo_root() -> std::path::PathBuf {
    hsconas_foundation::package_dir!()
        .join("..")
        .canonicalize()
        .expect("repository root")
}

/// The bytes of a committed evidence file. Files over 100 KB are committed gzip-compressed
/// (`research/scripts/compact-evidence.sh`): a path ending in `.gz` is decompressed.
pub fn read_evidence(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let bytes = std::fs::read(path)?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice()).read_to_end(&mut out)?;
        return Ok(out);
    }
    Ok(bytes)
}

/// Path of a binary of this workspace (`hsconas`, `hsconas-runtime`), built next to the test executable.
/// `scripts/test.sh` builds them (`cargo build --workspace --all-targets`) before running the tests.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build --workspace --all-targets` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// Output of a finished command.
#[derive(Debug)]
pub struct Outcome {
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// `hsconas profile` of `local-cpu` at input 32 (CIFAR size) into `out`, then `extra`.
pub fn profile_args<'a>(out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "profile",
        "--device",
        "local-cpu",
        "--input-size",
        "32",
        "--out",
        out,
    ];
    args.extend(extra);
    args
}

/// The outcome of a command that must succeed (exit code 0), for chaining; panics with its output
/// otherwise.
pub fn ok(outcome: Outcome) -> Outcome {
    assert_eq!(
        outcome.code,
        Some(0),
        "stdout: {}\nstderr: {}",
        outcome.stdout,
        outcome.stderr
    );
    outcome
}

/// Checks that a command failed as the binaries report errors (exit code 1, no panic) and that its
/// error output contains `needle`.
pub fn fails_with(outcome: Outcome, needle: &str) {
    assert_eq!(outcome.code, Some(1), "{outcome:?}");
    assert!(
        outcome.stderr.contains(needle),
        "expected '{needle}' in: {}",
        outcome.stderr
    );
    assert!(!outcome.stderr.contains("panicked"), "{}", outcome.stderr);
}

/// Runs a workspace binary with arguments and captures its output.
pub fn run_bin(name: &str, args: &[&str]) -> Outcome {
    run_bin_env(name, args, &[])
}

/// [`run_bin`] with extra environment variables (e.g. `ORT_DYLIB_PATH`).
pub fn run_bin_env(name: &str, args: &[&str], env: &[(&str, &Path)]) -> Outcome {
    let out = Command::new(workspace_bin(name))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("starting the binary");
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The ONNX bytes of one profiling piece (`stem`, `head`, `L3:shuffle5:0.5`, ...) with seeded random weights.
pub fn piece_onnx(
    key: &str,
    config: &hsconas_models::NetConfig,
    batch: hsconas_export::BatchDim,
) -> Vec<u8> {
    let piece: hsconas_models::build::Piece = key.parse().expect("a valid piece key");
    let graph = hsconas_models::build::piece(piece, config).expect("the piece builds");
    let options = hsconas_export::OnnxOptions {
        batch,
        ..hsconas_export::OnnxOptions::default()
    };
    hsconas_export::onnx::to_bytes(
        &graph,
        &<hsconas_export::Weights as hsconas_export::GraphWeights>::random(&graph, 2),
        &options,
    )
    .expect("the piece exports")
}

/// Writes each profiling piece of `keys` (batch 1) as `<key, ':' as '_'>.onnx` into `dir` and returns
/// the manifest entries `{"name", "path"}` that `hsconas-runtime measure` reads, in the same order.
pub fn write_pieces(
    dir: &Path,
    keys: &[&str],
    config: &hsconas_models::NetConfig,
) -> Vec<serde_json::Value> {
    keys.iter()
        .map(|key| {
            let file = format!("{}.onnx", key.replace(':', "_"));
            std::fs::write(
                dir.join(&file),
                piece_onnx(key, config, hsconas_export::BatchDim::Fixed(1)),
            )
            .expect("piece written");
            serde_json::json!({ "name": key, "path": file })
        })
        .collect()
}

/// A short measuring protocol for `hsconas profile` and friends: for tests that check the flow and the
/// bookkeeping, not the numbers.
pub const FAST_PROTOCOL: [&str; 8] = [
    "--warmup",
    "1",
    "--runs",
    "3",
    "--min-time-ms",
    "0",
    "--max-runs",
    "3",
];

/// An `hsconas-runtime serve` on a free loopback port, killed when dropped.
pub struct RunningAgent {
    child: std::process::Child,
    /// `http://127.0.0.1:<port>` (`https://` when started with a certificate).
    pub url: String,
}

impl RunningAgent {
    /// Starts the agent with extra `serve` arguments (token, limits) and waits until it listens.
    pub fn start(extra: &[&str]) -> RunningAgent {
        RunningAgent::start_on(None, extra)
    }

    /// [`RunningAgent::start`] with the agent (and the workers it starts) bound to one CPU with `taskset`
    /// when `cpu` is given, as a device of its own.
    pub fn start_on(cpu: Option<usize>, extra: &[&str]) -> RunningAgent {
        use std::io::BufRead;
        let mut command = match cpu {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.args(["-c", &cpu.to_string()])
                    .arg(workspace_bin("hsconas-runtime"));
                c
            }
            None => Command::new(workspace_bin("hsconas-runtime")),
        };
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting the agent");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the agent prints where it listens");
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
        let url = v["url"].as_str().expect("address").to_string();
        RunningAgent { child, url }
    }
}

impl RunningAgent {
    /// The agent's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
