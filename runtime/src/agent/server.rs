//! The agent's listener: HTTP/1.1 with keep-alive on hyper, optionally inside TLS (rustls), on a small
//! tokio runtime. Connections are tasks, not threads, so slow or stalled clients cost a little memory and
//! are dropped by the header deadline; blocking work (loads, inference, the measurement worker) runs on
//! tokio's blocking pool.
//!
//! Idle connections cannot crowd out other clients: one peer address holds at most
//! `max_connections_per_peer` of the `max_connections` slots (more are closed at once), and a connection
//! that sends nothing within `first_byte_timeout` is closed, long before the header deadline.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{RwLock, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::api::{BodyLimits, State};
use super::routes;
use crate::RuntimeError;

/// Largest request head (request line and headers); hyper answers 431 beyond it.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// A PEM certificate chain and its private key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Address to listen on (loopback unless told otherwise).
    pub listen: String,
    /// When set, every call needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Serve HTTPS with this certificate instead of plain HTTP.
    pub tls: Option<TlsFiles>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Longest a measurement may run before its worker is killed.
    pub worker_timeout: Duration,
    /// The executable that runs `<exe> worker` (normally `hsconas-runtime` itself).
    pub worker_exe: PathBuf,
    /// Threads that run the connections (blocking work has its own pool).
    pub threads: usize,
    /// Longest silence while a body arrives, and the deadline for a request's headers (and a TLS
    /// handshake): a stalled or trickling client is dropped.
    pub read_timeout: Duration,
    /// Longest a request body may take in all.
    pub request_timeout: Duration,
    /// Requests handled at once beyond health and device checks; more are answered 503.
    pub max_concurrent: usize,
    /// Open connections at once; more wait in the listen queue.
    pub max_connections: usize,
    /// Open connections at once from one peer address; more are closed as soon as they are accepted.
    pub max_connections_per_peer: usize,
    /// A new connection must send its first byte (a request or a TLS hello) within this time.
    pub first_byte_timeout: Duration,
}

/// A bound, not yet serving, agent.
pub struct Agent {
    runtime: tokio::runtime::Runtime,
    listener: std::net::TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    read_timeout: Duration,
    max_connections: usize,
    max_connections_per_peer: usize,
    first_byte_timeout: Duration,
}

impl Agent {
    /// Binds the listening socket and loads the TLS certificate.
    pub fn bind(config: AgentConfig) -> Result<Agent, RuntimeError> {
        Agent::bind_with(config, Router::new())
    }

    /// [`Agent::bind`] with extra routes behind the same checks (tests use failing ones).
    pub(super) fn bind_with(
        config: AgentConfig,
        extra: Router<Arc<State>>,
    ) -> Result<Agent, RuntimeError> {
        let positive = [
            config.threads,
            config.max_body_bytes,
            config.max_concurrent,
            config.max_connections,
            config.max_connections_per_peer,
        ];
        if positive.contains(&0)
            || config.read_timeout.is_zero()
            || config.request_timeout.is_zero()
            || config.first_byte_timeout.is_zero()
        {
            return Err(RuntimeError::BadSetting(
                "threads, limits and timeouts must be at least 1".into(),
            ));
        }
        let tls = config.tls.as_ref().map(acceptor).transpose()?;
        let listener = std::net::TcpListener::bind(&config.listen)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| {
                RuntimeError::BadSetting(format!("cannot listen on {}: {e}", config.listen))
            })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads)
            .thread_name("hsconas-agent")
            .enable_all()
            .build()
            .map_err(|e| RuntimeError::BadSetting(format!("starting the agent's runtime: {e}")))?;
        let scratch = tempfile::tempdir().map_err(|source| {
            RuntimeError::Fs(hsconas_foundation::FsError::new(
                "creating a scratch folder in",
                &std::env::temp_dir(),
                source,
            ))
        })?;
        let state = Arc::new(State {
            token: config.token,
            body: BodyLimits {
                max_bytes: config.max_body_bytes,
                read_timeout: config.read_timeout,
                request_timeout: config.request_timeout,
            },
            worker_exe: config.worker_exe,
            worker_timeout: config.worker_timeout,
            models: Mutex::new(BTreeMap::new()),
            measuring: Arc::new(RwLock::new(())),
            in_flight: Arc::new(Semaphore::new(config.max_concurrent)),
            scratch,
        });
        Ok(Agent {
            runtime,
            listener,
            app: routes::router(state, extra),
            tls,
            read_timeout: config.read_timeout,
            max_connections: config.max_connections,
            max_connections_per_peer: config.max_connections_per_peer,
            first_byte_timeout: config.first_byte_timeout,
        })
    }

    /// The address it listens on (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Whether it serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until the process ends (or the listener fails).
    pub fn serve(self) -> Result<(), RuntimeError> {
        let Agent {
            runtime,
            listener,
            app,
            tls,
            read_timeout,
            max_connections,
            max_connections_per_peer,
            first_byte_timeout,
        } = self;
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener)
                .map_err(|e| RuntimeError::BadSetting(format!("listening: {e}")))?;
            let connections = Arc::new(Semaphore::new(max_connections));
            let peers = PeerSlots::new(max_connections_per_peer);
            loop {
                let Ok(permit) = connections.clone().acquire_owned().await else {
                    return Ok(());
                };
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: wait instead of spinning.
                        tracing::warn!("accepting a connection failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Some(slot) = peers.take(peer.ip()) else {
                    tracing::debug!("{peer}: over its connection limit, closed");
                    continue; // drops the stream and the permit
                };
                let (app, tls) = (app.clone(), tls.clone());
                tokio::spawn(async move {
                    let (_permit, _slot) = (permit, slot);
                    let mut first = [0u8; 1];
                    match tokio::time::timeout(first_byte_timeout, stream.peek(&mut first)).await {
                        Ok(Ok(n)) if n > 0 => {}
                        _ => {
                            tracing::debug!("{peer}: sent nothing in time, closed");
                            return;
                        }
                    }
                    match tls {
                        None => connection(stream, app, read_timeout).await,
                        Some(tls) => {
                            match tokio::time::timeout(read_timeout, tls.accept(stream)).await {
                                Ok(Ok(stream)) => connection(stream, app, read_timeout).await,
                                Ok(Err(e)) => tracing::debug!("TLS handshake failed: {e}"),
                                Err(_) => tracing::debug!("TLS handshake timed out"),
                            }
                        }
                    }
                });
            }
        })
    }
}

