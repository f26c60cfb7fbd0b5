#!/usr/bin/env bash
# Precision in the search (issue 41, "Done when"): on a mixed-precision table, what a search that chooses
# each layer's precision finds against an FP32 search. Searches with the built-in predictor
# (`--mode constraint`: at or under T, the fastest within the predictor's error of the most accurate
# wins; the best candidates re-measured on this machine):
#   fp32             --precision fp32 at T
#   KIND             --precision KIND at T          (what INT8 layers buy in predicted accuracy at T)
#   KIND-faster      --precision KIND at T / RATIO  (whether a network RATIO times faster keeps it)
# for each KIND of KINDS (`mixed`: precision searched by mutation and crossover; `fastest`: every
# candidate's layers at the precision the model predicts faster), then
# research/scripts/mixed-search-summary.py: each winner's architecture, INT8 layers, predicted accuracy,
# predicted and measured latency, and, per KIND, the FP32 networks' measured latency over the fastest
# network of that KIND measured at the same or higher predicted accuracy.
# Uses the debug build of `scripts/test.sh`. Times the CPU (re-measurement): run it with nothing else
# running. Resumable: a search whose report exists is skipped.
#   TABLE (required: a mixed table, `hsconas profile --precision mixed`, with the data's classes),
#   TARGET (ms, required), RATIO (1.15), DATA (data/cifar10-sample.tar.gz: the predictor reads no images;
#   the data fixes the classes and, resized, the input size), SEED (0), POPULATION (50), GENERATIONS (20),
#   KINDS ("mixed fastest"), OUT (runs/mixed-search), EVIDENCE (empty: keep nothing; else a folder that
#   receives summary.json, which holds every re-measurement; the search reports stay in OUT)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
: "${TABLE:?set TABLE to a mixed-precision latency table}"
: "${TARGET:?set TARGET to the latency target in ms}"
bash scripts/setup.sh >/dev/null 2>&1
cargo build --workspace --bin hsconas >&2
hsconas=${CARGO_TARGET_DIR:-target}/debug/hsconas
python=.hsconas/venv/bin/python
export ORT_DYLIB_PATH=$PWD/.hsconas/libonnxruntime.so
RATIO=${RATIO:-1.15}
DATA=${DATA:-data/cifar10-sample.tar.gz}
SEED=${SEED:-0}
POPULATION=${POPULATION:-50}
GENERATIONS=${GENERATIONS:-20}
KINDS=${KINDS:-mixed fastest}
OUT=${OUT:-runs/mixed-search}
EVIDENCE=${EVIDENCE:-}
mkdir -p "$OUT"
size=$("$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["provenance"]["input_size"])' "$TABLE")
faster=$("$python" -c 'import sys; print(round(float(sys.argv[1]) / float(sys.argv[2]), 4))' "$TARGET" "$RATIO")

search() { # name, precision, target
  local dir=$OUT/$1
  [[ -e $dir/search.json ]] && return 0
  echo "== $1: --precision $2 --target-ms $3 ($(date -u +%FT%TZ))" >&2
  "$hsconas" search --table "$TABLE" --precision "$2" --target-ms "$3" --mode constraint \
    --data "$DATA" --resize "$size" --population "$POPULATION" --generations "$GENERATIONS" \
    --remeasure 3 --seed "$SEED" --threads 1 --out "$dir" >&2
}

before=$("$python" scripts/bench/probe.py)
search fp32 fp32 "$TARGET"
for kind in $KINDS; do
  search "$kind" "$kind" "$TARGET"
  search "$kind-faster" "$kind" "$faster"
done
after=$("$python" scripts/bench/probe.py)
"$python" research/scripts/mixed-search-summary.py "$OUT" "$TABLE" "$RATIO" "$before" "$after" $KINDS \
  >"$OUT/summary.json"
cat "$OUT/summary.json"
if [[ -n $EVIDENCE ]]; then
  mkdir -p "$EVIDENCE"
  cp "$OUT/summary.json" "$EVIDENCE/summary.json"
fi
