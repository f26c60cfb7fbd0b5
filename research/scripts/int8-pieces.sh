#!/usr/bin/env bash
# Where INT8 pays in the space (issue 41, groundwork for per-layer precision in the latency table): each
# profiling piece of a grid of layers, operators and widths exported in FP32 and in INT8
# (`hsconas export onnx --piece KEY [--precision int8]`, batch norms folded, random weights, an INT8
# piece calibrated on seeded random inputs with its output quantised as a layer's exit is), both timed by
# `hsconas-runtime bench` (ONNX Runtime, one thread, batch 1, RUNS timed runs after 20 warm-up runs) in
# ROUNDS rounds that interleave every model; the INT8/FP32 speed-up per piece is the median of the
# per-round ratios. Times the CPU: run it with nothing else running; the quiet-machine probe is recorded.
# Uses the debug build (ONNX Runtime is its own optimised library).
#   SIZE (224), ROUNDS (3), RUNS (100), LAYERS ("0 1 4 5 8 9 16 17 19"), OPS ("shuffle3 shuffle7 xception"),
#   SCALES ("0.3 1.0"), OUT (runs/int8-pieces-$SIZE), EVIDENCE (empty: keep nothing; else a folder that
#   receives summary-$SIZE.json)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bash scripts/setup.sh >/dev/null 2>&1
cargo build --workspace --bin hsconas --bin hsconas-runtime >&2
target=${CARGO_TARGET_DIR:-target}
hsconas=$target/debug/hsconas
runtime=$target/debug/hsconas-runtime
python=.hsconas/venv/bin/python
export ORT_DYLIB_PATH=$PWD/.hsconas/libonnxruntime.so
SIZE=${SIZE:-224}
ROUNDS=${ROUNDS:-3}
RUNS=${RUNS:-100}
read -r -a layers <<<"${LAYERS:-0 1 4 5 8 9 16 17 19}"
read -r -a ops <<<"${OPS:-shuffle3 shuffle7 xception}"
read -r -a scales <<<"${SCALES:-0.3 1.0}"
OUT=${OUT:-runs/int8-pieces-$SIZE}
EVIDENCE=${EVIDENCE:-}
mkdir -p "$OUT"
keys=(stem head)
for l in "${layers[@]}"; do
  for op in "${ops[@]}"; do
    for s in "${scales[@]}"; do keys+=("L$((l + 1)):$op:$s"); done
  done
done
for key in "${keys[@]}"; do
  "$hsconas" export onnx --piece "$key" --input-size "$SIZE" --out "$OUT/$key.fp32.onnx" 2>/dev/null
  "$hsconas" export onnx --piece "$key" --input-size "$SIZE" --precision int8 --out "$OUT/$key.int8.onnx" \
    2>"$OUT/$key.int8.log"
done
before=$("$python" scripts/bench/probe.py)
samples=$OUT/samples.jsonl
: >"$samples"
for round in $(seq "$ROUNDS"); do
  echo "round $round/$ROUNDS ($(date -u +%FT%TZ))" >&2
  for key in "${keys[@]}"; do
    for precision in fp32 int8; do
      "$runtime" bench "$OUT/$key.$precision.onnx" --threads 1 --warmup 20 --runs "$RUNS" --max-runs "$RUNS" \
        --min-time-ms 0 --json | "$python" -c "
import json, sys; r = json.load(sys.stdin)
print(json.dumps({'round': $round, 'piece': '$key', 'precision': '$precision', 'median_ms': r['median_ms']}))" >>"$samples"
    done
  done
done
after=$("$python" scripts/bench/probe.py)
"$python" research/scripts/int8-pieces-summary.py "$OUT" "$SIZE" "$before" "$after" "$EVIDENCE"
