#!/usr/bin/env bash
# The main job on defaults, on a fresh machine: installs what is missing, builds, and runs what the project
# can do today. It samples an architecture of the search space, prints its per-layer parameters and MACs,
# and exports it (and a reference network) as ONNX under runs/quickstart/.
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
echo "quickstart: outputs in $out/" >&2
ls -l "$out" >&2
