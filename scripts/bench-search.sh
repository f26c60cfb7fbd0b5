#!/usr/bin/env bash
# Overhead of the evolutionary search apart from accuracy evaluation (search/nas/examples/bench_search.rs):
# paper settings (population 50, 20 generations) on the committed local-cpu input-32 table with an
# accuracy oracle that costs nothing. Goal: < 10 ms per generation. Writes runs/bench-search/samples.jsonl
# and prints the median. Results go in docs/BENCHMARKS.md.
#   SEEDS (7), TABLE (devices/tables/local-cpu-A-32.json)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh >/dev/null 2>&1
cargo build --release -p hsconas-nas --example bench_search >&2
target=${CARGO_TARGET_DIR:-target}
out=runs/bench-search
mkdir -p "$out"
"$target/release/examples/bench_search" --table "${TABLE:-devices/tables/local-cpu-A-32.json}" \
  --seeds "${SEEDS:-7}" > "$out/samples.jsonl"
.hsconas/venv/bin/python - "$out/samples.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ms = [r["ms_per_generation"] for r in rows]
print(f"evolution overhead: median {statistics.median(ms):.3f} ms per generation "
      f"(min {min(ms):.3f}, max {max(ms):.3f}, {len(ms)} seeds, {rows[0]['evaluations']} evaluations per run)")
PY
