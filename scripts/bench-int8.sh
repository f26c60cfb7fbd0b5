#!/usr/bin/env bash
# INT8 latency benchmark (issue 41; results in docs/BENCHMARKS.md "INT8 export"): at input 224, batch 1,
# ONNX Runtime on one thread, for the reference networks and a found network (ARCH, default the
# search benchmark's seed-1 winner that scripts/bench-export.sh also times):
#   fp32      hsconas export onnx (batch norms folded)
#   int8      hsconas export onnx --precision int8 (the whole network)
#   ort-int8  ONNX Runtime's quantize_static on the FP32 model (QDQ, per-channel, MinMax), calibrated on
#             the same images (research/scripts/int8-ort-quantize.py)
#   mixed     (found network only) layers 9-20 marked @int8, layers 1-8 FP32 (late, wide layers gain
#             from INT8; early ones lose, measured in the issue)
# and the two remedies for x86 CPUs without VNNI, whose U8S8 kernels saturate with full-range weights:
#   int8-rr      hsconas export onnx --precision int8 --reduce-range (7-bit weights)
#   ort-int8-rr  quantize_static with reduce_range=True
#   int8-u8u8    the int8 model run with --x64-quant-precision (ONNX Runtime's U8U8 kernels)
# Random weights (seed 0) calibrated on CAL images of the committed CIFAR-10 sample resized to 224: the
# kernels ONNX Runtime runs do not depend on the values. ROUNDS rounds interleave every model; each
# measurement is `hsconas-runtime bench` (RUNS timed runs after 20 warm-up runs), its median and p10;
# ratios are per round and their medians over rounds are reported. Times the CPU: run it on a quiet
# machine, nothing else running. Uses the debug build of the test suite (ONNX Runtime is its own
# optimised library; the Rust around its run() call is not timed).
# Writes runs/bench-int8/ (samples.jsonl, results.json for docs/evidence/bench-int8/).
#   ROUNDS (5), RUNS (100), CAL (16), ARCH
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh >/dev/null 2>&1
repo=$(pwd)
out=$repo/runs/bench-int8
mkdir -p "$out"
rounds=${ROUNDS:-5}
runs=${RUNS:-100}
cal=${CAL:-16}
arch=${ARCH:-shuffle3:0.8,skip,shuffle5:0.3,xception:0.2,shuffle5:0.3,skip,shuffle3:0.7,xception:0.5,shuffle3:0.4,skip,shuffle3:0.3,shuffle5:1.0,shuffle7:0.1,xception:0.8,xception:0.5,xception:0.5,shuffle3:0.3,shuffle5:0.3,shuffle3:0.2,shuffle7:0.5}
cargo build --workspace --bin hsconas --bin hsconas-runtime >&2
target=${CARGO_TARGET_DIR:-$repo/target}
hsconas=$target/debug/hsconas
runtime=$target/debug/hsconas-runtime
python=.hsconas/venv/bin/python
export ORT_DYLIB_PATH=$repo/.hsconas/libonnxruntime.so
data=data/cifar10-sample.tar.gz
# The found network with layers 9-20 (0-based 8-19) marked INT8; skip layers stay unmarked.
mixed=$("$python" -c "
a='$arch'.split(',')
print(','.join(c if i < 8 or c == 'skip' else c + '@int8' for i, c in enumerate(a)))")

networks=(mobilenet_v2 shufflenet_v2_x1_0 mobilenet_v3_large mnasnet1_0 found)
for net in "${networks[@]}"; do
  if [ "$net" = found ]; then what=(--arch "$arch"); else what=(--reference "$net"); fi
  common=(--input-size 224 --classes 1000)
  "$hsconas" export onnx "${what[@]}" "${common[@]}" --out "$out/$net-fp32.onnx" 2>/dev/null
  "$hsconas" export onnx "${what[@]}" "${common[@]}" --precision int8 --calibration "$data" \
    --calibration-images "$cal" --save-calibration "$out/$net.cal.f32" --out "$out/$net-int8.onnx" \
    2>"$out/$net-int8.log"
  "$hsconas" export onnx "${what[@]}" "${common[@]}" --precision int8 --calibration "$data" \
    --calibration-images "$cal" --reduce-range --out "$out/$net-int8-rr.onnx" 2>"$out/$net-int8-rr.log"
  "$python" research/scripts/int8-ort-quantize.py "$out/$net-fp32.onnx" "$out/$net.cal.f32" \
    "$out/$net-ort-int8.onnx" 2>/dev/null
  "$python" research/scripts/int8-ort-quantize.py "$out/$net-fp32.onnx" "$out/$net.cal.f32" \
    "$out/$net-ort-int8-rr.onnx" --reduce-range 2>/dev/null
done
"$hsconas" export onnx --arch "$mixed" --input-size 224 --classes 1000 --precision int8 \
  --calibration "$data" --calibration-images "$cal" --out "$out/found-mixed.onnx" 2>"$out/found-mixed.log"

# How quiet the machine is (scripts/bench/probe.py), before and after the timings, recorded beside the
# results.
probe_before=$("$python" scripts/bench/probe.py)
samples=$out/samples.jsonl
: >"$samples"
for round in $(seq 1 "$rounds"); do
  echo "round $round/$rounds ($(date -u +%FT%TZ))" >&2
  for net in "${networks[@]}"; do
    kinds=(fp32 int8 ort-int8 int8-rr ort-int8-rr int8-u8u8)
    [ "$net" = found ] && kinds+=(mixed)
    for kind in "${kinds[@]}"; do
      file=$kind extra=()
      [ "$kind" = int8-u8u8 ] && file=int8 extra=(--x64-quant-precision)
      "$runtime" bench "$out/$net-$file.onnx" --threads 1 --warmup 20 --runs "$runs" --max-runs "$runs" \
        --min-time-ms 0 "${extra[@]}" --json | "$python" -c "
import json, sys; r = json.load(sys.stdin)
print(json.dumps({'round': $round, 'network': '$net', 'model': '$kind', 'median_ms': r['median_ms'], 'p10_ms': r['p10_ms']}))" >>"$samples"
    done
  done
done
probe_after=$("$python" scripts/bench/probe.py)
"$python" - "$out" "$arch" "$mixed" "$probe_before" "$probe_after" <<'PY'
import json, platform, statistics, subprocess, sys
out, arch, mixed, before, after = sys.argv[1:6]
rows = [json.loads(l) for l in open(f"{out}/samples.jsonl")]
cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
model = next((l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("Model name")), "?")
vnni = "avx512_vnni" in cpu or "avx_vnni" in cpu
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
res = {"cpu": model, "vnni": vnni, "commit": commit, "rounds": max(r["round"] for r in rows),
       "probe_s_before": [float(x) for x in before.split()], "probe_s_after": [float(x) for x in after.split()],
       "found_arch": arch, "mixed_arch": mixed, "networks": {}}
for net in dict.fromkeys(r["network"] for r in rows):
    by = {}
    for r in rows:
        if r["network"] == net:
            by.setdefault(r["model"], {})[r["round"]] = r
    entry = {k: {"median_ms": round(statistics.median(v[i]["median_ms"] for i in v), 4),
                 "p10_ms": round(statistics.median(v[i]["p10_ms"] for i in v), 4)} for k, v in by.items()}
    def ratio(name, a, b):
        per_round = [by[a][i]["median_ms"] / by[b][i]["median_ms"] for i in by[a]]
        entry[name] = round(statistics.median(per_round), 3)
        entry[name + "_min"] = round(min(per_round), 3)
        entry[name + "_max"] = round(max(per_round), 3)
    ratio("fp32_over_int8", "fp32", "int8")
    ratio("fp32_over_ort_int8", "fp32", "ort-int8")
    ratio("int8_over_ort_int8", "int8", "ort-int8")
    if "int8-rr" in by:
        ratio("fp32_over_int8_rr", "fp32", "int8-rr")
        ratio("fp32_over_int8_u8u8", "fp32", "int8-u8u8")
        ratio("int8_rr_over_ort_int8_rr", "int8-rr", "ort-int8-rr")
    if "mixed" in by:
        ratio("fp32_over_mixed", "fp32", "mixed")
    res["networks"][net] = entry
json.dump(res, open(f"{out}/results.json", "w"), indent=1)
print(json.dumps(res, indent=1))
PY
