#!/usr/bin/env bash
# The accuracy ground truth of the search space (docs/accuracy-estimators.md): a fixed set of 32
# architectures, each trained from scratch with one recipe on CIFAR-10 at 32x32, the equal-latency group
# with two seeds. Every later experiment (estimators, the search-level proof) reads the result instead of
# retraining.
#
#   research/scripts/ground-truth.sh select    # writes docs/evidence/ground-truth/architectures.tsv if absent
#   research/scripts/ground-truth.sh train     # trains what is not trained yet, resumably (hours on one core)
#   research/scripts/ground-truth.sh status    # which runs are done
#   research/scripts/ground-truth.sh measure   # end-to-end latency of the set, 3 times (on an idle machine)
#   research/scripts/ground-truth.sh collect   # ground-truth.json from the list, the runs and the measurements
#   research/scripts/ground-truth.sh estimate  # every estimator's scores of the set (estimates/<name>.json)
#   research/scripts/ground-truth.sh short     # short-training scores of the trained networks that lack one
#   research/scripts/ground-truth.sh supernet  # trains a supernet on the same images (resumable), scores the set
#   research/scripts/ground-truth.sh supernet-sandwich  # the same with the sandwich rule (2 random paths) and
#                                              # in-place distillation, 10 epochs (SUPERNET_EPOCHS), scored
#                                              # as `supernet-sandwich`
#   research/scripts/ground-truth.sh score     # estimators against the trained accuracy (estimators.json), the
#                                     # fitted predictor's held-out scores (estimates/predictor.json) first
#
# Resumable: a run whose model.json exists (in OUT, or committed under docs/evidence/ground-truth/runs/)
# is done; an interrupted one continues from its checkpoint. Stop it at any time (Ctrl-C) and rerun.
# Each finished run's model.json and history.json are copied to docs/evidence/ground-truth/runs/<run>/
# so that they can be committed and no later machine trains them again. Environment: DATA (CIFAR-10, default
# ../shared/data/cifar10-jpeg.tar.gz), OUT (runs, default runs/ground-truth), THREADS (libtorch threads
# per training, default 1 so the other core stays free), JOBS (trainers working through the runs together,
# default 1; JOBS=2 THREADS=1 uses both cores of a 2-core machine), HSCONAS (the binary, default the debug
# build).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

data=${DATA:-../shared/data/cifar10-jpeg.tar.gz}
out=${OUT:-runs/ground-truth}
threads=${THREADS:-1}
hsconas=${HSCONAS:-${CARGO_TARGET_DIR:-target}/debug/hsconas}
evidence=docs/evidence/ground-truth
set_file=$evidence/architectures.tsv
table=devices/tables/local-cpu-A-32.json

# The recipe, the same for every network (recorded in each run's history and in the ground truth).
EQUAL_MS=1.0
RECIPE=(--train-per-class 1000 --val-fraction 0.1 --split-seed 0 --epochs 15 --warmup-epochs 1
  --lr 0.05 --batch-size 64 --weight-decay 0.00003 --init spos)

uniform() { # uniform channel scaling: all 20 layers shuffle3:<scale>
  local a=shuffle3:$1
  for _ in $(seq 19); do a+=",shuffle3:$1"; done
  echo "$a"
}

