#!/usr/bin/env bash
# Training throughput, side by side in one run on this machine:
#   1. one architecture (layout A, CIFAR size, batch 64) trained through our tch code
#      (search/train/examples/bench_train.rs) and through PyTorch on the same layer graph
#      (scripts/bench/train_pytorch.py), alternating REPEAT times, same threads and random batches;
#      goal: ratio of images/s >= 0.95;
#   2. the data pipeline alone (search/data/examples/bench_data.rs): decoding the dataset and one epoch of
#      augmented batches; it must be far faster than training.
# Writes runs/bench-train/samples.jsonl and results.json (samples and the summary's numbers) and prints a
# summary. Results go in docs/BENCHMARKS.md, the results.json in docs/evidence/bench-train/.
#   REPEAT (3), THREADS (2), BATCH (64), STEPS (30), DATA (../shared/data/cifar10-jpeg.tar.gz, else the sample)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh >/dev/null 2>&1
cargo build --release -p hsconas -p hsconas-train -p hsconas-data --bin hsconas --example bench_train --example bench_data >&2
target=${CARGO_TARGET_DIR:-target}
py=.hsconas/venv/bin/python
out=runs/bench-train
mkdir -p "$out"
REPEAT=${REPEAT:-3}
THREADS=${THREADS:-2}
BATCH=${BATCH:-64}
STEPS=${STEPS:-30}
DATA=${DATA:-../shared/data/cifar10-jpeg.tar.gz}
[ -e "$DATA" ] || DATA=data/cifar10-sample.tar.gz

arch=$("$target/release/hsconas" arch sample --seed 3)
"$target/release/hsconas" arch graph --arch "$arch" --input-size 32 --classes 10 > "$out/graph.json"
: > "$out/samples.jsonl"
for rep in $(seq "$REPEAT"); do
  "$target/release/examples/bench_train" --arch "$arch" --batch "$BATCH" --threads "$THREADS" --steps "$STEPS" >> "$out/samples.jsonl"
  "$py" scripts/bench/train_pytorch.py "$out/graph.json" --batch "$BATCH" --threads "$THREADS" --steps "$STEPS" >> "$out/samples.jsonl"
done
"$target/release/examples/bench_data" --data "$DATA" --batch "$BATCH" --workers "$THREADS" >> "$out/samples.jsonl"

"$py" - "$out/samples.jsonl" "$arch" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ours = [r["images_per_s"] for r in rows if r["tool"] == "hsconas-tch"]
theirs = [r["images_per_s"] for r in rows if r["tool"] == "pytorch"]
ratios = [a / b for a, b in zip(ours, theirs)]
data = next(r for r in rows if r["tool"] == "hsconas-data")
print(f"architecture {sys.argv[2]}")
print(f"| repetition | ours (img/s) | PyTorch (img/s) | ratio |")
print(f"|---|---|---|---|")
for i, (a, b) in enumerate(zip(ours, theirs), 1):
    print(f"| {i} | {a:.1f} | {b:.1f} | {a / b:.3f} |")
print(f"median ratio {statistics.median(ratios):.3f} (ours {statistics.median(ours):.1f}, PyTorch {statistics.median(theirs):.1f} img/s)")
print(f"data: decoded {data['decoded_images']} images in {data['decode_seconds']} s ({data['decode_images_per_s']} img/s); "
      f"loader {data['loader_images_per_s']} img/s with {data['workers']} workers "
      f"({data['loader_images_per_s'] / statistics.median(ours):.0f}x the training speed)")
summary = {
    "architecture": sys.argv[2],
    "samples": rows,
    "ratios": ratios,
    "median_ratio": statistics.median(ratios),
    "median_ours_images_per_s": statistics.median(ours),
    "median_pytorch_images_per_s": statistics.median(theirs),
    "data": data,
    "loader_over_training": data["loader_images_per_s"] / statistics.median(ours),
}
json.dump(summary, open(sys.argv[1].replace("samples.jsonl", "results.json"), "w"), indent=1)
PY
