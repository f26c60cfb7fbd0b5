//! Soak load for the agent (scripts/bench-agent.sh): `N` requests from `C` client threads, each with its own
//! keep-alive connection, against a running agent; prints one JSON line with the throughput and latency
//! percentiles.
//!
//! ```text
//! agent_soak URL health N C
//! agent_soak URL infer N C MODEL_NAME   (a model deployed beforehand; random inputs of its shape)
//! ```

use std::time::{Duration, Instant};

use hsconas_runtime::agent::AgentClient;
use hsconas_runtime::timing::random_inputs;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, kind, n, c, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: agent_soak URL health|infer N C [MODEL_NAME]");
    };
    let (n, c): (usize, usize) = (n.parse()?, c.parse()?);
    anyhow::ensure!(c >= 1 && n >= c, "need N >= C >= 1");
    let client = AgentClient::new(url, None, Duration::from_secs(30));
    let inputs = match (kind.as_str(), rest.first()) {
        ("health", _) => None,
        ("infer", Some(name)) => {
            let info = client
                .models()?
                .into_iter()
                .find(|m| &m.name == name)
                .ok_or_else(|| anyhow::anyhow!("no model '{name}' deployed"))?;
            Some((name.clone(), random_inputs(&info.inputs, 1, 0)))
        }
        _ => anyhow::bail!("kind: health, or infer with a model name"),
    };
    let start = Instant::now();
    let threads: Vec<_> = (0..c)
        .map(|t| {
            let (client, inputs) = (client.clone(), inputs.clone());
            let share = n / c + usize::from(t < n % c);
            std::thread::spawn(move || -> anyhow::Result<Vec<f64>> {
                let mut latencies = Vec::with_capacity(share);
                for _ in 0..share {
                    let begin = Instant::now();
                    match &inputs {
                        None => drop(client.health()?),
                        Some((name, x)) => drop(client.infer(name, x)?),
                    }
                    latencies.push(begin.elapsed().as_secs_f64() * 1e3);
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(n);
    for t in threads {
        all.extend(
            t.join()
                .map_err(|_| anyhow::anyhow!("a client thread panicked"))??,
        );
    }
    let seconds = start.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    let pct = |q: f64| hsconas_foundation::stats::percentile(&all, q);
    println!(
        "{}",
        serde_json::json!({
            "kind": kind, "requests": n, "clients": c, "seconds": seconds,
            "requests_per_s": n as f64 / seconds,
            "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": all.last(),
        })
    );
    Ok(())
}
