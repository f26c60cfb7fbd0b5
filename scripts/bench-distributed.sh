#!/usr/bin/env bash
# Data-parallel supernet training on this machine: `hsconas supernet train` on a class-balanced subset of
# CIFAR-10 with 1 rank and with 2 ranks under `mpirun`, one libtorch thread per rank and the same batch
# per rank, ROUNDS times alternating; then the per-step traffic of the CIFAR-10 and ImageNet supernets
# (`supernet_traffic` example), the inputs of the scaling model in docs/scale-out.md.
#
# Reported (results.json in OUT): training images/s of each run (the second epoch: the first includes
# start-up and the data loader's warm-up), the speed-up of 2 ranks over 1 (median of the rounds' ratios,
# measured side by side), and the share of the 2-rank epoch spent in the gradient all-reduce.
# Settings (environment): OUT (runs/bench-distributed), DATA (../shared/data/cifar10-jpeg.tar.gz),
# PER_CLASS (200 training images per class), BATCH (64 per rank), ROUNDS (3).
# Run it on an otherwise idle machine: it times things.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${OUT:-runs/bench-distributed}
DATA=${DATA:-../shared/data/cifar10-jpeg.tar.gz}
PER_CLASS=${PER_CLASS:-200}
BATCH=${BATCH:-64}
ROUNDS=${ROUNDS:-3}
[ -e "$DATA" ] || { echo "no dataset at $DATA: pass DATA=PATH" >&2; exit 2; }
mkdir -p "$OUT"

bash scripts/setup.sh --mpi >/dev/null
cargo build --release -p hsconas --features hsconas/mpi --bin hsconas -p hsconas-train --example supernet_traffic >&2
target=${CARGO_TARGET_DIR:-target}/release
python=.hsconas/venv/bin/python
# Open MPI refuses root unless told; containers and CI run as root.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

run() { # RANKS ROUND
  local dir=$OUT/ranks-$1-round-$2
  rm -rf "$dir"
  mpirun --oversubscribe -np "$1" "$target/hsconas" supernet train --data "$DATA" \
    --train-per-class "$PER_CLASS" --epochs 2 --batch-size "$BATCH" --lr 0.05 --warmup-epochs 0 \
    --eval-subnets 0 --threads 1 --out "$dir" >"$dir.log" 2>&1
}

for round in $(seq "$ROUNDS"); do
  echo "round $round: 1 rank, then 2 ranks" >&2
  run 1 "$round"
  run 2 "$round"
done
"$target/examples/supernet_traffic" --paths 20 >"$OUT/traffic.json"

"$python" - "$OUT" "$ROUNDS" "$PER_CLASS" "$BATCH" <<'PY'
import json, os, platform, statistics, sys
out, rounds, per_class, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def epoch(ranks, r):
    h = json.load(open(f"{out}/ranks-{ranks}-round-{r}/history.json"))
    return h[-1] if isinstance(h, list) else h["epochs"][-1]
rows = []
for r in range(1, rounds + 1):
    one, two = epoch(1, r), epoch(2, r)
    c = two["communication"]
    rows.append({
        "round": r,
        "one_rank_images_per_s": one["images_per_s"],
        "two_ranks_images_per_s": two["images_per_s"],
        "speedup": two["images_per_s"] / one["images_per_s"],
        "allreduce_share": c["seconds"] / two["seconds"],
        "allreduce_ms_per_step": 1000 * c["seconds"] / c["steps"],
        "allreduce_mb_per_step": 4 * c["floats"] / c["steps"] / 1e6,
        "two_ranks_step_ms": 1000 * two["seconds"] / c["steps"],
    })
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
results = {
    "machine": {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release()},
    "command": f"scripts/bench-distributed.sh (PER_CLASS={per_class} BATCH={batch} ROUNDS={rounds})",
    "settings": {"train_images": 10 * per_class, "batch_per_rank": batch, "threads_per_rank": 1,
                 "epoch_timed": 2, "supernet": "layout A, input 32, 10 classes"},
    "rounds": rows,
    "median_speedup": statistics.median(r["speedup"] for r in rows),
    "median_allreduce_share": statistics.median(r["allreduce_share"] for r in rows),
    "median_allreduce_ms_per_step": statistics.median(r["allreduce_ms_per_step"] for r in rows),
    "median_two_ranks_step_ms": statistics.median(r["two_ranks_step_ms"] for r in rows),
    "traffic": json.load(open(f"{out}/traffic.json")),
}
json.dump(results, open(f"{out}/results.json", "w"), indent=1)
print(json.dumps({k: v for k, v in results.items() if k not in ("traffic", "rounds")}, indent=1))
PY
