//! The agent against hostile or careless clients, over real loopback HTTP (and HTTPS): trickling and stalled
//! clients, huge announced bodies, tokens, TLS with a certificate made here, the in-flight limit, and
//! inference that must not disturb a measurement.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use hsconas_export::BatchDim;
use hsconas_models::NetConfig;
use hsconas_runtime::agent::{AgentClient, ClientError, MeasureSettings};
use hsconas_runtime::measure_job::MeasureOutcome;
use hsconas_runtime::timing::random_inputs;
use hsconas_tests::{piece_onnx, RunningAgent};
use hsconas_vocabulary::Engine;

const TOKEN: &str = "s3cret";

/// Held by the tests that measure, so that the timing comparison does not run beside another measurement
/// of this binary's parallel tests.
static MEASURING: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn measuring_alone() -> std::sync::MutexGuard<'static, ()> {
    MEASURING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn client(agent: &RunningAgent, token: Option<&str>) -> AgentClient {
    AgentClient::new(&agent.url, token.map(String::from), Duration::from_secs(60))
}

fn piece(key: &str) -> Vec<u8> {
    let net = NetConfig {
        input_size: 32,
        classes: 10,
        ..NetConfig::default()
    };
    piece_onnx(key, &net, BatchDim::Fixed(2))
}

fn status_of(result: Result<impl std::fmt::Debug, ClientError>) -> u16 {
    match result {
        Err(ClientError::Http { status, .. }) => status,
        other => panic!("expected an HTTP error, got {other:?}"),
    }
}

fn address(agent: &RunningAgent) -> String {
    agent.url.trim_start_matches("http://").to_string()
}

/// Twenty clients send their headers one byte every 2 s; health checks still answer within a second, and
/// the trickling connections are dropped at the header deadline.
#[test]
fn trickling_clients_cannot_stop_health_checks() {
    let agent = RunningAgent::start(&["--read-timeout-s", "4"]);
    let addr = address(&agent);
    let trickling: Vec<_> = (0..20)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(&addr).expect("connects");
                let start = Instant::now();
                for byte in b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n" {
                    if s.write_all(&[*byte]).is_err() {
                        break; // dropped by the agent
                    }
                    std::thread::sleep(Duration::from_secs(2));
                    if start.elapsed() > Duration::from_secs(12) {
                        break;
                    }
                }
                let mut rest = Vec::new();
                s.set_read_timeout(Some(Duration::from_secs(5)))
                    .expect("timeout");
                let _ = s.read_to_end(&mut rest);
                (start.elapsed(), String::from_utf8_lossy(&rest).to_string())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let c = AgentClient::new(&agent.url, None, Duration::from_secs(1));
    for _ in 0..8 {
        let start = Instant::now();
        assert_eq!(c.health().expect("answers within 1 s")["status"], "ok");
        assert!(start.elapsed() < Duration::from_secs(1));
        std::thread::sleep(Duration::from_millis(500));
    }
    for t in trickling {
        let (elapsed, answer) = t.join().expect("thread");
        assert!(
            elapsed < Duration::from_secs(14) && !answer.contains("200 OK"),
            "a trickling client was not dropped at the header deadline: {elapsed:?} {answer}"
        );
    }
}

/// A TCP connection from `from` (another loopback address) to `to` that sends nothing.
fn idle_connection(from: [u8; 4], to: &str) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let to: std::net::SocketAddr = to.parse().expect("the agent's address");
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&std::net::SocketAddr::from((from, 0)).into())?;
    socket.connect_timeout(&to.into(), Duration::from_secs(2))?;
    let stream: TcpStream = socket.into();
    stream.set_nonblocking(true)?;
    Ok(stream)
}

