#!/usr/bin/env bash
# The search-level proof on a `hsconas predictor collect` campaign's recipe (issue 40, item 6): a
# constraint search at a target T on this machine, its winner trained with the campaign's recipe (seeds 0
# and 1), against every baseline measured at or under the winner's latency in the same runs: the
# campaign's uniform scalings and draws (trained once, seed 0, by the campaign) and hand-designed
# networks trained here with the same recipe. Differences come with 95% intervals from the seed noise
# measured on the networks trained twice (research/scripts/proof-collect-summary.py).
#
#   research/scripts/proof-collect.sh table    # profile + calibrate this machine's table (idle machine)
#   research/scripts/proof-collect.sh measure  # every network of the list end to end, REPEATS runs, each in
#                                              # its own order, all networks interleaved (idle machine)
#   research/scripts/proof-collect.sh centre   # T = median of the campaign's equal-latency group in the
#                                              # latest measurement, ms (kept in target-ms)
#   research/scripts/proof-collect.sh search   # the constraint search at T with the campaign's predictor
#   research/scripts/proof-collect.sh train    # the winner (seeds 0, 1), the references (seed 0) and
#                                              # SEED1 (ids) with seed 1: JOBS trainers, resumable
#   research/scripts/proof-collect.sh report   # proof.json and its table
#
# Order: table, measure (campaign + references), centre, search, train, measure again (now with the
# winner: the proof reads only the latest measurement), report. Trainings need no idle machine; never
# measure while one runs.
#
# Environment: COLLECT (the campaign's committed folder, default docs/evidence/few-shot-3ep: plan.tsv,
# results.tsv, collect.json, predictor-adapted.json), EVIDENCE (what is committed, default
# docs/evidence/proof-3ep), WORK (trainings, exports, search; default runs/proof-3ep), DATA (default
# ../shared/data/cifar10-jpeg.tar.gz), REFERENCES (default "shufflenet_v2_x0_5 mobilenet_v2", built with
# the small-input stem), SEED1 (ids trained again with seed 1, default none), JOBS (default 2), REPEATS
# (default 5), TOLERANCE (percent, default 3), HSCONAS / RUNTIME (binaries; default release builds).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

collect=${COLLECT:-docs/evidence/few-shot-3ep}
evidence=${EVIDENCE:-docs/evidence/proof-3ep}
work=${WORK:-runs/proof-3ep}
data=${DATA:-../shared/data/cifar10-jpeg.tar.gz}
references=${REFERENCES:-shufflenet_v2_x0_5 mobilenet_v2}
target_dir=${CARGO_TARGET_DIR:-target}
hsconas=${HSCONAS:-$target_dir/release/hsconas}
runtime=${RUNTIME:-$target_dir/release/hsconas-runtime}
table=$work/table.json
list=$evidence/list.tsv
# The campaign's recipe (collect.json): 3 epochs, 1 of warm-up, every training image, test top-1.
RECIPE=(--epochs 3 --warmup-epochs 1 --batch-size 64 --lr 0.05 --weight-decay 0.00003 --init spos
  --val-fraction 0.1 --split-seed 0)

die() {
  echo "$*" >&2
  exit 1
}

build() {
  [[ -n ${HSCONAS:-} && -n ${RUNTIME:-} ]] && return 0
  cargo build -q --release -p hsconas -p hsconas-runtime --bin hsconas --bin hsconas-runtime >&2
}

table_step() {
  build
  mkdir -p "$work" "$evidence"
  "$hsconas" profile --device local-cpu --input-size 32 --out "$table"
  "$hsconas" calibrate --table "$table" --samples 50 --seed 7
  cp "$table" "$evidence/table.json" # kept with the proof (compacted), the search's table
  bash research/scripts/compact-evidence.sh "$evidence"
}

write_list() { # the winner (once searched), the campaign's networks, the references
  mkdir -p "$evidence"
  {
    printf 'id\tgroup\tarch\n'
    local search
    for search in "$evidence/search.json" "$evidence/search.json.gz"; do # compacted once committed
      [[ -f $search ]] || continue
      printf 'w00\twinner\t%s\n' "$(python3 -c "import gzip,json,sys; f=sys.argv[1]; \
print(json.load(gzip.open(f, 'rt') if f.endswith('.gz') else open(f))['winner']['arch'])" "$search")"
      break
    done
    awk -F'\t' 'NR > 1 { printf "%s\t%s\t%s\n", $1, $2, $4 }' "$collect/plan.tsv"
    for r in $references; do printf 'ref-%s\treference\t%s\n' "$r" "$r"; done
  } >"$list"
}

