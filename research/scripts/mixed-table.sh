#!/usr/bin/env bash
# A mixed-precision latency table built and checked on this machine (issue 41, item 3):
#   1. hsconas profile --precision mixed: every piece in FP32 and every block with weights in INT8 too;
#   2. hsconas latency precision --json: each block's FP32/INT8 speed-up;
#   3. hsconas calibrate (50 networks, seed 1; each layer with weights INT8 with probability 1/2);
#   4. GAP_S later, hsconas latency validate twice on the same 200 held-out mixed networks (seed 2): the
#      first is the table's accuracy, the two together this machine's test-retest ceiling
#      (research/scripts/latency-repeatability.py);
# then research/scripts/mixed-table-summary.py: the predictor in use, its error by share of INT8 layers and
# by number of FP32/INT8 boundaries, and what an FP32 table would have predicted for the same networks.
# Uses the debug build of `scripts/test.sh` (dependencies optimised; ONNX Runtime is its own library).
# Times the CPU: run it with nothing else running.
#   DEVICE (local-cpu), SIZE (224), CLASSES (empty: the profile's default, 1000 at 224; 10 makes the table
#   a search on CIFAR-10 resized to SIZE can use), GAP_S (300), CAL_N (50), VAL_N (200), NAME (mixed-<device>-<size>), OUT (runs/mixed-table/NAME),
#   EVIDENCE (empty: keep nothing; else a folder that receives NAME.summary.json, NAME.gains.json.gz and the
#   table's calibration and validations without the entries)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bash scripts/setup.sh >/dev/null 2>&1
cargo build --workspace --bin hsconas >&2
hsconas=${CARGO_TARGET_DIR:-target}/debug/hsconas
python=.hsconas/venv/bin/python
export ORT_DYLIB_PATH=$PWD/.hsconas/libonnxruntime.so
DEVICE=${DEVICE:-local-cpu}
SIZE=${SIZE:-224}
CLASSES=${CLASSES:-}
GAP_S=${GAP_S:-300}
CAL_N=${CAL_N:-50}
VAL_N=${VAL_N:-200}
NAME=${NAME:-mixed-$(basename "${DEVICE%.toml}")-$SIZE}
OUT=${OUT:-runs/mixed-table/$NAME}
EVIDENCE=${EVIDENCE:-}
mkdir -p "$OUT"
table=$OUT/table.json

step() { # name, command...: runs it unless its marker exists (a rerun resumes), appends its seconds
  local name=$1 start=$SECONDS
  shift
  [[ -e $OUT/$name.done ]] && return 0
  "$@" >&2
  echo "\"$name\": $((SECONDS - start))" >>"$OUT/times.lines"
  touch "$OUT/$name.done"
}

echo "== $NAME ($(date -u +%FT%TZ))" >&2
before=$("$python" scripts/bench/probe.py)
step profile_s "$hsconas" profile --device "$DEVICE" --input-size "$SIZE" ${CLASSES:+--classes "$CLASSES"} \
  --precision mixed --out "$table"
"$hsconas" latency precision --table "$table" --json >"$OUT/gains.json"
"$hsconas" latency precision --table "$table" >&2
step calibrate_s "$hsconas" calibrate --table "$table" --device "$DEVICE" --samples "$CAL_N" --seed 1
[[ -e $OUT/validate_1_s.done ]] || sleep "$GAP_S"
for i in 1 2; do
  step "validate_${i}_s" "$hsconas" latency validate --table "$table" --device "$DEVICE" --samples "$VAL_N" \
    --seed 2 --out "$OUT/validation-$i.json"
done
after=$("$python" scripts/bench/probe.py)
{
  echo "{"
  paste -sd, "$OUT/times.lines"
  echo "}"
} >"$OUT/times.json"
"$python" research/scripts/latency-repeatability.py "$OUT/validation-1.json" "$OUT/validation-2.json" \
  "$OUT/repeatability.json" >&2
"$python" research/scripts/mixed-table-summary.py "$OUT" "$NAME" "$before" "$after" >"$OUT/summary.json"
cat "$OUT/summary.json"
if [[ -n $EVIDENCE ]]; then
  mkdir -p "$EVIDENCE"
  cp "$OUT/summary.json" "$EVIDENCE/$NAME.summary.json"
  gzip -9c "$OUT/gains.json" >"$EVIDENCE/$NAME.gains.json.gz"
  gzip -9c "$OUT/validation-1.json" >"$EVIDENCE/$NAME.validation-1.json.gz"
  gzip -9c "$OUT/validation-2.json" >"$EVIDENCE/$NAME.validation-2.json.gz"
  gzip -9c "$table" >"$EVIDENCE/$NAME.table.json.gz"
fi
