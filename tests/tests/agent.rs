//! The HTTP agent over real loopback HTTP: every endpoint through the Rust client, every kind of bad
//! request answered with the right 4xx while the agent keeps serving, and measurements whose worker process
//! hangs or is killed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use hsconas_export::BatchDim;
use hsconas_foundation::Weights;
use hsconas_models::NetConfig;
use hsconas_runtime::agent::{AgentClient, ClientError, MeasureSettings};
use hsconas_runtime::backend::{self, BackendConfig};
use hsconas_runtime::timing::random_inputs;
use hsconas_tests::{piece_onnx, relative_error, RunningAgent};
use hsconas_vocabulary::Engine;

const TOKEN: &str = "s3cret";

fn start_agent() -> RunningAgent {
    RunningAgent::start(&[
        "--token",
        TOKEN,
        "--max-body-mb",
        "4",
        "--worker-timeout-s",
        "3",
    ])
}

fn client(agent: &RunningAgent, token: Option<&str>) -> AgentClient {
    AgentClient::new(&agent.url, token.map(String::from), Duration::from_secs(60))
}

fn piece(key: &str) -> Vec<u8> {
    piece_onnx(
        key,
        &NetConfig {
            input_size: 32,
            classes: 10,
            ..NetConfig::default()
        },
        BatchDim::Fixed(2),
    )
}

fn quick() -> MeasureSettings {
    let mut s = MeasureSettings::default();
    s.protocol.warmup = 1;
    s.protocol.min_runs = 3;
    s.protocol.min_time_ms = 5.0;
    s
}

/// Sends `body` in chunks of 1000 bytes with `Transfer-Encoding: chunked`; the raw answer.
fn raw_chunked(addr: &str, path: &str, body: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connects");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .expect("writes");
    for chunk in body.chunks(1000) {
        write!(s, "{:x}\r\n", chunk.len()).expect("writes");
        s.write_all(chunk).expect("writes");
        s.write_all(b"\r\n").expect("writes");
    }
    s.write_all(b"0\r\n\r\n").expect("writes");
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

fn status_of(result: Result<impl std::fmt::Debug, ClientError>) -> u16 {
    match result {
        Err(ClientError::Http { status, .. }) => status,
        other => panic!("expected an HTTP error, got {other:?}"),
    }
}

#[test]
fn every_endpoint_round_trips() {
    let agent = start_agent();
    let c = client(&agent, Some(TOKEN));
    assert_eq!(c.health().expect("health")["status"], "ok");
    assert!(c.device().expect("device")["fingerprint"]["logical_cpus"]
        .as_u64()
        .is_some_and(|n| n >= 1));

    let model = piece("head");
    for kind in [Engine::Ort, Engine::Tract] {
        let mut settings = quick();
        settings.engine.kind = kind;
        let outcome = c.profile(&model, &settings).expect("profile");
        assert!(
            outcome.stats.runs >= 3 && outcome.stats.p10_ms > 0.0,
            "{kind}"
        );
        assert_eq!(outcome.input_shapes, vec![vec![2, 512, 2, 2]]);
    }

    let info = c.deploy("head-1", &model, Engine::Ort).expect("deploy");
    assert_eq!(
        info.inputs[0].shape,
        vec![Some(2), Some(512), Some(2), Some(2)]
    );
    assert_eq!(
        c.models()
            .expect("list")
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>(),
        vec!["head-1"]
    );
    let inputs = random_inputs(&info.inputs, 2, 8);
    let remote = c.infer("head-1", &inputs).expect("infer");
    let local = backend::build(&BackendConfig::default())
        .expect("ort")
        .load(&model)
        .expect("loads")
        .run(&inputs)
        .expect("runs");
    assert_eq!(remote[0].shape, vec![2, 10]);
    assert!(relative_error(&remote[0].data, &local[0].data) < 1e-6);
    // The same inference with tensors as safetensors, by name.
    let mut named = Weights::default();
    named.insert(info.inputs[0].name.clone(), inputs[0].clone());
    let answer = c.infer_named("head-1", &named).expect("binary infer");
    let output = answer.get(&info.outputs[0].name).expect("output by name");
    assert_eq!(output, &remote[0]);
    // A chunked upload (no Content-Length) measures like any other.
    let addr = agent.url.trim_start_matches("http://");
    let answer = raw_chunked(addr, "/v1/profile?runs=3&min_time_ms=5&warmup=1", &model);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    c.delete("head-1").expect("delete");
    assert!(c.models().expect("list").is_empty());
}

#[test]
fn bad_requests_get_the_right_status_and_the_agent_keeps_serving() {
    let agent = start_agent();
    let c = client(&agent, Some(TOKEN));
    let model = piece("stem");

    assert_eq!(status_of(client(&agent, None).health()), 401);
    assert_eq!(status_of(client(&agent, Some("wrong")).models()), 401);
    assert_eq!(status_of(c.profile(b"not onnx at all", &quick())), 400);
    assert_eq!(
        status_of(c.deploy("broken", &model[..model.len() / 3], Engine::Tract)),
        400
    );
    assert_eq!(status_of(c.deploy("bad name!", &model, Engine::Ort)), 400);
    assert_eq!(status_of(c.infer("nobody", &[])), 404);
    assert_eq!(status_of(c.delete("nobody")), 404);
    assert_eq!(
        status_of(c.profile(&vec![0u8; (4 << 20) + 1], &quick())),
        413
    );

    // ONNX Runtime's U8U8 kernels for quantised models: an ort session option, refused with tract.
    let u8u8 = c
        .deploy_with("stem-u8u8", &model, Engine::Ort, true)
        .expect("deploy with x64_quant_precision");
    assert!(u8u8.x64_quant_precision);
    assert_eq!(
        status_of(c.deploy_with("stem-tract", &model, Engine::Tract, true)),
        400
    );
    let info = c.deploy("stem", &model, Engine::Ort).expect("deploy");
    assert!(!info.x64_quant_precision);
    let mut wrong = random_inputs(&info.inputs, 2, 0);
    wrong[0].shape = vec![2, 3, 16, 64];
    assert_eq!(status_of(c.infer("stem", &wrong)), 400);

    // A body that announces more bytes than it sends.
    let addr = agent.url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).expect("connects");
    write!(
        stream,
        "POST /v1/profile HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 5000\r\n\r\nonly a few bytes"
    )
    .expect("writes");
    stream
        .shutdown(std::net::Shutdown::Write)
        .expect("half-closes");
    let mut answer = String::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("truncated body"), "{answer}");

    // Unknown endpoints and methods.
    let raw = |method: &str, path: &str| -> String {
        let mut s = TcpStream::connect(addr).expect("connects");
        write!(s, "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n").expect("writes");
        let mut a = String::new();
        let _ = s.read_to_string(&mut a);
        a
    };
    assert!(raw("GET", "/v1/nothing").starts_with("HTTP/1.1 404"));
    assert!(raw("DELETE", "/v1/health").starts_with("HTTP/1.1 405"));

    // Sizes that overflow when added, more times than the agent has request threads: each is a 400.
    for _ in 0..10 {
        let mut s = TcpStream::connect(addr).expect("connects");
        write!(
            s,
            "POST /v1/profile/group?sizes=18446744073709551615,2 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"
        )
        .expect("writes");
        let mut a = String::new();
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let _ = s.read_to_string(&mut a);
        assert!(a.starts_with("HTTP/1.1 400"), "{a}");
        assert!(a.contains("overflow"), "{a}");
    }

    assert_eq!(c.health().expect("still serving")["status"], "ok");
    let ok = c.profile(&model, &quick()).expect("still measuring");
    assert!(ok.stats.runs >= 3);
}