measure_step() {
  build
  write_list
  mkdir -p "$work/onnx"
  local id group arch
  while IFS=$'\t' read -r id group arch; do
    local onnx=$work/onnx/$id.onnx
    [[ -f $onnx ]] && continue
    if [[ $group == reference ]]; then
      "$hsconas" export onnx --reference "$arch" --small-input-stem --input-size 32 --classes 10 --out "$onnx" >&2
    else
      "$hsconas" export onnx --arch "$arch" --input-size 32 --classes 10 --out "$onnx" >&2
    fi
  done < <(tail -n +2 "$list")
  echo "measuring $(($(wc -l <"$list") - 1)) networks end to end: keep the machine otherwise idle" >&2
  rm -rf "$evidence/measured"
  mkdir -p "$evidence/measured"
  local r
  for r in $(seq "${REPEATS:-5}"); do # every run in its own order, all networks in one interleaved group
    tail -n +2 "$list" | cut -f1 | shuf --random-source=<(yes "$r") |
      python3 -c "import json,sys; print(json.dumps({'models': [{'name': i, 'path': i + '.onnx'} for i in sys.stdin.read().split()]}))" \
        >"$work/onnx/manifest.json"
    "$runtime" measure --group 64 --out "$evidence/measured/run-$r.json" "$work/onnx/manifest.json" >&2
  done
}

centre_step() {
  [[ -f $evidence/measured/run-1.json ]] || die "not measured yet: $0 measure"
  rm -rf "$evidence/measured-centre" # the measurement T is read from, kept when `measure` runs again
  cp -r "$evidence/measured" "$evidence/measured-centre"
  python3 - "$list" "$evidence/measured" "$evidence/target-ms" <<'PY'
import csv, glob, json, statistics, sys
equal = [r["id"] for r in csv.DictReader(open(sys.argv[1]), delimiter="\t") if r["group"] == "equal"]
runs = [json.load(open(f))["results"] for f in sorted(glob.glob(sys.argv[2] + "/run-*.json"))]
per_network = [statistics.median(run[i]["p10_ms"] for run in runs) for i in equal]
t = statistics.median(per_network)
open(sys.argv[3], "w").write(f"{t:.4f}\n")
print(f"equal-latency group: median {t:.4f} ms over {len(equal)} networks "
      f"({min(per_network):.3f}-{max(per_network):.3f}); T kept in {sys.argv[3]}")
PY
}

search_step() {
  build
  [[ -f $evidence/target-ms ]] || die "no target yet: $0 centre"
  local dir=$work/search resume=()
  [[ -f $dir/search.partial.json ]] && resume=(--resume)
  "$hsconas" search --table "$table" --target-ms "$(cat "$evidence/target-ms")" --mode constraint \
    --estimator predictor --predictor "$collect/predictor-adapted.json" --data "$data" \
    --val-fraction 0.1 --split-seed 0 --seed 0 --threads 2 --out "$dir" "${resume[@]}" </dev/null
  cp "$dir/search.json" "$evidence/search.json"
  bash research/scripts/compact-evidence.sh "$evidence"
  write_list
}

todo() { # id seed group arch, for every training the proof needs
  # the references first: the larger ones train longest, so they start while the others go through
  awk -F'\t' 'NR > 1 && $2 == "reference" { print $1, 0, $2, $3 }' "$list" | tac
  awk -F'\t' 'NR > 1 && $2 == "winner" { print $1, 0, $2, $3; print $1, 1, $2, $3 }' "$list"
  local id
  for id in ${SEED1:-}; do
    awk -F'\t' -v id="$id" '$1 == id { print $1, 1, $2, $3 }' "$list"
  done
}

train_one() { # id seed group arch
  local id=$1 seed=$2 group=$3 arch=$4
  local dir=$work/runs/$id-s$seed kept=$evidence/runs/$id-s$seed
  [[ -f $kept/model.json ]] && return 0
  if [[ ! -f $dir/model.json ]]; then
    local resume=() what=(--arch "$arch")
    [[ -f $dir/checkpoint.safetensors ]] && resume=(--resume)
    [[ $group == reference ]] && what=(--reference "$arch" --small-input-stem)
    echo "== $id seed $seed ($(date -u +%H:%M:%S))" >&2
    "$hsconas" train "${what[@]}" --data "$data" "${RECIPE[@]}" --seed "$seed" --threads 1 \
      --out "$dir" "${resume[@]}" </dev/null >"$work/runs/$id-s$seed.log" 2>&1
  fi
  mkdir -p "$kept"
  cp "$dir/model.json" "$dir/history.json" "$kept/"
  echo "$id seed $seed done: test top-1 $(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['test']['top1'])" "$kept/model.json")" >&2
}

train_step() {
  build
  [[ -f $list ]] && grep -q $'\twinner\t' "$list" || die "no winner yet: $0 search"
  mkdir -p "$work/runs"
  export -f train_one
  export work evidence data hsconas
  export RECIPE_LINE="${RECIPE[*]}"
  todo | xargs -P "${JOBS:-2}" -L 1 bash -c 'RECIPE=($RECIPE_LINE); train_one "$@"' _
}

report_step() {
  python3 research/scripts/proof-collect-summary.py --list "$list" --measured "$evidence/measured" \
    --collection "$collect/results.tsv" --runs "$evidence/runs" --target-ms "$(cat "$evidence/target-ms")" \
    --tolerance "${TOLERANCE:-3}" --out "$evidence/proof.json"
}

case ${1:-} in
  table) table_step ;;
  measure) measure_step ;;
  centre) centre_step ;;
  search) search_step ;;
  train) train_step ;;
  report) report_step ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' >&2 # the header above
    exit 2
    ;;
esac
