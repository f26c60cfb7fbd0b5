#!/usr/bin/env bash
# The GPU paths in one run, on a machine with an NVIDIA GPU (docs/deploy.md, "Checking a GPU machine"):
#   1. hsconas-runtime bench on two reference networks (ShuffleNetV2 x0.5 and MobileNetV2 at 224, batch
#      32 as the GV100 profile) with TensorRT, CUDA and CPU, each with --require-provider: p10 and median,
#      kernels per provider (ONNX Runtime's profiler) and the one input copy to the device;
#   1b. MobileNetV2 on TensorRT in FP32, FP16 (--tensorrt-fp16) and INT8 (exported with --precision int8
#      --int8-flavour tensorrt, run with --tensorrt-int8);
#   2. a short hsconas profile on CUDA (the gv100 profile's pieces at input 32, a 2-piece group);
#   3. hsconas supernet train --cuda --max-steps 50 and hsconas train --cuda (one epoch over the committed
#      CIFAR-10 sample, about 30 steps, so that it writes its weights);
#   4. the crate generated for that trained network, built with its `ort` backend and run on an image.
# It prints one summary table and writes it as JSON to $SUMMARY (default runs/gpu-check/summary.json),
# with every step's log beside it. A failed step is reported and the others still run. Sized for 10
# minutes after the build, not yet timed on a GPU (the first TensorRT engines take the longest; they are
# cached in ~/.cache/hsconas/tensorrt, so a second run is faster).
#
# Needs: an NVIDIA driver (nvidia-smi), a Rust toolchain, Python 3.9+ and network access to PyPI and
# crates.io for the first run. scripts/setup.sh installs onnxruntime-gpu (CUDA and TensorRT providers) when
# nvidia-smi answers; this script adds the CUDA, cuDNN and TensorRT libraries ONNX Runtime loads from the
# NVIDIA pip packages (GPU_LIBS below) into the same environment, unless SKIP_GPU_LIBS=1 (use the
# system's, e.g. JetPack's, found through LD_LIBRARY_PATH). On a Jetson use JetPack's ONNX Runtime build
# and ORT_DYLIB_PATH (docs/deploy.md).
#
# CPU_DRY_RUN=1 runs the same steps on a machine without a GPU (CPU provider only, no --cuda, batch 1,
# the debug build): a check of the script itself, not of any GPU path.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

dry=${CPU_DRY_RUN:-0}
providers="tensorrt cuda cpu"
gpu_provider=cuda
cuda_flag=--cuda
batch=32
steps=50
per_class=200
build_profile=release
if [ "$dry" = 1 ]; then
  providers=cpu gpu_provider=cpu cuda_flag= batch=1 steps=3 per_class=20 build_profile=debug
fi

out=${GPU_CHECK_OUT:-runs/gpu-check}
summary=${SUMMARY:-$out/summary.json}
cache=${HSCONAS_CACHE:-$HOME/.cache/hsconas}
GPU_LIBS=${GPU_LIBS:-"nvidia-cuda-runtime-cu12 nvidia-cublas-cu12 nvidia-cudnn-cu12 nvidia-cufft-cu12 nvidia-curand-cu12 tensorrt-cu12-libs"}
mkdir -p "$out"
rows=()
say() { printf 'gpu-check: %s\n' "$*" >&2; }
# record STEP STATUS DETAIL
record() { rows+=("$1	$2	$3"); say "$1: $2 $3"; }

if [ "$dry" = 1 ]; then
  gpu="none (CPU_DRY_RUN)"
elif ! nvidia-smi -L >/dev/null 2>&1; then
  say "no NVIDIA GPU answers nvidia-smi: this check is for GPU machines (the CPU paths are in scripts/test.sh)"
  exit 1
else
  gpu=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | head -n 1)
fi
say "GPU: $gpu"

bash scripts/setup.sh || { say "scripts/setup.sh failed"; exit 1; }
venv=$cache/venv
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ "${SKIP_GPU_LIBS:-0}" != 1 ] && [ "$dry" != 1 ]; then
  # shellcheck disable=SC2086
  "$venv/bin/python" -m pip install --quiet $GPU_LIBS || say "could not install $GPU_LIBS; relying on LD_LIBRARY_PATH"
