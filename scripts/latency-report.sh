#!/usr/bin/env bash
# The latency model of one device, built and checked REPEATS times from scratch on this machine:
#   hsconas profile (every piece) -> hsconas calibrate (M = 50) -> hsconas latency validate (K = 200, plots)
# Run i uses calibration seed 10*(i-1)+1 and validation seed 10*(i-1)+2, so the spread over runs covers both
# measurement noise and the choice of networks. Prints the time of each step and the validation table of each
# run, then a summary (median and range over runs) that docs/latency-local-cpu.md quotes.
#   DEVICE (local-cpu), SIZE (224), REPEATS (3), OUT (runs/latency-<device>-<size>),
#   BURST (3: runs of each network back to back per round, only the last timed; 1 = the first protocol)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh >/dev/null 2>&1
cargo build --release -p hsconas >&2
target=${CARGO_TARGET_DIR:-target}
hsconas=$target/release/hsconas
DEVICE=${DEVICE:-local-cpu}
SIZE=${SIZE:-224}
REPEATS=${REPEATS:-3}
OUT=${OUT:-runs/latency-$DEVICE-$SIZE}
BURST=${BURST:-3}
mkdir -p "$OUT"

step() { # name, command...
  local name=$1 start=$SECONDS
  shift
  "$@"
  echo "$name: $((SECONDS - start)) s" | tee -a "$dir/times.txt" >&2
}

for i in $(seq "$REPEATS"); do
  dir=$OUT/run-$i
  rm -rf "$dir" && mkdir -p "$dir"
  echo "== run $i of $REPEATS: $DEVICE, input $SIZE ($(date -u +%FT%TZ))" >&2
  step profile "$hsconas" profile --device "$DEVICE" --input-size "$SIZE" --out "$dir/table.json"
  step calibrate "$hsconas" calibrate --table "$dir/table.json" --samples 50 --seed $((10 * (i - 1) + 1)) --burst "$BURST"
  step validate "$hsconas" latency validate --table "$dir/table.json" --samples 200 \
    --seed $((10 * (i - 1) + 2)) --burst "$BURST" --out "$dir/report.json" --plot "$dir/validation.png"
done

.hsconas/venv/bin/python - "$OUT" "$REPEATS" <<'PY'
import json, statistics, sys
out, repeats = sys.argv[1], int(sys.argv[2])
reports = [json.load(open(f"{out}/run-{i}/report.json")) for i in range(1, repeats + 1)]
metrics = ["rmse_ms", "rmspe_percent", "mae_ms", "max_error_ms", "within_5_percent", "within_10_percent",
           "kendall_tau", "spearman_rho"]
print(f"summary over {repeats} runs: median [min, max]")
print("| predictor | " + " | ".join(metrics) + " |")
print("|---" * (len(metrics) + 1) + "|")
for name in [p["name"] for p in reports[0]["predictors"]]:
    cells = []
    for m in metrics:
        values = [next(p for p in r["predictors"] if p["name"] == name)["accuracy"][m] for r in reports]
        cells.append(f"{statistics.median(values):.3f} [{min(values):.3f}, {max(values):.3f}]")
    print(f"| {name} | " + " | ".join(cells) + " |")
PY