select_set() {
  if [[ -f $set_file ]]; then
    echo "$set_file exists; delete it to select again (the trained runs refer to its ids)" >&2
    return
  fi
  mkdir -p "$evidence"
  local tmp
  tmp=$(mktemp)
  printf 'id\tgroup\tarch\n' >"$tmp"
  local i=0
  # 10 uniform scalings of shuffle3.
  for s in 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 1.0; do
    printf 'u%02d\tuniform\t%s\n' $((i++)) "$(uniform $s)" >>"$tmp"
  done
  # 8 random draws spread over the random networks' latency range (0.80-1.64 ms on this table).
  i=0
  for ms in 0.85 0.9 1.1 1.2 1.3 1.4 1.5 1.6; do
    printf 's%02d\tspread\t%s\n' $((i++)) \
      "$("$hsconas" arch sample --table $table --near-ms $ms --tolerance 0.02 --seed $((100 + i)))" >>"$tmp"
  done
  # 2 search winners with many skip layers (the quickstart's, docs/evidence/quickstart/).
  i=0
  for t in 0.7 0.8; do
    printf 'k%02d\tskip\t%s\n' $((i++)) "$(python3 -c "import json,sys; \
print(json.load(open(sys.argv[1]))['winner']['arch'])" docs/evidence/quickstart/search-${t}ms.json)" >>"$tmp"
  done
  # 12 uniform draws predicted within 2% of EQUAL_MS: the search's own situation.
  i=0
  "$hsconas" arch sample --table $table --near-ms $EQUAL_MS --tolerance 0.02 --seed 1000 --count 12 |
    while read -r arch; do printf 'e%02d\tequal\t%s\n' $((i++)) "$arch"; done >>"$tmp"
  mv "$tmp" "$set_file"
  echo "wrote $set_file ($(($(wc -l <"$set_file") - 1)) architectures)" >&2
}

# Every (id, seed, arch) to train, in training order: seed 0 of the equal-latency group (what the search
# needs ranked), seed 1 of the same group (its noise ceiling), then seed 0 of the uniform scalings, the
# skip networks (the fitted predictor has the least data on skip layers) and the spread ones.
runs() {
  local pass
  for pass in equal:0 equal:1 uniform:0 skip:0 spread:0; do
    tail -n +2 "$set_file" | while IFS=$'\t' read -r id group arch; do
      if [[ $group == "${pass%:*}" ]]; then echo "$id ${pass#*:} $arch"; fi
    done
  done
  return 0
}

# JOBS trainers (default 1) work through the runs together, each on THREADS threads: a run is taken by
# whoever holds its lock (OUT/.locks/<run>.lock, flock), so two trainers never train the same run, and a
# lock dies with its trainer (an interrupted run is resumed by the next trainer that reaches it).
train_all() {
  [[ -f $set_file ]] || select_set
  [[ -e $data ]] || {
    echo "no CIFAR-10 at $data: set DATA (docs/DESIGN.md section 5)" >&2
    exit 1
  }
  mkdir -p "$out/.locks"
  local jobs=${JOBS:-1} worker
  [[ $jobs =~ ^[1-9][0-9]*$ ]] || {
    echo "JOBS must be a whole number of trainers, not '$jobs'" >&2
    exit 2
  }
  local pids=() failed=0 pid
  for worker in $(seq "$jobs"); do
    train_worker "$worker" &
    pids+=($!)
    sleep 1 # the first trainer takes the first run before the next one looks
  done
  for pid in "${pids[@]}"; do
    wait "$pid" || failed=1
  done
  return $failed
}

train_worker() { # trainer number: trains every run that is neither done nor taken by another trainer
  runs | while read -r id seed arch; do
    local dir=$out/$id-s$seed
    local kept=$evidence/runs/$id-s$seed
    [[ -f $kept/model.json ]] && continue
    local lock
    exec {lock}>"$out/.locks/$id-s$seed.lock"
    if ! flock -n "$lock"; then # another trainer has it
      exec {lock}>&-
      continue
    fi
    if [[ -f $dir/model.json ]]; then
      keep "$dir" "$kept"
    else
      local resume=()
      [[ -f $dir/checkpoint.safetensors ]] && resume=(--resume)
      echo "== $id seed $seed, trainer $1 ($(date -u +%H:%M:%S))" >&2
      "$hsconas" train --arch "$arch" --data "$data" "${RECIPE[@]}" --seed "$seed" \
        --threads "$threads" --out "$dir" "${resume[@]}" </dev/null # holds the lock too
      keep "$dir" "$kept"
    fi
    exec {lock}>&-
  done
}

