#!/usr/bin/env bash
# The latency model of one device, built and checked REPEATS times from scratch on this machine:
#   hsconas profile (every piece, the reference network in every group) -> hsconas calibrate (M = 50)
#   -> at least GAP_S later: hsconas latency validate (K = 200, plots, every drift model)
# Run i uses calibration seed 10*(i-1)+1 and validation seed 10*(i-1)+2, so the spread over runs covers both
# measurement noise and the choice of networks. Every run is profiled and calibrated first, then each is
# validated no sooner than GAP_S after its calibration: the device has time to drift, as it does between a
# table's calibration and its use. With HOG=1, run 1's table is then validated once more while a bounded
# busy loop runs on the other core from HOG_DELAY_S into the validation for HOG_S seconds (what the
# normalisation recovers when the machine is loaded halfway). Prints the time of each step and the
# validation table of each run, then the summary of research/scripts/latency-report-summary.py (every predictor's
# median and range over runs, how the device moved, each drift model's predictor in use) that
# docs/latency-local-cpu.md quotes.
#   DEVICE (local-cpu), SIZE (224), REPEATS (3), OUT (runs/latency-<device>-<size>),
#   BURST (3: runs of each network back to back per round, only the last timed; 1 = the first protocol),
#   GAP_S (600), HOG (0), HOG_DELAY_S (half of run 1's validation time), HOG_S (as long again),
#   REFERENCE (interleaved: how each table times its reference network, `interleaved` among each group's
#   models or `alone` before and after it; a list such as "alone interleaved" is cycled over the runs,
#   which compares the two side by side in one campaign), PIECE_BURST (1: `hsconas profile --burst`, the
#   pieces' runs back to back per round; a list such as "1 3" is cycled over the runs likewise),
#   RETEST (0; 1 = after the validations, run 1's table is validated again on the same networks, seed 2,
#   and research/scripts/latency-repeatability.py compares the two measurements: the machine's test-retest
#   ceiling, against which the runs are read),
#   EVIDENCE (empty: keep nothing; else a folder that receives each report, each table without its entries
#   (provenance, reference network and its trace, calibration, validation), the hog's timing, the steps'
#   seconds and the summary's tables: see research/scripts/latency-report-summary.py)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bash scripts/setup.sh >/dev/null 2>&1
cargo build --release -p hsconas >&2
target=${CARGO_TARGET_DIR:-target}
hsconas=$target/release/hsconas
python=.hsconas/venv/bin/python
DEVICE=${DEVICE:-local-cpu}
SIZE=${SIZE:-224}
REPEATS=${REPEATS:-3}
OUT=${OUT:-runs/latency-$DEVICE-$SIZE}
BURST=${BURST:-3}
GAP_S=${GAP_S:-600}
HOG=${HOG:-0}
RETEST=${RETEST:-0}
EVIDENCE=${EVIDENCE:-}
read -r -a contexts <<<"${REFERENCE:-interleaved}"
read -r -a piece_bursts <<<"${PIECE_BURST:-1}"
mkdir -p "$OUT"

profile_flags() { # run number -> its profile flags: the pieces' burst and the reference's context
  local context=${contexts[$((($1 - 1) % ${#contexts[@]}))]}
  echo --burst "${piece_bursts[$((($1 - 1) % ${#piece_bursts[@]}))]}"
  case $context in
    alone) echo --reference-alone ;;
    interleaved) ;;
    *)
      echo "REFERENCE: '$context' is neither alone nor interleaved" >&2
      exit 2
      ;;
  esac
}

step() { # run folder, name, command...
  local dir=$1 name=$2 start=$SECONDS
  shift 2
  "$@"
  echo "$name: $((SECONDS - start)) s" | tee -a "$dir/times.txt" >&2
}

# Profile and calibrate every run first.
for i in $(seq "$REPEATS"); do
  dir=$OUT/run-$i
  rm -rf "$dir" && mkdir -p "$dir"
  echo "== run $i of $REPEATS: $DEVICE, input $SIZE, table ($(date -u +%FT%TZ))" >&2
  flags=$(profile_flags "$i")
  # shellcheck disable=SC2086 # flags and whole numbers, no spaces within
  step "$dir" profile "$hsconas" profile --device "$DEVICE" --input-size "$SIZE" --out "$dir/table.json" $flags
  step "$dir" calibrate "$hsconas" calibrate --table "$dir/table.json" --samples 50 --seed $((10 * (i - 1) + 1)) \
    --burst "$BURST"
  date +%s >"$dir/calibrated-at"
done

validate() { # run folder, seed, report path
  "$hsconas" latency validate --table "$1/table.json" --samples 200 --seed "$2" --burst "$BURST" \
    --out "$3" --plot "${3%.json}.png"
}

# Then validate each, no sooner than GAP_S after its calibration.
for i in $(seq "$REPEATS"); do
  dir=$OUT/run-$i
  wait_s=$(($(cat "$dir/calibrated-at") + GAP_S - $(date +%s)))
  if [ "$wait_s" -gt 0 ]; then
    echo "== run $i: waiting $wait_s s (validation at least $GAP_S s after calibration)" >&2
    sleep "$wait_s"
  fi
  echo "== run $i of $REPEATS: validation ($(date -u +%FT%TZ))" >&2
  echo "gap: $(($(date +%s) - $(cat "$dir/calibrated-at"))) s" >>"$dir/times.txt"
  step "$dir" validate validate "$dir" $((10 * (i - 1) + 2)) "$dir/report.json"
done

if [ "$HOG" = 1 ]; then
  dir=$OUT/run-1
  took=$(sed -n 's/^validate: \([0-9]*\) s$/\1/p' "$dir/times.txt")
  HOG_DELAY_S=${HOG_DELAY_S:-$((took / 2))}
  HOG_S=${HOG_S:-$((took / 2))}
  echo "== run 1 again, a busy loop on the other core from $HOG_DELAY_S s for $HOG_S s ($(date -u +%FT%TZ))" >&2
  (sleep "$HOG_DELAY_S" && timeout "$HOG_S" sh -c 'while :; do :; done') &
  hog=$!
  trap 'kill $hog 2>/dev/null || true' EXIT
  step "$dir" validate-hog validate "$dir" 2 "$dir/hog-report.json"
  wait "$hog" || true
  echo "{\"hog_delay_s\": $HOG_DELAY_S, \"hog_s\": $HOG_S}" >"$dir/hog.json"
fi

if [ "$RETEST" = 1 ]; then
  dir=$OUT/run-1
  echo "== run 1 again, the same networks: test-retest ($(date -u +%FT%TZ))" >&2
  step "$dir" validate-retest validate "$dir" 2 "$dir/retest-report.json"
  "$python" research/scripts/latency-repeatability.py "$dir/report.json" "$dir/retest-report.json" \
    "$dir/repeatability.json" >&2
fi

"$python" research/scripts/latency-report-summary.py "$OUT" "$REPEATS" "$SIZE" "$EVIDENCE" "$HOG"
[[ -z $EVIDENCE ]] || bash research/scripts/compact-evidence.sh "$EVIDENCE"
