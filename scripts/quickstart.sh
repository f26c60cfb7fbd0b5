#!/usr/bin/env bash
# The main job on defaults, on a fresh machine: installs what is missing, builds, and runs what the project
# can do today, in about three minutes after the build, writing everything under runs/quickstart/:
#   1. samples an architecture, prints its per-layer parameters and MACs, exports it as ONNX;
#   2. builds a latency model for THIS machine (CIFAR-sized networks: every piece profiled, calibrated on 20
#      random networks) and predicts the sampled architecture's latency, then measures it to compare;
#   3. reads the committed CIFAR-10 sample and trains a small supernet on it for one epoch.
# (The full pipeline, `hsconas run --preset quick`, replaces this as the search issues land.)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
# --all-targets: the same feature set as `cargo test --workspace`, so the two share one warm build.
cargo build --workspace --all-targets
hsconas=${CARGO_TARGET_DIR:-target}/debug/hsconas
out=runs/quickstart
mkdir -p "$out"

"$hsconas" doctor
arch=$("$hsconas" arch sample --seed "${SEED:-0}")
echo "$arch" > "$out/arch.txt"
"$hsconas" arch info --arch "$arch" --input-size 32 --classes 10
"$hsconas" arch info --arch "$arch" --input-size 32 --classes 10 --json > "$out/arch-info.json"
"$hsconas" export onnx --arch "$arch" --input-size 32 --classes 10 --batch dynamic --out "$out/arch.onnx"
"$hsconas" export onnx --reference shufflenet_v2_x1_0 --out "$out/shufflenet_v2_x1_0.onnx"

table=$out/latency-local-cpu-32.json
"$hsconas" profile --device local-cpu --input-size 32 --out "$table"
"$hsconas" calibrate --table "$table" --samples 20
"$hsconas" latency predict --table "$table" --arch "$arch"
"$hsconas" export onnx --arch "$arch" --input-size 32 --classes 10 --out "$out/arch-b1.onnx" 2>/dev/null
${CARGO_TARGET_DIR:-target}/debug/hsconas-runtime bench "$out/arch-b1.onnx" --runs 50 --min-time-ms 200

"$hsconas" data inspect --data data/cifar10-sample.tar.gz
rm -rf "$out/supernet"
"$hsconas" supernet train --data data/cifar10-sample.tar.gz --layout 24,32,48,64 --epochs 1 \
  --batch-size 50 --eval-subnets 1 --eval-images 200 --bn-batches 2 --out "$out/supernet"
echo "quickstart: outputs in $out/" >&2
ls -l "$out" >&2
