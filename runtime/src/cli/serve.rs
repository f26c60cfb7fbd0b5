//! `hsconas-runtime serve` and the hidden `worker` command the agent runs measurements in.

use hsconas_foundation::outln;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use hsconas_runtime::agent::{Agent, AgentConfig};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Loopback by default; use 0.0.0.0:7878 to accept calls from the network.
    #[arg(long, default_value = "127.0.0.1:7878", value_name = "ADDR")]
    listen: String,
    /// Require `Authorization: Bearer <TOKEN>` on every call (also read from HSCONAS_AGENT_TOKEN).
    #[arg(
        long,
        env = "HSCONAS_AGENT_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Largest request body in MiB (ONNX models and inference inputs).
    #[arg(long, default_value_t = 256, value_name = "N")]
    max_body_mb: usize,
    /// Longest one measurement may run before its worker process is killed, in seconds.
    #[arg(long, default_value_t = 600, value_name = "S")]
    worker_timeout_s: u64,
    /// A connection that sends nothing for this many seconds while its request is read (stalled headers
    /// or body) is dropped, so that slow or dead clients cannot hold the request threads.
    #[arg(long, default_value_t = 30, value_name = "S")]
    read_timeout_s: u64,
    /// Request-handling threads.
    #[arg(long, default_value_t = 4, value_name = "N")]
    threads: usize,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = AgentConfig {
        listen: args.listen,
        token: args.token.filter(|t| !t.is_empty()),
        max_body_bytes: args.max_body_mb.max(1) << 20,
        worker_timeout: Duration::from_secs(args.worker_timeout_s.max(1)),
        worker_exe: std::env::current_exe()
            .context("locating this executable for the worker processes")?,
        threads: args.threads,
        read_timeout: Duration::from_secs(args.read_timeout_s.max(1)),
    };
    let has_token = config.token.is_some();
    let agent = Agent::bind(config)?;
    let addr = agent
        .local_addr()
        .map_or_else(|| "?".into(), |a| a.to_string());
    // One machine-readable line on stdout, so that scripts (and tests) can find the port.
    outln!(
        "{}",
        serde_json::json!({ "listening": addr, "token_required": has_token })
    )?;
    eprintln!(
        "hsconas-runtime agent listening on http://{addr}{}",
        if has_token { " (token required)" } else { "" }
    );
    agent.serve();
    Ok(())
}

/// The hidden `worker` command: one measurement job on stdin, its answer on stdout.
pub fn worker() -> anyhow::Result<()> {
    if hsconas_runtime::measure_job::worker_main() {
        Ok(())
    } else {
        std::process::exit(1)
    }
}
