#!/usr/bin/env bash
# The latency transfer's N-curve (issue 42) from committed data only: the tables in devices/tables/
# (profiled 2026-11-28 on the Intel VM) as sources, the validation reports in
# docs/evidence/latency-local-cpu/ (200 networks each, measured 2026-11-30 on a new Intel VM of the same
# kind) as the new device's measurements. Pairs: input 32 -> 224 (the three 224 runs), 224 -> 32, and each
# input size from one day's machine to the other's. Writes docs/evidence/latency-transfer/<pair>.json.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out=${OUT:-docs/evidence/latency-transfer}
mkdir -p "$out"
cargo build --workspace --bin transfer_curve
bin=${CARGO_TARGET_DIR:-target}/debug/transfer_curve
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for r in 224-run-1 224-run-2 224-run-3 32-run-1; do
  gunzip -c "docs/evidence/latency-local-cpu/$r.report.json.gz" >"$tmp/$r.json"
done
run() { # run NAME SOURCE REPORT: the report's networks at its size (32: 10 classes, 224: 1000)
  local size=${3%%-run-*} classes=1000
  [[ $size == 32 ]] && classes=10
  "$bin" --source "devices/tables/$2.json" --report "$tmp/$3.json" --input-size "$size" \
    --classes "$classes" --draws "${DRAWS:-20}" >"$out/$1.json"
}
for i in 1 2 3; do run "32-to-224-run-$i" local-cpu-A-32 "224-run-$i"; done
run 224-to-32-run-1 local-cpu-A-224 32-run-1
for i in 1 2 3; do run "224-to-224-run-$i" local-cpu-A-224 "224-run-$i"; done
run 32-to-32-run-1 local-cpu-A-32 32-run-1