/// Whether the agent has closed `stream` (a read returns end of file or an error).
fn closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// 500 connections from 127.0.0.2 that send nothing, those the agent closed reopened every second: the
/// agent keeps answering health checks and an authenticated request from 127.0.0.1 within 1 s. (Before
/// the per-peer limit and the first-byte deadline, the first 256 held every connection slot until the
/// 30 s header deadline, and health checks timed out.)
#[test]
fn idle_connections_from_one_peer_do_not_lock_out_another() {
    let agent = RunningAgent::start(&["--token", TOKEN]);
    let addr = address(&agent);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let neighbour = {
        let (addr, stop) = (addr.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut open: Vec<TcpStream> = Vec::new();
            let (mut opened, deadline) = (0usize, Instant::now() + Duration::from_secs(20));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                open.retain_mut(|s| !closed(s));
                while open.len() < 500 && !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    match idle_connection([127, 0, 0, 2], &addr) {
                        Ok(s) => open.push(s),
                        Err(_) => break,
                    }
                    opened += 1;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            opened
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    let c = AgentClient::new(&agent.url, Some(TOKEN.into()), Duration::from_secs(1));
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(11) {
        let asked = Instant::now();
        assert_eq!(
            c.health().expect("health answers within 1 s")["status"],
            "ok"
        );
        c.models()
            .expect("an authenticated request answers within 1 s");
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "{:?}",
            asked.elapsed()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let opened = neighbour.join().expect("the neighbour's thread");
    assert!(opened >= 500, "only {opened} idle connections were opened");
}

/// Uploads that stop mid-way get a 408 after the read timeout, however many there are.
#[test]
fn stalled_uploads_are_answered_and_do_not_block_the_agent() {
    let agent = RunningAgent::start(&["--read-timeout-s", "1", "--threads", "1"]);
    let addr = address(&agent);
    let stalled: Vec<TcpStream> = (0..6)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).expect("connects");
            write!(
                s,
                "POST /v1/profile HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\nonly a few bytes"
            )
            .expect("writes");
            s
        })
        .collect();
    let start = Instant::now();
    for mut s in stalled {
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("read timeout"), "{answer}");
        assert!(answer.contains("16 of 5000"), "{answer}");
    }
    assert!(start.elapsed() < Duration::from_secs(15));
    let c = AgentClient::new(&agent.url, None, Duration::from_secs(10));
    assert_eq!(c.health().expect("still serving")["status"], "ok");
}

/// A body announced at 1 GB is refused with 413 from its headers alone, without waiting for any of it, and
/// an oversized request head is refused too.
#[test]
fn a_huge_announced_body_is_refused_before_it_is_read() {
    let agent = RunningAgent::start(&["--token", TOKEN, "--max-body-mb", "4"]);
    let mut s = TcpStream::connect(address(&agent)).expect("connects");
    write!(
        s,
        "PUT /v1/models/big HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 1073741824\r\n\r\n"
    )
    .expect("writes");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let start = Instant::now();
    let mut answer = vec![0u8; 4096];
    let n = s.read(&mut answer).expect("an answer before any body byte");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"status\":413"), "{answer}");
    assert!(start.elapsed() < Duration::from_secs(2));
    // Without the token the same request is a 401: nothing is said about limits to strangers.
    let mut s = TcpStream::connect(address(&agent)).expect("connects");
    write!(
        s,
        "PUT /v1/models/big HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n"
    )
    .expect("writes");
    let mut answer = vec![0u8; 4096];
    let n = s.read(&mut answer).expect("an answer");
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 401"));
    // A request head over the 64 KiB limit is answered 431 and the connection closed. The client sends
    // a little over the limit and then waits, so that the agent has read everything it was sent when it
    // closes (a close with unread bytes would reset the connection and could discard the answer).
    let mut s = TcpStream::connect(address(&agent)).expect("connects");
    let huge = "a".repeat((64 << 10) + 512);
    write!(s, "GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Padding: {huge}").expect("writes");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let start = Instant::now();
    let mut answer = Vec::new();
    let ended = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        ended.is_ok() && start.elapsed() < Duration::from_secs(5),
        "the agent neither answered nor closed the connection: {ended:?} after {:?}",
        start.elapsed()
    );
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    assert_eq!(
        client(&agent, Some(TOKEN)).health().expect("still serving")["status"],
        "ok"
    );
}

/// A token from a file works like one on the command line; listening beyond loopback without a token is
/// refused unless explicitly allowed.
#[test]
fn tokens_from_files_and_no_open_agent_on_the_network_by_accident() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("token");
    std::fs::write(&file, "from-a-file\n").expect("write");
    let agent = RunningAgent::start(&["--token-file", file.to_str().expect("utf-8")]);
    assert_eq!(
        client(&agent, Some("from-a-file"))
            .health()
            .expect("health")["status"],
        "ok"
    );
    assert_eq!(status_of(client(&agent, Some("from-a-fil")).health()), 401);
    assert_eq!(status_of(client(&agent, None).health()), 401);

    let open = hsconas_tests::run_bin("hsconas-runtime", &["serve", "--listen", "0.0.0.0:0"]);
    assert_eq!(open.code, Some(1), "{}", open.stderr);
    assert!(
        open.stderr.contains("without a token") && open.stderr.contains("--insecure-no-token"),
        "{}",
        open.stderr
    );
}

