#!/usr/bin/env bash
# INT8 accuracy of trained networks (issue 41): for each trained network (a folder `hsconas train`
# wrote), on the same weights and the same calibration images (CAL training images, seed 0):
#   fp32         hsconas export onnx
#   ours-minmax  hsconas export onnx --precision int8 (min/max ranges)
#   ours-pct     ... --calibration-method percentile (99.99% of |x|)
#   ort-minmax   ONNX Runtime's own quantize_static on the FP32 model (QDQ, per-channel int8 weights,
#                int8 activations, MinMax), calibrated on the images ours wrote (--save-calibration)
#   ours-rr      ours-minmax with --reduce-range (7-bit weights, the remedy for x86 CPUs without VNNI)
#   ort-rr       ort-minmax with reduce_range=True
#   ours-u8u8    ours-minmax run with --x64-quant-precision (ONNX Runtime's U8U8 kernels; the other
#                remedy; differs from ours-minmax only on x86 CPUs without VNNI)
# each model's test top-1 over the whole test split through `hsconas export evaluate` (ONNX Runtime,
# CPU), and the kernels ONNX Runtime runs for each INT8 model. Needs no quiet machine (nothing is timed).
# Resumable: a network whose result file exists is skipped.
#   DATA (../shared/data/cifar10-jpeg.tar.gz), CAL (256), OUT (runs/int8-accuracy),
#   EVIDENCE (empty: keep nothing; else a folder that receives summary.json), then the network folders.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
bash scripts/setup.sh >/dev/null 2>&1
cargo build --workspace --bin hsconas >&2
hsconas=${CARGO_TARGET_DIR:-target}/debug/hsconas
python=.hsconas/venv/bin/python
DATA=${DATA:-../shared/data/cifar10-jpeg.tar.gz}
CAL=${CAL:-256}
OUT=${OUT:-runs/int8-accuracy}
EVIDENCE=${EVIDENCE:-}
export DATA CAL
mkdir -p "$OUT"
for net in "$@"; do
  name=$(basename "$net")
  dir=$OUT/$name
  [[ -f $dir/result.json ]] && continue
  rm -rf "$dir" && mkdir -p "$dir"
  echo "== $name ($(date -u +%FT%TZ))" >&2
  "$hsconas" export onnx --weights "$net" --out "$dir/fp32.onnx"
  "$hsconas" export onnx --weights "$net" --precision int8 --calibration "$DATA" \
    --calibration-images "$CAL" --save-calibration "$dir/calibration.f32" --out "$dir/ours-minmax.onnx" \
    2>"$dir/ours-minmax.log"
  "$hsconas" export onnx --weights "$net" --precision int8 --calibration "$DATA" \
    --calibration-images "$CAL" --calibration-method percentile --out "$dir/ours-pct.onnx" 2>"$dir/ours-pct.log"
  "$hsconas" export onnx --weights "$net" --precision int8 --calibration "$DATA" \
    --calibration-images "$CAL" --reduce-range --out "$dir/ours-rr.onnx" 2>"$dir/ours-rr.log"
  "$python" research/scripts/int8-ort-quantize.py "$dir/fp32.onnx" "$dir/calibration.f32" "$dir/ort-minmax.onnx"
  "$python" research/scripts/int8-ort-quantize.py "$dir/fp32.onnx" "$dir/calibration.f32" "$dir/ort-rr.onnx" \
    --reduce-range
  for model in fp32 ours-minmax ours-pct ort-minmax ours-rr ort-rr; do
    "$hsconas" export evaluate --model "$dir/$model.onnx" --data "$DATA" --json >"$dir/$model.json"
  done
  "$hsconas" export evaluate --model "$dir/ours-minmax.onnx" --data "$DATA" --x64-quant-precision --json \
    >"$dir/ours-u8u8.json"
  "$python" research/scripts/int8-ort-quantize.py --kernels "$dir" >"$dir/kernels.json"
  cp "$net/model.json" "$dir/model.json"
  echo done >"$dir/result.json"
  rm -f "$dir/calibration.f32"
done
"$python" research/scripts/int8-accuracy-summary.py "$OUT" "$EVIDENCE"