/// Open connections per peer address, each at most `limit`.
#[derive(Clone)]
struct PeerSlots {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    limit: usize,
}

/// One open connection of a peer; gives its slot back when dropped.
struct PeerSlot {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    peer: IpAddr,
}

impl PeerSlots {
    fn new(limit: usize) -> PeerSlots {
        PeerSlots {
            open: Arc::new(Mutex::new(HashMap::new())),
            limit,
        }
    }

    /// A slot for one more connection from `peer`, or `None` when it holds `limit` already.
    fn take(&self, peer: IpAddr) -> Option<PeerSlot> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(peer).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(PeerSlot {
            open: self.open.clone(),
            peer,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.peer) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.peer);
            }
        }
    }
}

/// Serves the requests of one connection (keep-alive) until it closes.
async fn connection<S>(stream: S, app: Router, read_timeout: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(read_timeout)
        .max_header_size(MAX_HEAD_BYTES)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app))
        .await;
    if let Err(e) = served {
        tracing::debug!("connection ended: {e}");
    }
}

/// The TLS acceptor for a PEM certificate chain and key (ring provider: nothing native beyond libc).
fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, RuntimeError> {
    let bad = |path: &Path, what: &str, e: &dyn std::fmt::Display| {
        RuntimeError::BadSetting(format!("{}: {what}: {e}", path.display()))
    };
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(&files.cert, "not a PEM certificate chain", &e))?;
    if chain.is_empty() {
        return Err(bad(&files.cert, "no certificate in the file", &"empty"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| bad(&files.key, "not a PEM private key", &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| {
            bad(
                &files.cert,
                "the certificate and key do not make a TLS setup",
                &e,
            )
        })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    #[test]
    fn a_peer_holds_at_most_its_limit_and_gets_slots_back() {
        let slots = PeerSlots::new(2);
        let (a, b): (IpAddr, IpAddr) = ([127, 0, 0, 2].into(), [127, 0, 0, 1].into());
        let first = slots.take(a).expect("first");
        let second = slots.take(a).expect("second");
        assert!(slots.take(a).is_none(), "a third from the same peer");
        assert!(slots.take(b).is_some(), "another peer is not affected");
        drop(first);
        let third = slots.take(a).expect("a slot came back");
        drop((second, third));
        assert!(slots.open.lock().expect("lock").is_empty(), "no entry left");
    }

    async fn fails() -> &'static str {
        panic!("injected fault")
    }

    /// A handler that panics is answered 500 with the error JSON, and the agent keeps serving on the same
    /// few threads.
    #[test]
    fn a_panicking_handler_is_a_500_and_the_agent_keeps_serving() {
        let config = AgentConfig {
            listen: "127.0.0.1:0".into(),
            token: None,
            tls: None,
            max_body_bytes: 1024,
            worker_timeout: Duration::from_secs(1),
            worker_exe: PathBuf::from("/nonexistent"),
            threads: 2,
            read_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            max_concurrent: 2,
            max_connections: 8,
            max_connections_per_peer: 8,
            first_byte_timeout: Duration::from_secs(5),
        };
        let agent = Agent::bind_with(config, Router::new().route("/test/panic", get(fails)))
            .expect("binds");
        let url = format!("http://{}", agent.local_addr().expect("address"));
        std::thread::spawn(move || agent.serve());
        for _ in 0..5 {
            match ureq::get(&format!("{url}/test/panic")).call() {
                Err(ureq::Error::Status(500, answer)) => {
                    let body: serde_json::Value = answer.into_json().expect("JSON");
                    assert_eq!(body["status"], 500);
                    assert!(body["error"].as_str().is_some_and(|m| m.contains("bug")));
                }
                other => panic!("expected a 500, got {other:?}"),
            }
        }
        let health: serde_json::Value = ureq::get(&format!("{url}/v1/health"))
            .call()
            .expect("still serving")
            .into_json()
            .expect("JSON");
        assert_eq!(health["status"], "ok");
    }
}
