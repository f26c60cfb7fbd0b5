//! `hsconas`: hardware-aware neural architecture search, from latency tables to deployable networks.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    hsconas_runtime::exit_quietly_on_broken_pipe();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
