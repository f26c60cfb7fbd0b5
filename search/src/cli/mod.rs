//! Command-line definitions and dispatch.

mod arch;
mod device;
mod doctor;
mod export;
mod net_args;

use clap::{Parser, Subcommand};

/// Hardware-aware neural architecture search (HSCoNAS): find networks that are accurate and meet a
/// latency budget on your device, and export them.
#[derive(Debug, Parser)]
#[command(name = "hsconas", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
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
    /// Report what this installation can use (libtorch, CUDA, ONNX Runtime).
    Doctor(doctor::DoctorArgs),
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Arch(cmd) => arch::run(cmd),
        Command::Device(cmd) => device::run(cmd),
        Command::Export(cmd) => export::run(cmd),
        Command::Doctor(args) => doctor::run(args),
    }
}
