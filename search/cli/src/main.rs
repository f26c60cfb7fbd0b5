//! `hsconas`: hardware-aware neural architecture search, from latency tables to deployable networks.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
#[cfg(feature = "train")]
use hsconas_distributed::{Job, Launch};
use hsconas_foundation::pipe::{is_broken_pipe, BROKEN_PIPE_STATUS};

mod arch;
mod calibrate;
mod data;
mod data_args;
mod device;
mod doctor;
#[cfg(feature = "train")]
mod estimate;
mod export;
mod export_evaluate;
mod export_int8;
mod int8_budget;
mod latency;
mod latency_precision;
mod machine_check;
mod measure_args;
mod net_args;
#[cfg(feature = "train")]
mod pipeline;
mod predictor;
#[cfg(feature = "train")]
mod predictor_collect;
mod profile;
mod profile_transfer;
#[cfg(feature = "train")]
mod recipe_args;
#[cfg(feature = "train")]
mod search;
#[cfg(feature = "train")]
mod search_args;
#[cfg(feature = "train")]
mod search_ranks;
#[cfg(feature = "train")]
mod search_report;
#[cfg(feature = "train")]
mod supernet;
#[cfg(feature = "train")]
mod train;

/// Hardware-aware neural architecture search (HSCoNAS): find networks that are accurate and meet a
/// latency budget on your device, and export them.
#[derive(Debug, Parser)]
#[command(name = "hsconas", version, about, long_about = None, propagate_version = true)]
#[cfg_attr(
    not(feature = "train"),
    command(
        after_help = "This hsconas was built without libtorch (--no-default-features): supernet, train, estimate, \
                      search and run are not available."
    )
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Refuse a latency table measured on another machine (by default a warning names what differs).
    #[arg(long, global = true)]
    strict_machine: bool,
    /// Use a latency table whose device was in another power state (Jetson power mode, locked clocks,
    /// CPU governor or turbo, frequency limits) with a warning instead of refusing it.
    #[arg(long, global = true)]
    allow_power_change: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect, validate and sample architectures of the search space.
    #[command(subcommand)]
    Arch(arch::ArchCommand),
    /// Show the device profiles latency tables are measured with.
    #[command(subcommand)]
    Device(device::DeviceCommand),
    /// Export networks and profiling pieces as ONNX.
    #[command(subcommand)]
    Export(export::ExportCommand),
    /// Measure a latency table on a device: every piece, in process or through the device's agent.
    Profile(profile::ProfileArgs),
    /// Measure random networks end to end and store the latency model's bias in the table.
    Calibrate(calibrate::CalibrateArgs),
    /// Predict latencies from a table, validate the table on held-out networks.
    #[command(subcommand)]
    Latency(latency::LatencyCommand),
    /// Inspect datasets (ImageFolder, CIFAR-10 binary, MNIST).
    #[command(subcommand)]
    Data(data::DataCommand),
    #[cfg(feature = "train")]
    /// Train the weight-sharing supernet, evaluate subnets with its weights, extract them.
    #[command(subcommand)]
    Supernet(supernet::SupernetCommand),
    #[cfg(feature = "train")]
    /// Train one architecture from scratch; writes its weights (safetensors) and metadata.
    Train(train::TrainArgs),
    #[cfg(feature = "train")]
    /// Score architectures with an accuracy estimator (zero-cost proxy, size, supernet) to compare them.
    Estimate(estimate::EstimateArgs),
    /// Fit the accuracy predictor on your own training results; show what a predictor file holds.
    #[command(subcommand)]
    Predictor(predictor::PredictorCommand),
    #[cfg(feature = "train")]
    /// Search an architecture for a latency target: shrink the space, evolve, re-measure on the device.
    Search(Box<search::SearchArgs>),
    #[cfg(feature = "train")]
    /// The whole pipeline for a device and a latency target: profile, calibrate, supernet, shrink, search,
    /// re-measure, retrain, export; reruns continue where they stopped.
    Run(pipeline::RunArgs),
    /// Report what this installation can use (libtorch, CUDA, ONNX Runtime).
    Doctor(doctor::DoctorArgs),
}

