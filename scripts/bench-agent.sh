#!/usr/bin/env bash
# Soak benchmark of the device agent on loopback (docs/agent-api.md), bounded in time: a release agent, then
#   1. 10,000 health checks from 4 keep-alive clients,
#   2. 10,000 small inferences (the 32x32 head piece, JSON tensors) from 4 clients,
# with requests per second, p50/p99 latency, and the agent's resident memory before, after the first
# 1,000 requests and after all of them, then after each of 3 more untimed rounds of 10,000 (memory that
# keeps growing round after round would be a leak; a first step up is the allocator settling).
# Writes runs/bench-agent/results.json and prints a Markdown table. Results go in docs/BENCHMARKS.md, the
# results.json in docs/evidence/bench-agent/. Run it on an otherwise idle machine (no build, no training).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh 2>/dev/null
cargo build --release -p hsconas-runtime --bin hsconas-runtime --example agent_soak >&2
cargo build --workspace --bins >&2   # only exports the model (the shared debug build)
target=${CARGO_TARGET_DIR:-target}
rt=$target/release/hsconas-runtime
soak=$target/release/examples/agent_soak
out=runs/bench-agent
mkdir -p "$out"
N=${N:-10000}
CLIENTS=${CLIENTS:-4}

"$target/debug/hsconas" export onnx --piece head --input-size 32 --out "$out/head.onnx" >&2

"$rt" serve --listen 127.0.0.1:0 >"$out/agent.json" 2>"$out/agent.log" &
agent=$!
trap 'kill $agent 2>/dev/null || true' EXIT
for _ in $(seq 100); do [[ -s $out/agent.json ]] && break; sleep 0.1; done
url=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["url"])' "$out/agent.json")
rss() { awk '/^VmRSS/ {print $2}' "/proc/$agent/status"; }
curl -sf -X PUT --data-binary @"$out/head.onnx" "$url/v1/models/head" >/dev/null

rss_start=$(rss)
phase() { # kind [model]: warm-up of 1,000, then N timed; RSS after each
  "$soak" "$url" "$1" 1000 "$CLIENTS" ${2:-} >/dev/null
  local warm
  warm=$(rss)
  local result
  result=$("$soak" "$url" "$1" "$N" "$CLIENTS" ${2:-})
  local after rounds=()
  after=$(rss)
  for _ in 1 2 3; do
    "$soak" "$url" "$1" "$N" "$CLIENTS" ${2:-} >/dev/null
    rounds+=("$(rss)")
  done
  printf '{"result": %s, "rss_after_warmup_kb": %s, "rss_after_kb": %s, "rss_after_more_rounds_kb": [%s]}' \
    "$result" "$warm" "$after" "$(IFS=,; echo "${rounds[*]}")"
}
health=$(phase health)
infer=$(phase infer head)
python3 - "$out" "$rss_start" "$health" "$infer" "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" <<'PY'
import json, sys
out, rss_start, health, infer, cpus, cpu = sys.argv[1:]
phases = {"health": json.loads(health), "infer": json.loads(infer)}
results = {"machine": f"{cpus} logical CPUs, {cpu}", "rss_start_kb": int(rss_start), "phases": phases}
json.dump(results, open(f"{out}/results.json", "w"), indent=1)
print("| requests | clients | requests/s | p50 (ms) | p99 (ms) | RSS after 1,000 (MiB) | RSS after all (MiB) "
      "| RSS after 3 more rounds (MiB) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for name, p in phases.items():
    r = p["result"]
    more = " / ".join(f"{kb / 1024:.1f}" for kb in p["rss_after_more_rounds_kb"])
    print(f"| {r['requests']} {name} | {r['clients']} | {r['requests_per_s']:.0f} | {r['p50_ms']:.2f} | "
          f"{r['p99_ms']:.2f} | {p['rss_after_warmup_kb'] / 1024:.1f} | {p['rss_after_kb'] / 1024:.1f} | {more} |")
print(f"\nRSS at start: {int(rss_start) / 1024:.1f} MiB; machine: {results['machine']}")
PY
