#!/usr/bin/env bash
# Predicted latency of uniformly drawn architectures under a latency table (no measurement): the numbers
# behind "a random network is predicted at about X ms". Usage:
#   research/scripts/random-latency.sh TABLE.json COUNT SEED > OUT.json
# Prints {"table", "count", "seed", "median_ms", "mean_ms", "p10_ms", "p90_ms", "min_ms", "max_ms"}.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
table=${1:?usage: research/scripts/random-latency.sh TABLE.json COUNT SEED}
count=${2:-200}
seed=${3:-1}
hsconas=${HSCONAS:-${CARGO_TARGET_DIR:-target}/debug/hsconas}
python=${HSCONAS_PYTHON:-python3}
"$hsconas" arch sample --seed "$seed" --count "$count" | while read -r arch; do
  "$hsconas" latency predict --table "$table" --arch "$arch" --json
done | "$python" -c '
import json, statistics, sys
table, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
decoder = json.JSONDecoder()
text, ms, at = sys.stdin.read(), [], 0
while at < len(text):
    while at < len(text) and text[at].isspace():
        at += 1
    if at == len(text):
        break
    value, at = decoder.raw_decode(text, at)
    ms.append(value["predicted_ms"])
assert len(ms) == count, f"{len(ms)} predictions for {count} architectures"
q = statistics.quantiles(ms, n=10)
print(json.dumps({"table": table, "count": count, "seed": seed,
    "median_ms": statistics.median(ms), "mean_ms": statistics.fmean(ms),
    "p10_ms": q[0], "p90_ms": q[-1], "min_ms": min(ms), "max_ms": max(ms)}, indent=2))
' "$table" "$count" "$seed"