#[cfg(feature = "train")]
impl Command {
    /// Whether the command can run as several ranks of one job (`mpirun`, `srun`); the others refuse to.
    fn runs_distributed(&self) -> bool {
        matches!(
            self,
            Command::Supernet(supernet::SupernetCommand::Train(_))
                | Command::Train(_)
                | Command::Search(_)
                | Command::Predictor(predictor::PredictorCommand::Collect(_))
        )
    }
}

/// This process's job: one process, or a rank of a data-parallel job for the commands that support one.
#[cfg(feature = "train")]
fn start_job(command: &Command) -> anyhow::Result<Job> {
    let launch = Launch::detect();
    if launch.ranks > 1 && !command.runs_distributed() {
        anyhow::bail!(
            "started by {} as one of {} ranks, but this command runs as one process: start it without a \
             launcher (`supernet train`, `train`, `search` and `predictor collect` are the commands that use several ranks)",
            launch.launcher.unwrap_or("a launcher"),
            launch.ranks
        );
    }
    Ok(Job::for_launch(launch)?)
}

/// Runs one parsed command line as a rank of `job` (a build without libtorch has no job: its commands run
/// as one process).
pub fn run(cli: Cli, #[cfg(feature = "train")] job: &Job) -> anyhow::Result<()> {
    match cli.command {
        Command::Arch(cmd) => arch::run(cmd),
        Command::Device(cmd) => device::run(cmd),
        Command::Export(cmd) => export::run(cmd),
        Command::Profile(args) => profile::run(args),
        Command::Calibrate(args) => calibrate::run(args),
        Command::Latency(cmd) => latency::run(cmd),
        Command::Data(cmd) => data::run(cmd),
        #[cfg(feature = "train")]
        Command::Supernet(cmd) => supernet::run(cmd, job.collective()),
        #[cfg(feature = "train")]
        Command::Train(args) => train::run(args, job.collective()),
        #[cfg(feature = "train")]
        Command::Estimate(args) => estimate::run(args),
        Command::Predictor(cmd) => predictor::run(
            cmd,
            #[cfg(feature = "train")]
            job.collective(),
        ),
        #[cfg(feature = "train")]
        Command::Search(args) => search::run(*args, job.collective()),
        #[cfg(feature = "train")]
        Command::Run(args) => pipeline::run(args),
        Command::Doctor(args) => doctor::run(args),
    }
}

/// Messages of the libraries (`tracing`) go to standard error: the hsconas crates' progress notes at
/// `info` (on rank 0 of a job; the other ranks only warn), everything else from `warn` on; `RUST_LOG`
/// overrides.
fn init_logging(root: bool) {
    hsconas_foundation::logging::init(if root {
        "warn,hsconas_latency=info,hsconas_train=info,hsconas_nas=info,hsconas_data=info"
    } else {
        "warn"
    });
}

fn main() -> ExitCode {
    let args = Cli::parse();
    machine_check::set_strict(args.strict_machine, args.allow_power_change);
    #[cfg(feature = "train")]
    {
        let job = match start_job(&args.command) {
            Ok(job) => job,
            Err(err) => {
                eprintln!("error: {err:#}");
                return ExitCode::FAILURE;
            }
        };
        init_logging(job.collective().is_root());
        let result = run(args, &job);
        if let Err(err) = &result {
            if job.collective().size() > 1 && !is_broken_pipe(err.as_ref()) {
                // The other ranks would wait for this one forever: end the whole job.
                eprintln!("error on rank {}: {err:#}", job.collective().rank());
                job.abort(1);
            }
        }
        exit_code(result)
    }
    #[cfg(not(feature = "train"))]
    {
        init_logging(true);
        exit_code(run(args))
    }
}

fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(err.as_ref()) => ExitCode::from(BROKEN_PIPE_STATUS),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
