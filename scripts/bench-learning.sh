#!/usr/bin/env bash
# Learning check (docs/BENCHMARKS.md, "Same learning as PyTorch"): one layer graph (every layer
# `shuffle3:1.0`, layout A, input 32) trained on real CIFAR-10 images, 1,000 per class, batch 64, learning
# rate 0.05, 1 thread each, for STEPS steps, by our `hsconas train` (cosine schedule, per-epoch history) and
# by PyTorch on the same graph (scripts/bench/learning_pytorch.py, fixed rate, accuracy every 50 steps). The
# two run side by side (one core each); this compares accuracy, not speed.
# Writes runs/bench-learning/results.json (PyTorch's per-50-step training loss and accuracy, our per-epoch
# history and validation accuracy). Results go in docs/BENCHMARKS.md, the results.json in
# docs/evidence/bench-learning/.
#   STEPS (300), DATA (../shared/data/cifar10-jpeg.tar.gz)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh >/dev/null 2>&1
cargo build --release -p hsconas --bin hsconas >&2
hsconas=${CARGO_TARGET_DIR:-target}/release/hsconas
py=.hsconas/venv/bin/python
# The PyTorch side reads the JPEGs with Pillow, which the project's setup does not need otherwise.
"$py" -c "import PIL" 2>/dev/null || "$py" -m pip install --quiet pillow >&2
DATA=${DATA:-../shared/data/cifar10-jpeg.tar.gz}
[ -e "$DATA" ] || { echo "no dataset at $DATA: pass DATA=PATH (a CIFAR-10 JPEG ImageFolder .tar.gz)" >&2; exit 2; }
STEPS=${STEPS:-300}
out=runs/bench-learning
rm -rf "$out"
mkdir -p "$out"
arch=$(printf 'shuffle3:1.0,%.0s' {1..20})
arch=${arch%,}
"$hsconas" arch graph --arch "$arch" --input-size 32 --classes 10 >"$out/graph.json"
# --val-fraction 0.8 leaves 1,000 training images per class, as PyTorch's side takes.
"$hsconas" train --arch "$arch" --data "$DATA" --val-fraction 0.8 --epochs 3 --warmup-epochs 0 --lr 0.05 \
  --max-steps "$STEPS" --threads 1 --out "$out/ours" >"$out/ours.log" 2>&1 &
ours=$!
OMP_NUM_THREADS=1 "$py" scripts/bench/learning_pytorch.py "$out/graph.json" "$STEPS" 0.05 1000 "$DATA" >"$out/pytorch.log"
wait "$ours"
"$py" - "$out" "$arch" "$STEPS" <<'PY'
import json, re, sys
out, arch, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
pytorch = []
for line in open(f"{out}/pytorch.log"):
    m = re.match(r"pytorch step (\d+): loss ([0-9.]+) acc ([0-9.]+)%", line)
    if m:
        pytorch.append({"steps": [int(m.group(1)) - 49, int(m.group(1))], "loss": float(m.group(2)),
                        "train_top1": float(m.group(3))})
history = json.load(open(f"{out}/ours/history.json"))
# The running training accuracy of each epoch as the log last printed it (the epoch --max-steps cut short
# has no history entry).
running = {}
for line in open(f"{out}/ours.log"):
    m = re.search(r"epoch (\d+)/\d+ batch (\d+)/(\d+): loss ([0-9.]+) acc ([0-9.]+)%", line)
    if m:
        running[int(m.group(1))] = {"epoch": int(m.group(1)), "batches": int(m.group(2)),
                                    "loss": float(m.group(4)), "train_top1": float(m.group(5))}
results = {"architecture": arch, "steps": steps, "lr": 0.05, "batch": 64, "images_per_class": 1000,
           "pytorch_every_50_steps": pytorch, "ours_history": history,
           "ours_running": [running[e] for e in sorted(running)]}
json.dump(results, open(f"{out}/results.json", "w"), indent=1)
print("PyTorch training top-1 per 50 steps:", ", ".join(f"{r['train_top1']:.1f}%" for r in pytorch))
print("ours, per epoch:", json.dumps(history)[:2000])
print("ours, running accuracy at the end of each epoch's log:", json.dumps(results["ours_running"]))
PY
