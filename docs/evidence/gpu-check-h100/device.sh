#!/usr/bin/env bash
# The GPU check on a lent machine without network or toolchain (2026-12-06): hsconas-runtime built on the
# dev machine, ONNX Runtime 1.31.1's GPU build (CUDA 13) from its PyPI wheel, the machine's own CUDA 13
# libraries from its pip packages. Assembles the bundle the earlier calls left in /root/gc.
set -u
OUT=${OUT:-/tmp/gpucheck-out}; mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
G=/root/gc
echo "== machine"; date -u; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
lscpu | grep -E 'Model name|^CPU\(s\)'; grep -o -m1 avx512_vnni /proc/cpuinfo || echo "no avx512_vnni"
for t in cargo rustc nvcc trtexec xz; do printf '%s: ' $t; command -v $t || echo absent; done
cd $G && cat part0 part1 part2 part3 part4 > bundle.tar && sha256sum bundle.tar && tar xf bundle.tar && cd bundle || exit 1
for f in cuda.so core.so hr; do xz -d -T0 $f.xz || python3 -c "import lzma,sys; open(sys.argv[1],'wb').write(lzma.open(sys.argv[1]+'.xz').read())" $f; done
mkdir -p ort && mv cuda.so ort/libonnxruntime_providers_cuda.so && mv core.so ort/libonnxruntime.so.1.31.1 && cp libonnxruntime_providers_shared.so ort/ && chmod +x hr
site=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
export ORT_DYLIB_PATH=$G/bundle/ort/libonnxruntime.so.1.31.1
export LD_LIBRARY_PATH=$G/bundle/ort:$(ls -d "$site"/nvidia/*/lib "$site"/nvidia/cu13/lib 2>/dev/null | tr '\n' ':')${LD_LIBRARY_PATH:-}
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
echo "== hsconas-runtime info"; ./hr info
for net in shufflenet_v2_x0_5 mobilenet_v2; do
  for p in tensorrt cuda cpu; do
    threads=1; runs="--warmup 20 --runs 50 --min-time-ms 1000"
    [ $p = cpu ] && threads=16 runs="--warmup 5 --runs 20 --min-time-ms 500"
    echo "== bench $net $p (input 224, batch 32, threads $threads)"
    timeout 150 ./hr bench $net.onnx --provider $p --require-provider --threads $threads --batch 32 $runs --json \
      > "$OUT/bench-$net-$p.json" 2> b.log
    echo "rc=$?"; tail -n 4 b.log
    cat "$OUT/bench-$net-$p.json"; echo
  done
done
echo "== measure on cuda (2 networks at input 32, batch 32, interleaved)"
timeout 120 ./hr measure nets/manifest.json --out "$OUT/measure-cuda.json" --provider cuda --require-provider \
  --batch 32 --group 2 --runs 100 --min-time-ms 500 2>&1 | tail -n 8
echo "rc=$?"; head -c 3000 "$OUT/measure-cuda.json"; echo
echo "== done"; date -u