keep() { # the small result files of a finished run, for the repository
  mkdir -p "$2"
  cp "$1/model.json" "$1/history.json" "$2/"
}

status() {
  local done=0 total=0
  while read -r id seed _; do
    total=$((total + 1))
    if [[ -f $evidence/runs/$id-s$seed/model.json || -f $out/$id-s$seed/model.json ]]; then
      done=$((done + 1))
      echo "$id-s$seed done"
    fi
  done < <(runs)
  echo "$done of $total runs done" >&2
}

example() { # the bookkeeping binary of the research crate (research/src/bin/ground_truth.rs)
  cargo build -q --workspace --bin ground_truth # the workspace's feature set: no second build of the dependencies
  "${CARGO_TARGET_DIR:-target}/debug/ground_truth" "$@"
}

# measure_list LIST DIR REPEATS: REPEATS end-to-end measurements of every network of LIST, one after
# another, into DIR/run-<n>.json (research/scripts/search-proof.sh measures its list the same way). Every run takes
# the list in its own order (shuffled, seeded by the run's number), so that where a network sits in a run
# while the device's speed moves is noise, not a bias the median over runs keeps; `collect` divides every
# run by its median over the list before combining the runs (hsconas_nas::ground_truth::run_normalised_ms).
measure_list() {
  echo "measuring $1 end to end: keep the machine otherwise idle (no build, no training)" >&2
  mkdir -p "$2"
  local r order
  order=$(mktemp)
  for r in $(seq "$3"); do
    tail -n +2 "$1" | shuf --random-source=<(yes "$r") >"$order"
    "$hsconas" latency validate --table $table --archs "$order" --out "$2/run-$r.json"
  done
  rm -f "$order"
}

measure() { # MEASURE_REPEATS (default 3) measurements of the set
  measure_list "$set_file" "$evidence/measured" "${MEASURE_REPEATS:-3}"
}

# collect_list LIST MEASURED_DIR OUT SEEDS: LIST's networks with their trainings (the ground truth's runs)
# and the medians of the measurements in MEASURED_DIR, as one ground-truth file OUT; SEEDS says in words
# which seeds the recipe trains.
collect_list() {
  local measured=() f
  for f in "$2"/run-*.json; do
    [[ -f $f ]] && measured+=(--measured "$f")
  done
  example collect --list "$1" --runs "$evidence/runs" --table $table "${measured[@]}" \
    --recipe "hsconas train ${RECIPE[*]} --seed $4 --threads $threads" \
    --machine "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) logical CPUs" \
    --out "$3"
}

collect() {
  collect_list "$set_file" "$evidence/measured" "$evidence/ground-truth.json" \
    "0 (and 1 for the equal-latency group)"
}

estimate() {
  mkdir -p "$evidence/estimates"
  for e in params macs synflow snip grad-norm naswot; do # short-training: minutes per network, run apart
    "$hsconas" estimate --estimator $e --archs "$set_file" --data "$data" --json \
      >"$evidence/estimates/$e.json.tmp"
    mv "$evidence/estimates/$e.json.tmp" "$evidence/estimates/$e.json"
  done
}

short() { # short training (minutes per network): only the trained networks, added one at a time
  local file=$evidence/estimates/short-training.json
  while read -r id seed arch; do
    [[ $seed == 0 && -f $evidence/runs/$id-s0/model.json ]] || continue
    if [[ -f $file ]] && python3 -c "import json,sys; \
sys.exit(0 if any(n['arch'] == sys.argv[2] for n in json.load(open(sys.argv[1]))['networks']) else 1)" \
      "$file" "$arch"; then
      continue
    fi
    echo "== short training of $id ($(date -u +%H:%M:%S))" >&2
    OMP_NUM_THREADS=$threads "$hsconas" estimate --estimator short-training --arch "$arch" \
      --data "$data" --json >"$file.one"
    python3 -c "
import json, os, sys
path, one = sys.argv[1], sys.argv[2]
new = json.load(open(one))
merged = json.load(open(path)) if os.path.exists(path) else dict(new, networks=[])
merged['networks'].extend(new['networks'])
json.dump(merged, open(path + '.tmp', 'w'), indent=2)
os.replace(path + '.tmp', path)
os.remove(one)
" "$file" "$file.one"
  done < <(runs)
}

