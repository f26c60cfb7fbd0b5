#!/usr/bin/env bash
# The search benchmark of issue 6 on CIFAR-10 (input 32, layout A) with the committed local-cpu table:
# for each seed, `hsconas search` (evolution, no shrinking) with the random-search baseline at the same
# number of evaluations, and the best candidates re-measured on this machine. Prints, per seed, the best F
# of the evolution and of random search, and the winner's measured latency against the target.
#   SUPERNET (required: a checkpoint from `hsconas supernet train` on the same data), TARGET_MS (0.7),
#   SEEDS ("1 2 3"), DATA (../shared/data/cifar10-jpeg.tar.gz), THREADS (2), EXTRA (more search flags),
#   OUT (runs/search-benchmark)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
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
print("seed  evaluations  EA best F  random best F  winner top-1  predicted ms  measured ms  vs T")
for s in seeds:
    r = json.load(open(f"{out}/seed-{s}/search.json"))
    w, b = r["winner"], r["random_baseline"]
    t = r["settings"]["objective"]["target_ms"]
    m = w["measured_ms"]
    print(f"{s:>4}  {b['evaluations']:>11}  {w['score']:>9.4f}  {b['best']['score']:>13.4f}  "
          f"{100 * w['accuracy']:>11.2f}%  {w['predicted_ms']:>12.3f}  {m if m is None else round(m, 3):>11}  "
          f"{'-' if m is None else f'{100 * (m / t - 1):+.1f}%'}")
PY
