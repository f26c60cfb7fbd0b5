//! `hsconas-runtime serve` and the hidden `worker` command the agent runs measurements in.

use hsconas_foundation::outln;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use hsconas_runtime::agent::{Agent, AgentConfig, TlsFiles};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Loopback by default; use 0.0.0.0:7878 to accept calls from the network.
    #[arg(long, default_value = "127.0.0.1:7878", value_name = "ADDR")]
    listen: String,
    /// Require `Authorization: Bearer <TOKEN>` on every call (also read from HSCONAS_AGENT_TOKEN, or
    /// --token-file: a command line is visible to other users in `ps`).
    #[arg(
        long,
        env = "HSCONAS_AGENT_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Read the token from this file (its first line).
    #[arg(long, value_name = "FILE", conflicts_with = "token")]
    token_file: Option<std::path::PathBuf>,
    /// Listen on a non-loopback address without a token (anyone who reaches the port can deploy and run
    /// models); refused otherwise.
    #[arg(long)]
    insecure_no_token: bool,
    /// Largest request body in MiB (ONNX models and inference inputs).
    #[arg(long, default_value_t = 256, value_name = "N")]
    max_body_mb: usize,
    /// Longest one measurement may run before its worker process is killed, in seconds.
    #[arg(long, default_value_t = 600, value_name = "S")]
    worker_timeout_s: u64,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key); clients pass the CA with
    /// `--agent-ca` (hsconas) when it is not a public one.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The certificate's PEM private key.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// A request's headers (and a TLS handshake) must arrive within this many seconds, and a body may not
    /// pause longer: stalled or trickling clients are dropped.
    #[arg(long, default_value_t = 30, value_name = "S")]
    read_timeout_s: u64,
    /// A request body must arrive within this many seconds in all (uploads of large models over a slow
    /// link may need more).
    #[arg(long, default_value_t = 600, value_name = "S")]
    request_timeout_s: u64,
    /// Requests handled at once (measurements, uploads, inference); more are answered 503 with
    /// Retry-After. Health and device checks always answer.
    #[arg(long, default_value_t = 16, value_name = "N")]
    max_concurrent: usize,
    /// Open connections at once; more wait in the listen queue.
    #[arg(long, default_value_t = 256, value_name = "N")]
    max_connections: usize,
    /// Open connections at once from one address; more are closed as soon as they are accepted, so that
    /// one client's idle connections cannot crowd out the others.
    #[arg(long, default_value_t = 32, value_name = "N")]
    max_connections_per_peer: usize,
    /// A new connection must send its first byte within this many seconds, or it is closed.
    #[arg(long, default_value_t = 5, value_name = "S")]
    first_byte_timeout_s: u64,
    /// Threads that serve connections (loads, inference and the measurement worker run on a separate
    /// pool).
    #[arg(long, default_value_t = 2, value_name = "N")]
    threads: usize,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let token = match &args.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the token file {}", path.display()))?
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string(),
        ),
        None => args.token.clone(),
    }
    .filter(|t| !t.is_empty());
    if token.is_none() && !is_loopback(&args.listen)? {
        anyhow::ensure!(
            args.insecure_no_token,
            "refusing to listen on {} without a token: anyone who reaches it could deploy and run \
             models. Pass --token-file FILE (or HSCONAS_AGENT_TOKEN), or --insecure-no-token on a \
             network you trust",
            args.listen
        );
        eprintln!(
            "WARNING: listening on {} WITHOUT A TOKEN (--insecure-no-token): every client that reaches \
             this port can deploy and run models",
            args.listen
        );
    }
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        _ => None,
    };
    let config = AgentConfig {
        listen: args.listen,
        token,
        tls,
        max_body_bytes: args.max_body_mb.max(1) << 20,
        worker_timeout: Duration::from_secs(args.worker_timeout_s.max(1)),
        worker_exe: std::env::current_exe()
            .context("locating this executable for the worker processes")?,
        threads: args.threads,
        read_timeout: Duration::from_secs(args.read_timeout_s.max(1)),
        request_timeout: Duration::from_secs(args.request_timeout_s.max(1)),
        max_concurrent: args.max_concurrent,
        max_connections: args.max_connections,
        max_connections_per_peer: args.max_connections_per_peer,
        first_byte_timeout: Duration::from_secs(args.first_byte_timeout_s.max(1)),
    };
    let has_token = config.token.is_some();
    let agent = Agent::bind(config)?;
    let addr = agent
        .local_addr()
        .map_or_else(|| "?".into(), |a| a.to_string());
    let url = format!("{}://{addr}", if agent.is_tls() { "https" } else { "http" });
    // One machine-readable line on stdout, so that scripts (and tests) can find the port.
    outln!(
        "{}",
        serde_json::json!({ "listening": addr, "url": url, "token_required": has_token })
    )?;
    eprintln!(
        "hsconas-runtime agent listening on {url}{}",
        if has_token { " (token required)" } else { "" }
    );
    agent.serve()?;
    Ok(())
}

/// Whether every address `listen` resolves to is a loopback address.
fn is_loopback(listen: &str) -> anyhow::Result<bool> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<_> = listen
        .to_socket_addrs()
        .with_context(|| format!("--listen {listen}: not an address"))?
        .collect();
    Ok(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()))
}

/// The hidden `worker` command: one measurement job on stdin, its answer on stdout.
pub fn worker() -> anyhow::Result<()> {
    if hsconas_runtime::measure_job::worker_main() {
        Ok(())
    } else {
        std::process::exit(1)
    }
}