fi
# ONNX Runtime's CUDA and TensorRT providers dlopen these libraries by name.
libs=$(ls -d "$site"/nvidia/*/lib "$site"/tensorrt_libs 2>/dev/null | tr '\n' ':')
export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:-}"

say "building ($build_profile)"
# The dry run reuses the test command's debug build (--all-targets: the same features, nothing rebuilt).
build_flags="--release --workspace --bins"
[ "$build_profile" = release ] || build_flags="--workspace --all-targets"
# shellcheck disable=SC2086
cargo build $build_flags >"$out/build.log" 2>&1 || {
  say "the build failed: $out/build.log"
  exit 1
}
bin=${CARGO_TARGET_DIR:-target}/$build_profile
hsconas=$bin/hsconas
runtime=$bin/hsconas-runtime
"$hsconas" doctor | tee "$out/doctor.txt" >&2

# 1. Reference networks on each provider.
for net in shufflenet_v2_x0_5 mobilenet_v2; do
  "$hsconas" export onnx --reference $net --input-size 224 --classes 1000 --batch $batch \
    --out "$out/$net.onnx" >"$out/export-$net.log" 2>&1 || {
    record "bench $net" FAIL "export: $out/export-$net.log"
    continue
  }
  for provider in $providers; do
    log=$out/bench-$net-$provider
    # TensorRT builds its engine in the first (untimed) runs: minutes at most, once per cache.
    if timeout 900 "$runtime" bench "$out/$net.onnx" --provider "$provider" --require-provider \
      --batch $batch --warmup 20 --runs 50 --min-time-ms 1000 --json >"$log.json" 2>"$log.log"; then
      detail=$(python3 - "$log.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
kernels = ", ".join(f"{p} {n}" for p, n in (r.get("placement") or {}).items()) or "-"
ms = lambda k: f"{r[k]:.3f} ms" if r.get(k) is not None else "-"
print(f"p10 {r['p10_ms']:.3f} ms, median {r['median_ms']:.3f} ms; ran on {r['provider']}; kernels {kernels}; "
      f"copies in {ms('input_copy_ms')}, out {ms('output_copy_ms')}")
EOF
)
      record "bench $net $provider" ok "$detail"
    else
      record "bench $net $provider" FAIL "$(tail -n 1 "$log.log")"
    fi
  done
done

# 1b. Precision on the GPU provider: MobileNetV2 in FP32, with FP16 kernels, and exported in INT8 (the
# tensorrt flavour: symmetric, zero points 0; random weights calibrated on 16 committed sample images)
# run with TensorRT's INT8 mode. (The dry run times the same models on the CPU: a check of the script.)
int8_model=$out/mobilenet_v2-int8.onnx
if "$hsconas" export onnx --reference mobilenet_v2 --input-size 224 --classes 1000 --batch $batch \
  --precision int8 --int8-flavour tensorrt --calibration data/cifar10-sample.tar.gz --calibration-images 16 \
  --out "$int8_model" >"$out/export-mobilenet_v2-int8.log" 2>&1; then
  gpu_only=()
  [ "$dry" = 1 ] || gpu_only=(--provider tensorrt --require-provider)
  for variant in fp32 fp16 int8; do
    model=$out/mobilenet_v2.onnx flags=()
    [ "$variant" = fp16 ] && flags=(--tensorrt-fp16)
    [ "$variant" = int8 ] && model=$int8_model flags=(--tensorrt-int8 --tensorrt-fp16)
    log=$out/precision-mobilenet_v2-$variant
    if timeout 900 "$runtime" bench "$model" "${gpu_only[@]}" "${flags[@]}" --batch $batch --warmup 20 \
      --runs 50 --min-time-ms 1000 --json >"$log.json" 2>"$log.log"; then
      record "precision mobilenet_v2 $variant" ok "$(python3 -c "
import json, sys; r = json.load(open(sys.argv[1]))
print(f\"p10 {r['p10_ms']:.3f} ms, median {r['median_ms']:.3f} ms; ran on {r['provider']}\")" "$log.json")"
    else
      record "precision mobilenet_v2 $variant" FAIL "$(tail -n 1 "$log.log")"
    fi
  done
else
  record "precision mobilenet_v2" FAIL "INT8 export: $out/export-mobilenet_v2-int8.log"
fi

# 2. A short profile on CUDA (pieces at input 32 so that it stays short).
profile_device=$out/gv100-$gpu_provider.toml
sed -e "s/^name = .*/name = \"gv100-$gpu_provider\"/" -e "s/^provider = .*/provider = \"$gpu_provider\"/" \
  -e 's/^fallback_providers = .*/fallback_providers = []/' -e "s/^batch = .*/batch = $batch/" \
  devices/profiles/gv100.toml >"$profile_device"
rm -f "$out/table-$gpu_provider-32.json"
if timeout 900 "$hsconas" profile --device "$profile_device" --input-size 32 --runs 10 --min-time-ms 20 \
  --out "$out/table-$gpu_provider-32.json" --json >"$out/profile.json" 2>"$out/profile.log"; then
  record "profile $gpu_provider" ok "$(python3 -c "import json,sys; t=json.load(open(sys.argv[1])); \
print(len(t['entries']), 'pieces on', t['provenance']['provider'], t['provenance']['backend_version'])" \
    "$out/table-$gpu_provider-32.json")"
else
  record "profile $gpu_provider" FAIL "$(tail -n 1 "$out/profile.log")"
fi

# 3. Training on CUDA.
data=data/cifar10-sample.tar.gz
rm -rf "$out/supernet" "$out/trained"
# shellcheck disable=SC2086
if timeout 600 "$hsconas" supernet train --data "$data" $cuda_flag --max-steps $steps --out "$out/supernet" \
  >"$out/supernet.log" 2>&1; then
  record "supernet train $cuda_flag" ok "$(grep -o '[0-9.]* img/s' "$out/supernet.log" | tail -n 1)"
else
  record "supernet train $cuda_flag" FAIL "$(tail -n 1 "$out/supernet.log")"
fi
arch=$(printf 'shuffle3:0.5,%.0s' $(seq 19))shuffle3:0.5
# shellcheck disable=SC2086
if timeout 600 "$hsconas" train --data "$data" --arch "$arch" $cuda_flag --epochs 1 --train-per-class $per_class --out "$out/trained" \
  >"$out/train.log" 2>&1; then
  record "train $cuda_flag" ok "$(grep -o '[0-9.]* img/s' "$out/train.log" | tail -n 1)"
else
  record "train $cuda_flag" FAIL "$(tail -n 1 "$out/train.log")"
fi

# 4. The generated crate with ONNX Runtime.
crate_dir=$out/crate
if [ -d "$out/trained" ] && "$hsconas" export crate --weights "$out/trained" --name gpu-check-net \
  --out "$crate_dir" --overwrite >"$out/crate.log" 2>&1; then
  image=$(tar tzf "$data" | grep '\.jpg$' | head -n 1)
  tar xzf "$data" -C "$out" "$image"
  ort_lib=${ORT_DYLIB_PATH:-$(readlink -f .hsconas/libonnxruntime.so)}
  if (cd "$crate_dir" && CARGO_TARGET_DIR="$PWD/../crate-target" ORT_DYLIB_PATH="$ort_lib" \
    cargo run --release --features ort --example classify -- --backend ort --providers "$gpu_provider,cpu" \
      "../$image") >>"$out/crate.log" 2>&1; then
    record "generated crate (ort)" ok "$(tail -n 2 "$out/crate.log" | tr '\n' ' ')"
  else
    record "generated crate (ort)" FAIL "$(tail -n 1 "$out/crate.log")"
  fi
else
  record "generated crate (ort)" FAIL "no trained network or export failed: $out/crate.log"
fi

printf '\n%-36s %-5s %s\n' STEP STATUS DETAIL
for row in "${rows[@]}"; do
  IFS=$'\t' read -r step status detail <<<"$row"
  printf '%-36s %-5s %s\n' "$step" "$status" "$detail"
done
printf '%s\n' "${rows[@]}" | python3 -c "
import json, sys
rows = [dict(zip(('step', 'status', 'detail'), l.rstrip('\n').split('\t', 2))) for l in sys.stdin if l.strip()]
json.dump({'gpu': sys.argv[1], 'steps': rows}, open(sys.argv[2], 'w'), indent=2)
" "$gpu" "$summary"
say "summary: $summary"
! printf '%s\n' "${rows[@]}" | grep -q $'\tFAIL\t'
