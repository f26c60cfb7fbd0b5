#!/usr/bin/env bash
# Runtime benchmarks, side by side in one run on this machine (batch 1, 1 thread):
#   1. our `ort` backend vs Python onnxruntime on the same file (MobileNetV2, ShuffleNetV2 x1.0): ratio of
#      medians, alternating the two REPEAT times;
#   2. tract vs ort on the same files;
#   3. the fixed per-call cost on a tiny model (one Add on [1, 8]);
#   4. repeatability: the same model timed in 5 separate invocations (spread of medians and of p10s).
# Writes runs/bench-runtime/results.json (samples and the summary's numbers) and prints a Markdown summary.
# Results go in docs/BENCHMARKS.md, the results.json in docs/evidence/bench-runtime/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh 2>/dev/null
cargo build --release -p hsconas-runtime >&2   # the timed binary
cargo build -p hsconas --bins >&2          # only exports the models
target=${CARGO_TARGET_DIR:-target}
rt=$target/release/hsconas-runtime
py=.hsconas/venv/bin/python
out=runs/bench-runtime
mkdir -p "$out"
REPEAT=${REPEAT:-3}
RUNS=${RUNS:-200}
MIN_MS=${MIN_MS:-2000}

"$target/debug/hsconas" export onnx --reference mobilenet_v2 --out "$out/mobilenet_v2.onnx" 2>/dev/null
"$target/debug/hsconas" export onnx --reference shufflenet_v2_x1_0 --out "$out/shufflenet_v2_x1_0.onnx" 2>/dev/null
"$py" scripts/bench/tiny_model.py "$out/tiny.onnx"

ours() { "$rt" bench "$1" --threads 1 --runs "${3:-$RUNS}" --min-time-ms "${4:-$MIN_MS}" --backend "${2:-ort}" --json; }
theirs() { "$py" scripts/bench/ort_python.py "$1" --threads 1 --runs "${2:-$RUNS}" --min-time-ms "${3:-$MIN_MS}"; }

: > "$out/samples.jsonl"
record() { printf '{"case":"%s","tool":"%s","rep":%s,"stats":%s}\n' "$1" "$2" "$3" "$(echo "$4" | tr -d '\n ')" >> "$out/samples.jsonl"; }
for rep in $(seq "$REPEAT"); do
  for net in mobilenet_v2 shufflenet_v2_x1_0; do
    record "$net" ort "$rep" "$(ours "$out/$net.onnx" ort)"
    record "$net" python "$rep" "$(theirs "$out/$net.onnx")"
    record "$net" tract "$rep" "$(ours "$out/$net.onnx" tract 50 1000)"
  done
  record tiny ort "$rep" "$(ours "$out/tiny.onnx" ort 20000 1000)"
  record tiny python "$rep" "$(theirs "$out/tiny.onnx" 20000 1000)"
done
for i in 1 2 3 4 5; do
  record repeatability ort "$i" "$(ours "$out/mobilenet_v2.onnx" ort 200 2000)"
done
"$py" - "$out" <<'PY'
import json, statistics, sys
out = sys.argv[1]
rows = [json.loads(l) for l in open(f"{out}/samples.jsonl")]
def get(case, tool, key="median_ms"):
    return [r["stats"][key] for r in rows if r["case"] == case and r["tool"] == tool]
summary = {}
print("| model | ort median (ms) | Python onnxruntime median (ms) | ratio ours/python (median of reps) | tract median (ms) | tract/ort |")
print("| --- | --- | --- | --- | --- | --- |")
for net in ["mobilenet_v2", "shufflenet_v2_x1_0"]:
    o, p, t = get(net, "ort"), get(net, "python"), get(net, "tract")
    ratios = [a / b for a, b in zip(o, p)]
    summary[net] = {"ort": o, "python": p, "tract": t, "ratio": ratios,
                    "ort_median_ms": statistics.median(o), "python_median_ms": statistics.median(p),
                    "ratio_median": statistics.median(ratios), "tract_median_ms": statistics.median(t),
                    "tract_over_ort": statistics.median(t) / statistics.median(o)}
    print(f"| {net} | {statistics.median(o):.3f} | {statistics.median(p):.3f} | {statistics.median(ratios):.3f} "
          f"(reps: {', '.join(f'{r:.3f}' for r in ratios)}) | {statistics.median(t):.3f} | {statistics.median(t)/statistics.median(o):.2f} |")
o, p = get("tiny", "ort"), get("tiny", "python")
summary["tiny"] = {"ort": o, "python": p, "ort_median_us": statistics.median(o) * 1e3,
                   "ort_min_us": min(get("tiny", "ort", "min_ms")) * 1e3, "python_median_us": statistics.median(p) * 1e3}
print(f"\nPer-call cost on a tiny model (one Add on [1, 8]): ours {statistics.median(o)*1e3:.2f} us median "
      f"(min {min(get('tiny', 'ort', 'min_ms'))*1e3:.2f} us), Python onnxruntime {statistics.median(p)*1e3:.2f} us median.")
med, p10 = get("repeatability", "ort"), get("repeatability", "ort", "p10_ms")
spread = lambda xs: (max(xs) - min(xs)) / statistics.median(xs) * 100
summary["repeatability"] = {"median": med, "p10": p10, "median_spread_percent": spread(med),
                            "p10_spread_percent": spread(p10)}
print(f"\nRepeatability, MobileNetV2 in 5 separate invocations: medians {', '.join(f'{x:.3f}' for x in med)} ms "
      f"(spread {spread(med):.1f}%); p10s {', '.join(f'{x:.3f}' for x in p10)} ms (spread {spread(p10):.1f}%).")
json.dump(summary, open(f"{out}/results.json", "w"), indent=1)
PY