# The paper's estimator on the ground truth: a supernet trained on the same 10,000 images and validation
# split as the networks (SUPERNET_EPOCHS, default 30; resumable), then every architecture of the set scored
# with its weights on the 5,000 validation images (batch-norm statistics recalibrated per architecture).
# supernet NAME [FLAGS...]: into OUT/NAME, scored as estimator NAME, FLAGS added to the training.
supernet() {
  local name=$1 dir=$out/$1
  shift
  local resume=()
  [[ -f $dir/checkpoint.safetensors ]] && resume=(--resume)
  if [[ ! -f $dir/done ]]; then
    echo "== $name ($(date -u +%H:%M:%S))" >&2
    "$hsconas" supernet train --data "$data" --train-per-class 1000 --val-fraction 0.1 --split-seed 0 \
      --epochs "${SUPERNET_EPOCHS:-30}" --init spos --seed 0 --eval-subnets 2 --threads "$threads" \
      --out "$dir" "${resume[@]}" "$@" </dev/null
    touch "$dir/done"
    cp "$dir/history.json" "$evidence/$name-history.json" 2>/dev/null || true
  fi
  OMP_NUM_THREADS=$threads "$hsconas" estimate --estimator supernet --supernet "$dir/checkpoint.safetensors" \
    --archs "$set_file" --data "$data" --train-per-class 1000 --val-fraction 0.1 --split-seed 0 \
    --eval-images 0 --json >"$evidence/estimates/$name.json.tmp"
  python3 -c '
import json, sys
path, name = sys.argv[1], sys.argv[2]
scores = json.load(open(path))
scores["estimator"] = name
json.dump(scores, open(path, "w"), indent=2)
' "$evidence/estimates/$name.json.tmp" "$name"
  mv "$evidence/estimates/$name.json.tmp" "$evidence/estimates/$name.json"
}

score() {
  # The fitted predictor is scored on held-out networks only (each predicted by a model fitted on the others).
  example predict --truth "$evidence/ground-truth.json" --table $table \
    --out "$evidence/estimates/predictor.json" --model search/nas/assets/predictor-model.json
  example score --truth "$evidence/ground-truth.json" --scores "$evidence"/estimates/*.json \
    --out "$evidence/estimators.json" --plots "$out/plots" --combine short-training+macs \
    --combine predictor+macs --combine predictor+short-training+macs
  # One plot per estimator lands in OUT; the evidence keeps the three the docs show.
  mkdir -p "$evidence/plots"
  cp "$out"/plots/{short-training,synflow,naswot}.png "$evidence/plots/"
  python3 research/scripts/estimators-table.py # the docs' table, the README sentence and their claims
}

# Run as a command (research/scripts/search-proof.sh sources this file for the recipe and the trainers).
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  case ${1:-} in
    select) select_set ;;
    train) train_all ;;
    status) status ;;
    measure) measure ;;
    collect) collect ;;
    estimate) estimate ;;
    short) short ;;
    supernet) supernet supernet ;;
    # Four paths per step (widest, narrowest, 2 random) cost ~6.5x a plain step here: 10 epochs are about
    # twice the plain supernet's 30 in compute.
    supernet-sandwich) SUPERNET_EPOCHS=${SUPERNET_EPOCHS:-10} supernet supernet-sandwich --sandwich 2 --inplace-distill ;;
    score) score ;;
    *)
      sed -n 2,25p "$0" >&2
      exit 2
      ;;
  esac
fi
