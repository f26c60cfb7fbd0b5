//! Command-line definitions and dispatch.

mod bench;
mod engine_args;
mod info;
mod measure;
mod serve;

use clap::{Parser, Subcommand};

/// The HSCoNAS on-device runtime: runs ONNX models with ONNX Runtime or tract and times them with a
/// protocol built for noisy shared machines (warm-up, minimum runs and time, low percentiles).
#[derive(Debug, Parser)]
#[command(name = "hsconas-runtime", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Describe this device (CPU, cores, memory, OS, GPUs) and the available backends.
    Info(info::InfoArgs),
    /// Time one ONNX model.
    Bench(bench::BenchArgs),
    /// Time a named list of ONNX models in interleaved rounds; resumable (`profile` is its old name).
    #[command(alias = "profile")]
    Measure(measure::MeasureArgs),
    /// Run the HTTP agent the host drives (profiling, deployment, inference).
    Serve(serve::ServeArgs),
    /// Run one measurement job read from stdin (used by the agent).
    #[command(hide = true)]
    Worker,
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Info(args) => info::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Measure(args) => measure::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Worker => serve::worker(),
    }
}
