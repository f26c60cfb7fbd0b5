#!/usr/bin/env bash
# Export benchmark (results in docs/BENCHMARKS.md):
#  1. the generated inference crate (`hsconas export crate`, its `examples/bench.rs`) against
#     `hsconas-runtime bench` on the same ONNX, per backend (tract, ONNX Runtime). Goal: within 5%.
#  2. batch-norm folding: `hsconas-runtime bench` on the folded export against the one that keeps the
#     batch norms (`--keep-bn`), per backend.
# The network: ARCH (default: the seed-1 winner of the search benchmark of 2026-11-28, 0.71 ms) in layout A at input
# 32, trained for one epoch on the committed CIFAR-10 sample (weights do not change the timing). Batch 1;
# tract single-threaded, ONNX Runtime with its default intra-op threads (one per core) in both tools.
# ROUNDS rounds (default 5) interleave every measurement; ratios are per round, and the medians over
# rounds are printed. Writes runs/bench-export/ (samples.jsonl, and results.json with the summary's numbers
# for docs/evidence/bench-export/).
#   ROUNDS (5), RUNS (300 timed runs per measurement), ARCH
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh >/dev/null 2>&1
repo=$(pwd)
out=$repo/runs/bench-export
mkdir -p "$out"
rounds=${ROUNDS:-5}
runs=${RUNS:-300}
arch=${ARCH:-shuffle3:0.8,skip,shuffle5:0.3,xception:0.2,shuffle5:0.3,skip,shuffle3:0.7,xception:0.5,shuffle3:0.4,skip,shuffle3:0.3,shuffle5:1.0,shuffle7:0.1,xception:0.8,xception:0.5,xception:0.5,shuffle3:0.3,shuffle5:0.3,shuffle3:0.2,shuffle7:0.5}
cargo build --release -p hsconas -p hsconas-runtime >&2
target=${CARGO_TARGET_DIR:-$repo/target}
hsconas=$target/release/hsconas
runtime=$target/release/hsconas-runtime
export ORT_DYLIB_PATH=$repo/.hsconas/libonnxruntime.so

if [ ! -f "$out/train/model.json" ]; then
  "$hsconas" train --arch "$arch" --data data/cifar10-sample.tar.gz --epochs 1 --out "$out/train" >&2
fi
"$hsconas" export onnx --weights "$out/train" --out "$out/folded.onnx" >&2
"$hsconas" export onnx --weights "$out/train" --keep-bn --out "$out/with-bn.onnx" >&2
"$hsconas" export crate --weights "$out/train" --name bench-net --out "$out/crate" --overwrite >&2
cp Cargo.lock "$out/crate/Cargo.lock"
# The crate's release build, in its own target directory (the workspace's release profile differs).
crate_target=$target/bench-export-crate
for features in "" "--no-default-features --features ort"; do
  # shellcheck disable=SC2086
  (cd "$out/crate" && CARGO_TARGET_DIR=$crate_target cargo build --release --offline --example bench $features >&2)
  name=$([ -z "$features" ] && echo tract || echo ort)
  cp "$crate_target/release/examples/bench" "$out/crate-bench-$name"
done

samples=$out/samples.jsonl
: > "$samples"
bench_runtime() { # backend model label round
  "$runtime" bench "$2" --backend "$1" --threads "$(nproc)" --warmup 20 --runs "$runs" --max-runs "$runs" \
    --min-time-ms 0 --json | .hsconas/venv/bin/python -c "
import json, sys; r = json.load(sys.stdin)
print(json.dumps({'round': $4, 'what': '$3', 'backend': '$1', 'median_ms': r['median_ms']}))" >> "$samples"
}
bench_crate() { # backend round
  "$out/crate-bench-$1" "$runs" 20 | .hsconas/venv/bin/python -c "
import json, sys; r = json.load(sys.stdin)
print(json.dumps({'round': $2, 'what': 'crate', 'backend': '$1', 'median_ms': r['median_ms']}))" >> "$samples"
}
for round in $(seq 1 "$rounds"); do
  echo "round $round/$rounds" >&2
  for backend in tract ort; do
    bench_runtime "$backend" "$out/folded.onnx" runtime "$round"
    bench_crate "$backend" "$round"
    bench_runtime "$backend" "$out/with-bn.onnx" runtime-with-bn "$round"
  done
done

.hsconas/venv/bin/python - "$samples" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
def ms(what, backend, rnd):
    return next(r["median_ms"] for r in rows if r["what"] == what and r["backend"] == backend and r["round"] == rnd)
rounds = sorted({r["round"] for r in rows})
summary = {"rounds": len(rounds), "samples": rows}
for backend in ["tract", "ort"]:
    med = lambda what: statistics.median(ms(what, backend, r) for r in rounds)
    crate = [ms("crate", backend, r) / ms("runtime", backend, r) for r in rounds]
    fold = [ms("runtime-with-bn", backend, r) / ms("runtime", backend, r) for r in rounds]
    print(f"{backend:5s}: runtime {med('runtime'):.4f} ms, crate {med('crate'):.4f} ms, "
          f"crate/runtime median {statistics.median(crate):.3f} (per round {', '.join(f'{c:.3f}' for c in crate)}); "
          f"with BN {med('runtime-with-bn'):.4f} ms, folding speed-up median {statistics.median(fold):.3f}x "
          f"(per round {', '.join(f'{f:.3f}' for f in fold)})")
    summary[backend] = {
        "runtime_ms": med("runtime"), "crate_ms": med("crate"), "with_bn_ms": med("runtime-with-bn"),
        "crate_over_runtime": statistics.median(crate), "crate_over_runtime_min": min(crate),
        "crate_over_runtime_max": max(crate), "folding_speedup": statistics.median(fold),
        "folding_speedup_min": min(fold), "folding_speedup_max": max(fold),
    }
json.dump(summary, open(sys.argv[1].replace("samples.jsonl", "results.json"), "w"), indent=1)
PY