#[test]
fn a_hanging_measurement_is_killed_and_reported() {
    let agent = start_agent();
    let c = client(&agent, Some(TOKEN));
    let model = piece("head");
    let mut slow = quick();
    slow.protocol.min_time_ms = 600_000.0;
    slow.protocol.max_runs = usize::MAX;
    let start = Instant::now();
    match c.profile(&model, &slow) {
        Err(ClientError::Http {
            status: 504,
            message,
        }) => assert!(message.contains("killed"), "{message}"),
        other => panic!("expected 504, got {other:?}"),
    }
    assert!(start.elapsed() < Duration::from_secs(30));
    assert!(
        c.profile(&model, &quick()).is_ok(),
        "the agent measures again after a timeout"
    );
}

/// Children of `pid` whose command line contains `worker`.
fn worker_children(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        // Fields after the parenthesised command name: state, ppid, ...
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        let cmdline = std::fs::read_to_string(format!("/proc/{child}/cmdline")).unwrap_or_default();
        if ppid == Some(pid) && cmdline.contains("worker") {
            found.push(child);
        }
    }
    found
}

#[test]
fn a_worker_killed_mid_measure_is_reported_and_the_agent_survives() {
    let agent = start_agent();
    let c = client(&agent, Some(TOKEN));
    let model = piece("head");
    let mut slow = quick();
    slow.protocol.min_time_ms = 20_000.0;
    slow.protocol.max_runs = usize::MAX;
    let pending = {
        let (c, model) = (c.clone(), model.clone());
        std::thread::spawn(move || c.profile(&model, &slow))
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let worker = loop {
        if let Some(pid) = worker_children(agent.pid()).first() {
            break *pid;
        }
        assert!(Instant::now() < deadline, "no worker process appeared");
        std::thread::sleep(Duration::from_millis(20));
    };
    Command::new("kill")
        .args(["-9", &worker.to_string()])
        .status()
        .expect("kill");
    match pending.join().expect("thread") {
        Err(ClientError::Http {
            status: 500,
            message,
        }) => assert!(message.contains("signal 9"), "{message}"),
        other => panic!("expected a 500 naming the signal, got {other:?}"),
    }
    assert_eq!(c.health().expect("alive")["status"], "ok");
    assert!(c.profile(&model, &quick()).is_ok());
}
