#!/usr/bin/env bash
# A new user's first run, timed: a fresh clone of this repository's HEAD into a temporary folder, built
# into an empty target folder (cold), then
#   1. scripts/quickstart.sh (cold: setup, the build of the binaries, the pipeline),
#   2. scripts/quickstart.sh again with its run folder removed (warm: nothing to build),
#   3. scripts/test.sh in the same clone (the second README command, on the quickstart's build).
# Setup's downloads are cached under ~/.cache/hsconas and reported apart (the quickstart prints setup,
# build and pipeline seconds). Goal: the quickstart's first result within 12 minutes of the clone on a
# 2-core machine. Run it on a quiet machine (the pipeline times the CPU). Writes
# runs/bench-quickstart/results.json and the three logs; the results.json goes in
# docs/evidence/bench-quickstart/. SKIP_TESTS=1 leaves out step 3.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=$PWD/runs/bench-quickstart
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q "$PWD" "$work/clone"
export CARGO_TARGET_DIR=$work/target
timed() { # timed NAME COMMAND...: runs it in the clone, its output in $out/NAME.log, seconds on stdout
  local start=$SECONDS
  (cd "$work/clone" && "${@:2}") >"$out/$1.log" 2>&1
  echo $((SECONDS - start))
}
cold=$(timed quickstart-cold bash scripts/quickstart.sh)
rm -rf "$work/clone/runs/quickstart-0.7ms"
warm=$(timed quickstart-warm bash scripts/quickstart.sh)
tests=null
[[ -n ${SKIP_TESTS:-} ]] || tests=$(timed test bash scripts/test.sh)
phases() { # the quickstart's own line: setup, build and pipeline seconds
  sed -n 's/.*(setup \([0-9]*\) s, build \([0-9]*\) s, pipeline \([0-9]*\) s).*/{"setup_s": \1, "build_s": \2, "pipeline_s": \3}/p' "$out/$1.log"
}
cat >"$out/results.json" <<JSON
{
  "commit": "$(git -C "$work/clone" rev-parse HEAD)",
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "machine": "$(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) logical CPUs",
  "cold": {"wall_s": $cold, "phases": $(phases quickstart-cold)},
  "warm": {"wall_s": $warm, "phases": $(phases quickstart-warm)},
  "test_after_quickstart_s": $tests
}
JSON
cat "$out/results.json"
