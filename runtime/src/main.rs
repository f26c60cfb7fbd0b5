//! `hsconas-runtime`: runs on the device; times ONNX models with a careful protocol.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use hsconas_foundation::pipe::{is_broken_pipe, BROKEN_PIPE_STATUS};

fn main() -> ExitCode {
    hsconas_foundation::logging::init("warn");
    match cli::run(cli::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(err.as_ref()) => ExitCode::from(BROKEN_PIPE_STATUS),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