/// HTTPS with a self-signed certificate made here: the client that trusts it measures and infers; one that
/// trusts only the public authorities, and a plain-HTTP one, cannot talk to it.
#[test]
fn tls_round_trip_with_a_self_signed_certificate() {
    let _alone = measuring_alone();
    let dir = tempfile::tempdir().expect("temp dir");
    let made =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).expect("certificate");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).expect("write");
    std::fs::write(&key, made.signing_key.serialize_pem()).expect("write");
    let agent = RunningAgent::start(&[
        "--token",
        TOKEN,
        "--tls-cert",
        cert.to_str().expect("utf-8"),
        "--tls-key",
        key.to_str().expect("utf-8"),
    ]);
    assert!(agent.url.starts_with("https://127.0.0.1:"), "{}", agent.url);
    let c = AgentClient::with_ca(
        &agent.url,
        Some(TOKEN.into()),
        Duration::from_secs(60),
        &cert,
    )
    .expect("client");
    assert_eq!(c.health().expect("health over TLS")["status"], "ok");
    let model = piece("head");
    let mut quick = MeasureSettings::default();
    (quick.protocol.min_runs, quick.protocol.min_time_ms) = (3, 5.0);
    assert!(c.profile(&model, &quick).expect("profile").stats.runs >= 3);
    let info = c.deploy("head", &model, Engine::Ort).expect("deploy");
    let out = c
        .infer("head", &random_inputs(&info.inputs, 2, 0))
        .expect("infer");
    assert_eq!(out[0].shape, vec![2, 10]);

    match client(&agent, Some(TOKEN)).health() {
        Err(ClientError::Transport { reason, .. }) => {
            assert!(reason.to_lowercase().contains("certificate"), "{reason}")
        }
        other => panic!("an untrusted certificate was accepted: {other:?}"),
    }
    let plain = agent.url.replace("https://", "http://");
    let plain = AgentClient::new(&plain, Some(TOKEN.into()), Duration::from_secs(5));
    assert!(plain.health().is_err(), "plain HTTP reached the TLS agent");
    let not_a_ca = dir.path().join("empty.pem");
    std::fs::write(&not_a_ca, "no certificate here\n").expect("write");
    assert!(matches!(
        AgentClient::with_ca(&agent.url, None, Duration::from_secs(5), &not_a_ca),
        Err(ClientError::Ca { .. })
    ));
}

/// A long measurement in a background thread.
fn measuring(c: &AgentClient, model: &[u8], ms: f64) -> std::thread::JoinHandle<MeasureOutcome> {
    let (c, model) = (c.clone(), model.to_vec());
    let mut long = MeasureSettings::default();
    (long.protocol.min_runs, long.protocol.min_time_ms) = (10, ms);
    long.protocol.max_runs = usize::MAX;
    std::thread::spawn(move || c.profile(&model, &long).expect("measures"))
}

/// Inference sent while a measurement runs is refused (503 with Retry-After, naming the measurement), so
/// nothing runs beside the measurement; health and device checks still answer.
#[test]
fn inference_during_a_measurement_is_refused_and_does_not_disturb_it() {
    let _alone = measuring_alone();
    let agent = RunningAgent::start(&["--token", TOKEN]);
    let c = client(&agent, Some(TOKEN));
    let model = piece("stem");
    let info = c.deploy("stem", &model, Engine::Ort).expect("deploy");
    let inputs = random_inputs(&info.inputs, 2, 1);
    c.infer("stem", &inputs).expect("infer while idle");

    let pending = measuring(&c, &model, 2000.0);
    std::thread::sleep(Duration::from_millis(300));
    let (mut refused, mut served) = (0, 0);
    while !pending.is_finished() {
        match c.infer("stem", &inputs) {
            Err(ClientError::Http {
                status: 503,
                message,
            }) => {
                assert!(message.contains("measurement"), "{message}");
                refused += 1;
            }
            Ok(_) => served += 1,
            Err(e) => panic!("unexpected answer during a measurement: {e}"),
        }
        assert_eq!(c.health().expect("health answers")["status"], "ok");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(c.device().expect("device answers")["fingerprint"].is_object());
    let disturbed = pending.join().expect("thread");
    assert!(refused >= 5, "{refused} refused, {served} served");
    // At most the requests racing the start and the end of the measurement got through.
    assert!(served <= 2, "{refused} refused, {served} served");
    // Nothing ran beside the measurement: its statistics are those of a full measurement. (How much the
    // refusals themselves cost is a matter of timing, left to benchmarks: on a 2-core machine the client's
    // own request loop competes with the measurement for the CPU.)
    assert!(disturbed.stats.runs >= 10 && disturbed.stats.p10_ms > 0.0);
    c.infer("stem", &inputs)
        .expect("infer after the measurement");
}

/// Beyond `--max-concurrent` requests in flight, work is refused with 503 and Retry-After; health checks
/// still answer.
#[test]
fn requests_beyond_the_in_flight_limit_are_refused() {
    let _alone = measuring_alone();
    let agent = RunningAgent::start(&["--max-concurrent", "1"]);
    let c = client(&agent, None);
    let pending = measuring(&c, &piece("head"), 1500.0);
    std::thread::sleep(Duration::from_millis(300));
    let mut s = TcpStream::connect(address(&agent)).expect("connects");
    write!(
        s,
        "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("writes");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_lowercase().contains("retry-after: 1"), "{answer}");
    assert_eq!(c.health().expect("health answers")["status"], "ok");
    pending.join().expect("thread");
    assert!(c.models().expect("served again").is_empty());
}
