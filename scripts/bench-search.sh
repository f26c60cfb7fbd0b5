#!/usr/bin/env bash
# Overhead of the evolutionary search apart from accuracy evaluation (search/nas/examples/bench_search.rs):
# paper settings (population 50, 20 generations) on the committed local-cpu input-32 table with an
# accuracy oracle that costs nothing. Goal: < 10 ms per generation. Also the latency model's prediction
# throughput (`hsconas latency throughput`, 3 times on the input-224 table; goal >= 1e6 predictions/s).
# Writes runs/bench-search/samples.jsonl and results.json and prints the medians. Results go in
# docs/BENCHMARKS.md, the results.json in docs/evidence/bench-search/.
#   SEEDS (7), TABLE (devices/tables/local-cpu-A-32.json), COUNT (20000000 predictions per throughput run)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh >/dev/null 2>&1
cargo build --release -p hsconas-nas --example bench_search >&2
cargo build --release -p hsconas --bin hsconas >&2
target=${CARGO_TARGET_DIR:-target}
out=runs/bench-search
mkdir -p "$out"
"$target/release/examples/bench_search" --table "${TABLE:-devices/tables/local-cpu-A-32.json}" \
  --seeds "${SEEDS:-7}" > "$out/samples.jsonl"
: > "$out/throughput.txt"
for _ in 1 2 3; do
  "$target/release/hsconas" latency throughput --table devices/tables/local-cpu-A-224.json \
    --count "${COUNT:-20000000}" >> "$out/throughput.txt"
done
.hsconas/venv/bin/python - "$out/samples.jsonl" "$out/throughput.txt" <<'PY'
import json, re, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
rates = [float(re.search(r"([0-9.e+]+) predictions/s", l).group(1)) for l in open(sys.argv[2])]
ms = [r["ms_per_generation"] for r in rows]
print(f"evolution overhead: median {statistics.median(ms):.3f} ms per generation "
      f"(min {min(ms):.3f}, max {max(ms):.3f}, {len(ms)} seeds, {rows[0]['evaluations']} evaluations per run)")
print(f"latency prediction: {', '.join(f'{r:.3e}' for r in rates)} predictions/s (median {statistics.median(rates):.2e})")
summary = {
    "samples": rows,
    "median_ms_per_generation": statistics.median(ms),
    "min_ms_per_generation": min(ms),
    "max_ms_per_generation": max(ms),
    "evaluations_per_run": rows[0]["evaluations"],
    "predictions_per_s": rates,
    "median_predictions_per_s": statistics.median(rates),
}
json.dump(summary, open(sys.argv[1].replace("samples.jsonl", "results.json"), "w"), indent=1)
PY
