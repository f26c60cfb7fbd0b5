#!/usr/bin/env bash
# The transfer's `per-stage-macs` level (issue 42) against the curves committed before it existed, on
# the same committed tables, validation reports and splits (seed 0, each curve's own number of draws):
# for every pair with a committed N-curve, `transfer_curve` again with this build, then
# research/scripts/transfer-terms-summary.py compares the medians and checks that the splits where
# neither run chose the new level came out the same. Offline (no measurement, so no machine).
#   OUT (docs/evidence/latency-transfer/terms): receives <pair>.json.gz and summary.{json,md}
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
out=${OUT:-docs/evidence/latency-transfer/terms}
mkdir -p "$out"
cargo build --workspace --bin transfer_curve >&2
bin=${CARGO_TARGET_DIR:-target}/debug/transfer_curve
ev=docs/evidence
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
plain() { # a file, gunzipped into $tmp when it is compressed; prints the path
  case $1 in
    *.gz) local f="$tmp/$(basename "${1%.gz}")"; [[ -f $f ]] || gunzip -c "$1" >"$f"; echo "$f" ;;
    *) echo "$1" ;;
  esac
}
# name | before (committed curve) | source table | validation report | input size | classes | extra flags
pairs=(
  "intel-224-to-32-run-1|latency-transfer/224-to-32-run-1.json|devices/tables/local-cpu-A-224.json|$ev/latency-local-cpu/32-run-1.report.json.gz|32|10|"
  "intel-32-to-224-run-1|latency-transfer/32-to-224-run-1.json|devices/tables/local-cpu-A-32.json|$ev/latency-local-cpu/224-run-1.report.json.gz|224|1000|"
  "intel-32-to-224-run-2|latency-transfer/32-to-224-run-2.json|devices/tables/local-cpu-A-32.json|$ev/latency-local-cpu/224-run-2.report.json.gz|224|1000|"
  "intel-32-to-224-run-3|latency-transfer/32-to-224-run-3.json|devices/tables/local-cpu-A-32.json|$ev/latency-local-cpu/224-run-3.report.json.gz|224|1000|"
  "amd-vnni-224-to-32|latency-transfer/live/amd-vnni-224-to-32.full-curve.json|$ev/latency-transfer/live/amd-vnni-local-cpu-A-224.table.json.gz|$ev/latency-transfer/live/amd-vnni-224-to-32.full.validation.json.gz|32|10|"
  "intel-224-to-amd-224|latency-transfer/amd/intel-224-to-amd-224-curve.json|devices/tables/local-cpu-A-224.json|$ev/latency-transfer/amd/intel-224-to-amd-224.full.validation.json.gz|224|1000|"
  "intel-32-to-amd-32|latency-transfer/amd/intel-32-to-amd-32-curve.json|devices/tables/local-cpu-A-32.json|$ev/latency-transfer/amd/intel-32-to-amd-32.full.validation.json.gz|32|10|"
  "amd-vnni-ort-32-to-tract-32|latency-transfer/live/amd-vnni-ort-32-to-tract-32.pieces-curve.json|$ev/latency-fresh-amd-vnni/32-run-1.table.json.gz|$ev/latency-transfer/live/amd-vnni-ort-32-to-tract-32.full.validation.json.gz|32|10|"
  "amd-vnni-1-thread-32-to-2-threads-32|latency-transfer/live/amd-vnni-1-thread-32-to-2-threads-32.curve.json|$ev/latency-fresh-amd-vnni/32-run-1.table.json.gz|$ev/latency-transfer/live/amd-vnni-1-thread-32-to-2-threads-32.full.validation.json.gz|32|10|"
  "amd-vnni-224-fp32-to-int8|latency-transfer/fp32-to-int8/amd-vnni-224-fp32-to-int8.curve.json|$ev/mixed-table/mixed-amd-vnni-224.table.json.gz|$ev/latency-transfer/fp32-to-int8/amd-vnni-224-int8.report.json.gz|224|10|--as-fp32"
)
list=()
for pair in "${pairs[@]}"; do
  IFS='|' read -r name before source report size classes extra <<<"$pair"
  draws=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['sizes'][0]['draws']))" "$ev/$before")
  echo "== $name ($draws draws)" >&2
  # shellcheck disable=SC2086 # extra is a list of flags
  "$bin" --source "$(plain "$source")" --report "$(plain "$report")" --input-size "$size" \
    --classes "$classes" --draws "$draws" $extra >"$out/$name.json"
  list+=("$name=$ev/$before")
done
python3 research/scripts/transfer-terms-summary.py --dir "$out" "${list[@]}"
for pair in "${pairs[@]}"; do gzip -9f "$out/${pair%%|*}.json"; done
