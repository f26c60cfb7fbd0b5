#!/usr/bin/env bash
# The results study of docs/RESULTS.md on this machine's CPU: searches at a tight and a loose latency target
# on CIFAR-10 (input 32, layout A, local-cpu), the hand-designed baselines and the conventional channel
# scaling trained with the same recipe and budget, every network's latency at input 32 and 224 (ONNX
# Runtime and tract, batch 1), the latency model's accuracy, and a report with tables and plots.
#
# Resumable: a step whose output exists is skipped and an interrupted search or training resumes, so
# rerunning the same command continues where it stopped. Phases run in this order:
#   search   `hsconas search` at TIGHT_MS and LOOSE_MS (needs SUPERNET)
#   latency  exports and `hsconas-runtime bench` of every network; `hsconas latency validate` of the tables;
#            picks the uniform channel scale closest in latency to each found network
#   train    `hsconas train` of every network for each seed, JOBS at a time (one thread each)
#   report   `hsconas supernet eval` of the trained networks of the space, then
#            `cargo run -p hsconas-research --bin reproduce_report`: results.json, results.md, accuracy-latency.png
# Kept as it goes: each step's small result files (search reports, the supernet's history and its scores
# of the networks of the space, latency measurements, each training's model.json and history.json, the
# report) are copied into EVIDENCE (docs/evidence/reproduce), which is committed, and restored from it on
# the next run, so a study that spans several sittings or machines never redoes a finished step. The
# supernet checkpoint is needed only until the searches and its scores are done. EVIDENCE records the
# settings it was made with; a run with other settings is refused (set EVIDENCE to another folder, or
# EVIDENCE= to keep nothing).
# Settings (environment):
#   PHASES ("supernet search latency train report"), OUT (runs/reproduce),
#   DATA (../shared/data/cifar10-jpeg.tar.gz), SUPERNET (a checkpoint of `hsconas supernet train` on DATA;
#   default: trained here by the `supernet` phase, 5 epochs), TIGHT_MS (0.55), LOOSE_MS (0.75),
#   SEEDS ("1 2"), EPOCHS (2), LR (0.1), JOBS (2), BENCH_REPEATS (3 invocations per latency, the fastest kept),
#   SUPERNET_THREADS (2), EVIDENCE (docs/evidence/reproduce)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=${OUT:-runs/reproduce}
DATA=${DATA:-../shared/data/cifar10-jpeg.tar.gz}
# The default is the development machines' local copy of CIFAR-10 (docs/DESIGN.md section 5).
[ -e "$DATA" ] || { echo "no dataset at $DATA: pass DATA=PATH (CIFAR-10 binary tarball, ImageFolder or its .tar.gz)" >&2; exit 2; }
SUPERNET=${SUPERNET:-$OUT/supernet/checkpoint.safetensors}
TIGHT_MS=${TIGHT_MS:-0.55}
LOOSE_MS=${LOOSE_MS:-0.75}
SEEDS=${SEEDS:-1 2}
EPOCHS=${EPOCHS:-2}
LR=${LR:-0.1}
JOBS=${JOBS:-2}
TABLE32=devices/tables/local-cpu-A-32.json
TABLE224=devices/tables/local-cpu-A-224.json
REFERENCES="mobilenet_v2 shufflenet_v2_x0_5 shufflenet_v2_x1_0 shufflenet_v2_x1_5 shufflenet_v2_x2_0 mobilenet_v3_large mnasnet1_0"
# The baselines trained on CIFAR-10, all with the small-input stem (slowest first: trainings run in this
# order, JOBS at a time).
BASELINES="mobilenet_v2 shufflenet_v2_x1_0 shufflenet_v2_x0_5"
SUPERNET_THREADS=${SUPERNET_THREADS:-2}
EVIDENCE=${EVIDENCE-docs/evidence/reproduce}
export OUT DATA EPOCHS LR EVIDENCE
mkdir -p "$OUT"

