#!/usr/bin/env bash
# The main job on defaults, on a fresh machine: installs what is missing, builds, and runs the whole
# pipeline with the quick preset on this machine's CPU and the committed CIFAR-10 sample
# (`hsconas run --preset quick`): profile every piece on this machine, calibrate the latency model, shrink
# the space and run the evolutionary search for TARGET_MS (default 0.7 ms) with the accuracy predictor
# fitted on the ground truth (docs/accuracy-estimators.md; ESTIMATOR=supernet trains a supernet for it
# instead, the paper's way), re-measure the best candidates here, retrain the winner and export it as
# ONNX and as a Rust crate. Everything lands in runs/quickstart-<T>ms/ (summary.json names the files).
# Rerunning continues where an interrupted run stopped; delete the folder to start over.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

start=$SECONDS
bash scripts/setup.sh
setup_s=$((SECONDS - start))
# The `hsconas` binary only (not the test targets, the runtime's binary or the research crate): the first
# result comes sooner. --workspace keeps the feature set of `cargo test --workspace`, so the test command
# reuses every dependency built here.
cargo build --workspace --bin hsconas
build_s=$((SECONDS - start - setup_s))
hsconas=${CARGO_TARGET_DIR:-target}/debug/hsconas

target_ms=${TARGET_MS:-0.7}
out=runs/quickstart-${target_ms}ms
"$hsconas" doctor
"$hsconas" run --device local-cpu --data data/cifar10-sample.tar.gz --target-ms "$target_ms" \
  --preset quick --estimator "${ESTIMATOR:-predictor}" --out "$out"
pipeline_s=$((SECONDS - start - setup_s - build_s))
echo "quickstart: outputs in $out/ (setup ${setup_s} s, build ${build_s} s, pipeline ${pipeline_s} s)" >&2
ls -l "$out" >&2
