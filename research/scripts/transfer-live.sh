#!/usr/bin/env bash
# A latency transfer measured live on this machine (issue 42), against a full profile of the same target:
#   1. hsconas profile --device DEVICE --input-size SIZE: the target's full table (every piece);
#   2. hsconas profile ... --transfer-from SOURCE --samples N: the transferred table;
#   3. hsconas calibrate on each (the same 20 networks, seed 1);
#   4. GAP_S later, hsconas latency validate on each (the same 200 held-out networks, seed 2), the
#      transferred table's first;
# then research/scripts/transfer-live-summary.py: each table's prediction in use (within ±5%, ±10%,
# Kendall tau), the wall time of steps 1 and 2, and this machine's test-retest ceiling, the two
# validations' measurements of the same 200 networks compared (research/scripts/latency-repeatability.py).
# Uses the debug build of `scripts/quickstart.sh`/`scripts/test.sh` (dependencies optimised; ONNX Runtime
# is its own library). Run on a quiet machine: it times the CPU.
#   SOURCE (devices/tables/local-cpu-A-224.json), DEVICE (local-cpu, or a .toml: e.g. a copy of
#   devices/profiles/local-cpu.toml with backend = "tract" or threads = 2), SIZE (32), N (30), GAP_S (0),
#   NAME (the pair's name; default <source file>-to-<device>-<size>), OUT (runs/transfer-live/NAME),
#   EXTRA (more flags for the transfer, e.g. "--tolerance 3 --profile-pieces 400": networks until the
#   held-out error meets 3% or --max-samples, then the pieces that matter most, issue 42 item 3),
#   ONCE (0; 1 = also a third table, `hsconas profile --once-per-shape`, timed, calibrated and validated
#   on the same networks as the other two, after the full profile),
#   EVIDENCE (empty: keep nothing; else a folder that receives NAME.json, the summary)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bash scripts/setup.sh >/dev/null 2>&1
cargo build --workspace --bin hsconas >&2
hsconas=${CARGO_TARGET_DIR:-target}/debug/hsconas
python=.hsconas/venv/bin/python
SOURCE=${SOURCE:-devices/tables/local-cpu-A-224.json}
DEVICE=${DEVICE:-local-cpu}
SIZE=${SIZE:-32}
N=${N:-30}
GAP_S=${GAP_S:-0}
NAME=${NAME:-$(basename "${SOURCE%.json}")-to-$(basename "${DEVICE%.toml}")-$SIZE}
OUT=${OUT:-runs/transfer-live/$NAME}
EVIDENCE=${EVIDENCE:-}
EXTRA=${EXTRA:-}
tables=(transferred full)
[[ ${ONCE:-0} == 1 ]] && tables+=(shapes)
rm -rf "$OUT" && mkdir -p "$OUT"

step() { # name, command...: runs it, appends its seconds to times.json's lines
  local name=$1 start=$SECONDS
  shift
  "$@" >&2
  echo "\"$name\": $((SECONDS - start))" >>"$OUT/times.lines"
}

echo "== $NAME: $SOURCE -> $DEVICE at input $SIZE, N = $N ($(date -u +%FT%TZ))" >&2
step full_profile_s "$hsconas" profile --device "$DEVICE" --input-size "$SIZE" --out "$OUT/full.json"
if [[ ${ONCE:-0} == 1 ]]; then
  step shapes_profile_s "$hsconas" profile --device "$DEVICE" --input-size "$SIZE" --once-per-shape \
    --out "$OUT/shapes.json"
fi
start=$SECONDS # the transfer's --json report is kept (its rounds)
# shellcheck disable=SC2086 # EXTRA is a list of flags
"$hsconas" profile --device "$DEVICE" --input-size "$SIZE" --transfer-from "$SOURCE" --samples "$N" \
  --out "$OUT/transferred.json" $EXTRA --json >"$OUT/transfer-run.json"
echo "\"transfer_s\": $((SECONDS - start))" >>"$OUT/times.lines"
for table in "${tables[@]}"; do
  step "calibrate_${table}_s" "$hsconas" calibrate --table "$OUT/$table.json" --device "$DEVICE" --samples 20
done
sleep "$GAP_S"
for table in "${tables[@]}"; do
  step "validate_${table}_s" "$hsconas" latency validate --table "$OUT/$table.json" --device "$DEVICE" \
    --samples 200 --out "$OUT/$table.validation.json"
done
{
  echo "{"
  paste -sd, "$OUT/times.lines"
  echo "}"
} >"$OUT/times.json"
"$python" research/scripts/latency-repeatability.py "$OUT/transferred.validation.json" \
  "$OUT/full.validation.json" "$OUT/repeatability.json" >&2
EXTRA=$EXTRA "$python" research/scripts/transfer-live-summary.py "$OUT" "$NAME" "$SOURCE" "$DEVICE" "$SIZE" "$N" \
  >"$OUT/summary.json"
cat "$OUT/summary.json"
if [[ -n $EVIDENCE ]]; then
  mkdir -p "$EVIDENCE"
  cp "$OUT/summary.json" "$EVIDENCE/$NAME.json"
fi
