#!/usr/bin/env bash
# The search benchmark of issue 6 on CIFAR-10 (input 32, layout A) with the committed local-cpu table:
# for each seed, `hsconas search` (evolution, no shrinking) with the random-search baseline at the same
# number of evaluations, and the best candidates re-measured on this machine. Prints, per seed, the best F
# of the evolution and of random search, and the winner's measured latency against the target, and writes
# them to OUT/results.json and OUT/results.md (the table docs/search-cifar10.md copies).
#   SUPERNET (required: a checkpoint from `hsconas supernet train` on the same data), TARGET_MS (0.7),
#   SEEDS ("1 2 3"), DATA (../shared/data/cifar10-jpeg.tar.gz), THREADS (2), EXTRA (more search flags),
#   OUT (runs/search-benchmark)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
: "${SUPERNET:?set SUPERNET to a supernet checkpoint trained on DATA}"
bash scripts/setup.sh >/dev/null 2>&1
cargo build --release -p hsconas --bin hsconas >&2
hsconas=${CARGO_TARGET_DIR:-target}/release/hsconas
DATA=${DATA:-../shared/data/cifar10-jpeg.tar.gz}
# The default is the development machines' local copy of CIFAR-10 (docs/DESIGN.md section 5).
[ -e "$DATA" ] || { echo "no dataset at $DATA: pass DATA=PATH (CIFAR-10 binary tarball, ImageFolder or its .tar.gz)" >&2; exit 2; }
out=${OUT:-runs/search-benchmark}
mkdir -p "$out"
for seed in ${SEEDS:-1 2 3}; do
  dir=$out/seed-$seed
  resume=()
  [ -e "$dir/search.partial.json" ] && resume=(--resume)
  [ -e "$dir/search.json" ] || "$hsconas" search --supernet "$SUPERNET" \
    --table devices/tables/local-cpu-A-32.json --target-ms "${TARGET_MS:-0.7}" --data "$DATA" \
    --seed "$seed" --random-baseline --remeasure 3 --threads "${THREADS:-2}" --out "$dir" \
    ${EXTRA:-} "${resume[@]}" >&2
done
.hsconas/venv/bin/python - "$out" ${SEEDS:-1 2 3} <<'PY'
import json, sys
out, seeds = sys.argv[1], sys.argv[2:]
rows, table = [], [
    "| seed | evaluations | EA best F | random best F | winner top-1 (supernet) | predicted | measured | measured vs T |",
    "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
]
for s in seeds:
    r = json.load(open(f"{out}/seed-{s}/search.json"))
    w, b = r["winner"], r["random_baseline"]
    t = r["settings"]["objective"]["target_ms"]
    m = w["measured_ms"]
    row = {"seed": int(s), "evaluations": b["evaluations"], "ea_best_f": w["score"],
           "random_best_f": b["best"]["score"], "random_best_ms": b["best"]["latency_ms"],
           "random_best_accuracy": b["best"]["accuracy"], "winner_accuracy": w["accuracy"],
           "predicted_ms": w["predicted_ms"], "measured_ms": m, "target_ms": t,
           "measured_vs_target": None if m is None else m / t - 1}
    rows.append(row)
    table.append(f"| {s} | {row['evaluations']} | {w['score']:.4f} | {b['best']['score']:.4f} | "
                 f"{100 * w['accuracy']:.1f}% | {w['predicted_ms']:.3f} ms | "
                 f"{'-' if m is None else f'{m:.3f} ms'} | {'-' if m is None else f'{100 * (m / t - 1):+.1f}%'} |")
json.dump({"seeds": rows}, open(f"{out}/results.json", "w"), indent=1)
open(f"{out}/results.md", "w").write("\n".join(table) + "\n")
print("\n".join(table))
PY