# keep FILE...: copies files under OUT to the same place under EVIDENCE (nothing when EVIDENCE is empty).
keep() {
  [ -n "$EVIDENCE" ] || return 0
  local file rel
  for file in "$@"; do
    rel=${file#"$OUT"/}
    mkdir -p "$EVIDENCE/$(dirname "$rel")"
    cp "$file" "$EVIDENCE/$rel"
  done
}
export -f keep
if [ -n "$EVIDENCE" ]; then
  settings="data=$(basename "$DATA") tight_ms=$TIGHT_MS loose_ms=$LOOSE_MS seeds=$SEEDS epochs=$EPOCHS lr=$LR"
  if [ -e "$EVIDENCE/settings.txt" ] && [ "$(cat "$EVIDENCE/settings.txt")" != "$settings" ]; then
    echo "$EVIDENCE holds a study made with other settings ($(cat "$EVIDENCE/settings.txt")); this run has" \
      "$settings. Use EVIDENCE=another/folder, or EVIDENCE= to keep nothing." >&2
    exit 2
  fi
  mkdir -p "$EVIDENCE"
  echo "$settings" >"$EVIDENCE/settings.txt"
  # What earlier sittings finished (files only; OUT's own newer files win).
  cp -rn "$EVIDENCE/." "$OUT/"
  # Committed files over 100 KB are gzip-compressed (research/scripts/compact-evidence.sh): unpack them
  # where OUT has no newer copy, so the phases find what they wrote.
  find "$OUT" -name '*.json.gz' -print0 | while IFS= read -r -d '' gz; do
    [ -e "${gz%.gz}" ] || gzip -dc "$gz" >"${gz%.gz}"
    rm -f "$gz"
  done
fi

bash scripts/setup.sh >/dev/null
cargo build --release -p hsconas --bin hsconas -p hsconas-runtime --bin hsconas-runtime >&2
export hsconas=${CARGO_TARGET_DIR:-target}/release/hsconas
runtime=${CARGO_TARGET_DIR:-target}/release/hsconas-runtime
python=.hsconas/venv/bin/python

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

# Wall time of each phase, appended to $OUT/timing.tsv (phase, start, end, seconds).
timed() {
  local start end
  start=$(date -u +%s)
  "$@"
  end=$(date -u +%s)
  printf '%s\t%s\t%s\t%s\n' "$1" "$start" "$end" "$((end - start))" >>"$OUT/timing.tsv"
  keep "$OUT/timing.tsv"
}

# Whether everything that needs the supernet is done (then it is not needed any more).
supernet_done() {
  local name
  for name in search-tight/search.json search-loose/search.json supernet-eval/hsconet-tight.json \
    supernet-eval/hsconet-loose.json supernet-eval/uniform-1.0.json; do
    [ -e "$OUT/$name" ] || return 1
  done
}

phase_supernet() {
  if supernet_done; then
    log "the searches and the supernet's scores are done: no supernet needed"
    return 0
  fi
  if [ "$SUPERNET" != "$OUT/supernet/checkpoint.safetensors" ]; then
    [ -e "$SUPERNET" ] || { echo "SUPERNET=$SUPERNET does not exist" >&2; exit 1; }
    return 0
  fi
  local resume=()
  [ -e "$OUT/supernet/checkpoint.safetensors" ] && resume=(--resume)
  "$hsconas" supernet train --data "$DATA" --epochs 5 --warmup-epochs 0 --lr 0.05 --init spos \
    --threads "$SUPERNET_THREADS" --eval-subnets 3 --eval-images 1000 --out "$OUT/supernet" "${resume[@]}"
  keep "$OUT/supernet/history.json"
}

search() { # NAME TARGET_MS
  local dir=$OUT/search-$1 resume=()
  [ -e "$dir/search.partial.json" ] && resume=(--resume)
  [ -e "$dir/search.json" ] || "$hsconas" search --supernet "$SUPERNET" --table "$TABLE32" \
    --target-ms "$2" --data "$DATA" --seed 1 --population 20 --generations 10 --parents 8 \
    --remeasure 3 --threads 2 --out "$dir" "${resume[@]}"
  keep "$dir/search.json"
}

# supernet_eval NAME ARCH: the supernet's validation accuracy of one network (5,000 validation images), to
# see how well it ranks what the trainings find.
supernet_eval() {
  local json=$OUT/supernet-eval/$1.json
  [ -e "$json" ] && return 0
  mkdir -p "$OUT/supernet-eval"
  "$hsconas" supernet eval --checkpoint "$SUPERNET" --arch "$2" --data "$DATA" --json >"$json.tmp"
  mv "$json.tmp" "$json"
  keep "$json"
}

phase_search() {
  local name s
  search tight "$TIGHT_MS"
  search loose "$LOOSE_MS"
  # The supernet's scores of every network of the space that may be trained (the uniform scales are
  # picked later, by measured latency), so that the checkpoint is not needed after this phase.
  for name in tight loose; do
    supernet_eval "hsconet-$name" "$(winner "$name")"
  done
  for s in 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 1.0; do
    supernet_eval "uniform-$s" "$(uniform "$s")"
  done
}

# The architecture a search found.
winner() { "$python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["winner"]["arch"])' "$OUT/search-$1/search.json"; }
# The all-shuffle3 architecture at one channel scale.
uniform() {
  local entries
  entries=$(printf "shuffle3:$1,%.0s" {1..20})
  echo "${entries%,}"
}

# export NAME SIZE FLAGS...: $OUT/onnx/SIZE/NAME.onnx with random weights (latency does not depend on them).
export_onnx() {
  local name=$1 size=$2 classes=1000 file
  shift 2
  [ "$size" = 32 ] && classes=10
  file=$OUT/onnx/$size/$name.onnx
  # Only what is still to be measured (measurements restored from EVIDENCE need no model).
  [ -e "$OUT/latency/$size/$name.ort.json" ] && [ -e "$OUT/latency/$size/$name.tract.json" ] && return 0
  mkdir -p "$(dirname "$file")"
  [ -e "$file" ] || "$hsconas" export onnx "$@" --input-size "$size" --classes "$classes" --out "$file"
}

# bench NAME SIZE: $OUT/latency/SIZE/NAME.BACKEND.json for ONNX Runtime and tract, one thread, batch 1: the
# best (lowest 10th percentile, the statistic of the latency tables) of BENCH_REPEATS separate invocations. On a shared VM a whole process can run 30-50%
# slow (a disturbed neighbour; seen on 2026-12-01 for a quarter of the invocations of one model), and
# interference only ever adds time, so the fastest invocation is the one to keep.
BENCH_REPEATS=${BENCH_REPEATS:-3}
bench() {
  local name=$1 size=$2 backend json i
  for backend in ort tract; do
    json=$OUT/latency/$size/$name.$backend.json
    mkdir -p "$(dirname "$json")"
    if [ ! -e "$json" ]; then
      for i in $(seq "$BENCH_REPEATS"); do
        "$runtime" bench "$OUT/onnx/$size/$name.onnx" --backend "$backend" --json >"$json.$i.tmp"
      done
      "$python" - "$json" "$BENCH_REPEATS" <<'PY'
import json, os, sys
path, n = sys.argv[1], int(sys.argv[2])
runs = [json.load(open(f"{path}.{i}.tmp")) for i in range(1, n + 1)]
best = min(runs, key=lambda r: r["p10_ms"])
best["invocation_p10_ms"] = [r["p10_ms"] for r in runs]
best["invocation_medians_ms"] = [r["median_ms"] for r in runs]
json.dump(best, open(f"{path}.tmp", "w"), indent=1)
for i in range(1, n + 1):
    os.remove(f"{path}.{i}.tmp")
PY
      mv "$json.tmp" "$json"
      keep "$json"
    fi
  done
}

phase_latency() {
  local ref name s
  for ref in $REFERENCES; do
    log "latency at 224: $ref"
    export_onnx "$ref" 224 --reference "$ref" && bench "$ref" 224
  done
  for name in tight loose; do
    log "latency at 224 and 32: hsconet-$name"
    export_onnx "hsconet-$name" 224 --arch "$(winner "$name")" && bench "hsconet-$name" 224
    export_onnx "hsconet-$name" 32 --arch "$(winner "$name")" && bench "hsconet-$name" 32
  done
  for ref in $BASELINES; do
    log "latency at 32: $ref (small-input stem)"
    export_onnx "$ref" 32 --reference "$ref" --small-input-stem && bench "$ref" 32
  done
  for s in 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 1.0; do
    log "latency at 32: uniform shuffle3:$s"
    export_onnx "uniform-$s" 32 --arch "$(uniform "$s")" && bench "uniform-$s" 32
  done
  mkdir -p "$OUT/latency-model"
  for table in "$TABLE32" "$TABLE224"; do
    name=$(basename "$table" .json)
    [ -e "$OUT/latency-model/$name.json" ] || cp "$table" "$OUT/latency-model/$name.json"
    [ -e "$OUT/latency-model/$name.validation.json" ] || "$hsconas" latency validate \
      --table "$OUT/latency-model/$name.json" --samples 100 --plot "$OUT/latency-model/$name.png" \
      --out "$OUT/latency-model/$name.validation.json" >/dev/null
    keep "$OUT/latency-model/$name.validation.json"
  done
  # For each found network, two uniform scales: the one closest to it in measured latency (ONNX Runtime)
  # and the widest one that is not slower (what an engineer scaling by hand would pick for that budget).
  "$python" - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
ms = lambda name: json.load(open(f"{out}/latency/32/{name}.ort.json"))["p10_ms"]
scales = [f"{s / 10:.1f}" for s in range(1, 11)]
for name in ("tight", "loose"):
    found = ms(f"hsconet-{name}")
    closest = min(scales, key=lambda s: abs(ms(f"uniform-{s}") / found - 1))
    widest = max((s for s in scales if ms(f"uniform-{s}") <= found), key=float, default=closest)
    open(f"{out}/uniform-{name}.txt", "w").write("\n".join(sorted({closest, widest})) + "\n")
    print(f"hsconet-{name}: {found:.3f} ms; uniform scale closest in latency {closest} "
          f"({ms(f'uniform-{closest}'):.3f} ms), widest not slower {widest} ({ms(f'uniform-{widest}'):.3f} ms)",
          file=sys.stderr)
PY
  keep "$OUT/uniform-tight.txt" "$OUT/uniform-loose.txt"
}

# One training: NAME SEED FLAGS... into $OUT/train/NAME/seed-SEED (skipped when finished).
train_one() {
  local name=$1 seed=$2 dir resume=()
  shift 2
  dir=$OUT/train/$name/seed-$seed
  [ -e "$dir/model.json" ] && return 0
  mkdir -p "$dir"
  [ -e "$dir/checkpoint.safetensors" ] && resume=(--resume)
  echo "[$(date -u +%H:%M:%S)] training $name, seed $seed" >&2
  "$hsconas" train "$@" --data "$DATA" --epochs "$EPOCHS" --warmup-epochs 0 --lr "$LR" \
    --threads 1 --seed "$seed" --out "$dir" "${resume[@]}" >"$dir/train.log" 2>&1
  keep "$dir/model.json" "$dir/history.json"
}
export -f train_one

# The networks trained on CIFAR-10, one per line: NAME and `hsconas train` flags.
networks() {
  local name s
  for name in $BASELINES; do
    echo "$name --reference $name --small-input-stem"
  done
  for name in tight loose; do
    echo "hsconet-$name --arch $(winner "$name")"
  done
  for s in $(sort -u "$OUT/uniform-tight.txt" "$OUT/uniform-loose.txt"); do
    echo "uniform-$s --arch $(uniform "$s")"
  done
}

phase_train() {
  networks >"$OUT/networks.txt"
  keep "$OUT/networks.txt"
  local seed
  for seed in $SEEDS; do
    sed "s/^\([^ ]*\) /\1 $seed /" "$OUT/networks.txt"
  done | xargs -P "$JOBS" -L 1 bash -c 'train_one "$@"' _
}

# The report: results.json, results.md and the plot, from what the phases wrote.
phase_report() {
  cargo run --release -p hsconas-research --bin reproduce_report -- "$OUT"
  keep "$OUT/results.json" "$OUT/results.md" "$OUT/accuracy-latency.png"
  [ -z "$EVIDENCE" ] || bash research/scripts/compact-evidence.sh "$EVIDENCE"
}

for phase in ${PHASES:-supernet search latency train report}; do
  log "phase $phase"
  timed "phase_$phase"
done
