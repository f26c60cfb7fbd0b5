#!/usr/bin/env bash
# The search-level proof (docs/RESULTS.md, issue 15): for one latency target on this machine, the search's
# winner, trained with the ground truth's recipe and two seeds, against architectures drawn uniformly from
# the space whose *measured* latency lies within ±3% of the winner's (at least 8), and against the
# uniform channel scaling measured closest to it. Latencies are ratios to the winner measured in the same
# runs, each run in its own order and divided by its median over the list, because this machine's speed
# moves by tens of percent between the search and the proof's measurements (docs/RESULTS.md): a target in
# ms names a different latency from one minute to the next; the winner is where the search put T.
#
#   research/scripts/search-proof.sh centre   # where the ground truth's equal-latency group measures now (median,
#                                    # ms; kept in centre.json): the target that reuses its trainings
#   TARGET_MS=2.55 ESTIMATOR=NAME research/scripts/search-proof.sh search  # the search (RERANK, SEARCH_SEED) and
#                                    # its winner
#   research/scripts/search-proof.sh list     # the proof's list: the winner (WINNER_ID, default w00; a new id for
#                                    # every new search, as trainings are kept by id), the ground truth's
#                                    # uniform draws (groups equal and spread) and its uniform scalings
#   research/scripts/search-proof.sh extra N NEAR_MS  # N more uniform draws predicted within 2% of NEAR_MS by the
#                                    # table (d00, d01, ...), when too few measure within ±3% of the winner
#   research/scripts/search-proof.sh measure  # every network of the list end to end, MEASURE_REPEATS times (default
#                                    # 7), all in each run (on an otherwise idle machine)
#   research/scripts/search-proof.sh train    # seeds 0 and 1 of the winner, the draws within ±3% of it and the
#                                    # uniform scaling, where not trained yet (JOBS trainers, as ground-truth.sh)
#   research/scripts/search-proof.sh report   # proof.json: the winner's rank among the draws, their median, the
#                                    # uniform scaling
#
# Trainings use the ground truth's recipe and go to its runs (docs/evidence/ground-truth/runs/<id>-s<seed>/),
# so a network of the ground-truth set is never trained twice. Everything kept is in
# docs/evidence/search-proof/. Environment: as research/scripts/ground-truth.sh (DATA, OUT, THREADS, JOBS, HSCONAS),
# plus TARGET_MS (the search step; remembered in target-ms), ESTIMATOR (the search step's estimator, required),
# RERANK (default 0), SEARCH_SEED (default 0), SUPERNET (the checkpoint a search with the supernet
# estimator is given, default the ground truth's, runs/ground-truth/supernet/checkpoint.safetensors, made by
# `research/scripts/ground-truth.sh supernet`; not read with another estimator), PREDICTOR (the model of
# ESTIMATOR=predictor, default the ground truth's predictor-model.json, copied into the proof's folder at the
# search), TOLERANCE (default 0.03).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=ground-truth.sh
source research/scripts/ground-truth.sh # RECIPE, train_all, measure_list, collect_list, example, data, out, ...

proof=docs/evidence/search-proof
list=$proof/list.tsv
tolerance=${TOLERANCE:-0.03}
supernet_ckpt=${SUPERNET:-$out/supernet/checkpoint.safetensors}

die() {
  echo "$*" >&2
  exit 1
}

target_ms() {
  [[ -f $proof/target-ms ]] || die "no search yet: run TARGET_MS=... $0 search first"
  cat "$proof/target-ms"
}

search_step() {
  mkdir -p "$proof"
  if [[ -f $proof/target-ms ]]; then
    [[ -z ${TARGET_MS:-} || ${TARGET_MS} == "$(cat "$proof/target-ms")" ]] ||
      die "$proof holds the proof for T = $(cat "$proof/target-ms") ms; move it away to start another"
  else
    [[ -n ${TARGET_MS:-} ]] || die "set TARGET_MS (ms on this machine)"
    echo "$TARGET_MS" >"$proof/target-ms"
  fi
  [[ -f $proof/search.json || -f $proof/search.json.gz ]] && return 0
  local dir=$out/proof-search resume=() choice=()
  [[ -f $dir/search.partial.json ]] && resume=(--resume)
  [[ -n ${ESTIMATOR:-} ]] || die "set ESTIMATOR (the search's default, or the one the proof is about)"
  choice=(--estimator "$ESTIMATOR")
  if [[ $ESTIMATOR == supernet ]]; then # only the supernet estimator reads one
    [[ -f $supernet_ckpt ]] || die "no supernet at $supernet_ckpt: research/scripts/ground-truth.sh supernet, or set SUPERNET"
    choice+=(--supernet "$supernet_ckpt")
  fi
  if [[ $ESTIMATOR == predictor ]]; then # the model searched with is kept beside the result
    [[ -f $proof/predictor-model.json ]] || cp "${PREDICTOR:-search/nas/assets/predictor-model.json}" "$proof/predictor-model.json"
    choice+=(--predictor "$proof/predictor-model.json")
  fi
  "$hsconas" search --table $table --target-ms "$(target_ms)" \
    --data "$data" --train-per-class 1000 --val-fraction 0.1 --split-seed 0 "${choice[@]}" \
    --rerank "${RERANK:-0}" --seed "${SEARCH_SEED:-0}" --threads "${SEARCH_THREADS:-2}" --out "$dir" \
    "${resume[@]}" </dev/null
  cp "$dir/search.json" "$proof/search.json"
}

centre_step() { # one measurement of the equal-latency group, on an idle machine
  mkdir -p "$proof"
  local tmp
  tmp=$(mktemp -d)
  awk -F'\t' 'NR == 1 || $2 == "equal"' "$set_file" >"$tmp/equal.tsv"
  measure_list "$tmp/equal.tsv" "$tmp" 1
  python3 - "$tmp/run-1.json" "$proof/centre.json" <<'PY'
import json, statistics, sys
run = json.load(open(sys.argv[1]))
ms = sorted(n["measured_ms"] for n in run["networks"])
out = {"date": run["date"], "networks": len(ms), "median_ms": statistics.median(ms), "measured_ms": ms}
json.dump(out, open(sys.argv[2], "w"), indent=2)
print(f"equal-latency group: median {out['median_ms']:.3f} ms over {len(ms)} networks "
      f"({ms[0]:.3f}-{ms[-1]:.3f}); kept in {sys.argv[2]}")
PY
  rm -rf "$tmp"
}

list_step() {
  [[ -f $list ]] && die "$list exists (the trainings refer to its ids); add draws with: $0 extra N NEAR_MS"
  # A committed search is compacted (research/scripts/compact-evidence.sh); the report step compacts again.
  [[ -f $proof/search.json.gz && ! -f $proof/search.json ]] && gunzip -k "$proof/search.json.gz"
  [[ -f $proof/search.json ]] || die "no search yet: run TARGET_MS=... $0 search first"
  local tmp
  tmp=$(mktemp)
  printf 'id\tgroup\tarch\n' >"$tmp"
  local winner=${WINNER_ID:-w00}
  [[ -e $evidence/runs/$winner-s0 || -e $out/$winner-s0 ]] &&
    die "$winner was trained for an earlier search (trainings are kept by id): set WINNER_ID to a new id"
  printf '%s\twinner\t%s\n' "$winner" "$(python3 -c "import json,sys; \
print(json.load(open(sys.argv[1]))['winner']['arch'])" "$proof/search.json")" >>"$tmp"
  tail -n +2 "$set_file" | while IFS=$'\t' read -r id group arch; do
    case $group in
      equal | spread) printf '%s\tdraw\t%s\n' "$id" "$arch" ;;
      uniform) printf '%s\tuniform\t%s\n' "$id" "$arch" ;;
    esac
  done >>"$tmp"
  mv "$tmp" "$list"
  echo "wrote $list ($(($(wc -l <"$list") - 1)) networks)" >&2
}

extra_step() { # N NEAR_MS: more uniform draws, seeded by how many there are already
  local n=${1:?how many draws} near=${2:?near which predicted latency, ms}
  [[ -f $list ]] || die "no list yet: $0 list"
  local have
  have=$(grep -c $'^d[0-9]*\t' "$list" || true)
  "$hsconas" arch sample --table $table --near-ms "$near" --tolerance 0.02 --seed $((2000 + have)) \
    --count "$n" | while read -r arch; do
    printf 'd%02d\tdraw\t%s\n' "$have" "$arch"
    have=$((have + 1))
  done >>"$list"
  echo "$list: $n draws added near $near ms (predicted); measure again" >&2
}

measure_step() {
  [[ -f $list ]] || die "no list yet: $0 list"
  rm -rf "$proof/measured" # all networks of one measurement were measured together
  measure_list "$list" "$proof/measured" "${MEASURE_REPEATS:-7}"
}

collect_proof() {
  [[ -f $proof/measured/run-1.json ]] || die "not measured yet: $0 measure"
  collect_list "$list" "$proof/measured" "$proof/networks.json" "0 and 1"
}

train_step() {
  collect_proof
  local todo
  todo=$(mktemp)
  example proof --truth "$proof/networks.json" --target-ms "$(target_ms)" --tolerance "$tolerance" \
    --missing | while read -r id seed; do
    printf '%s %s %s\n' "$id" "$seed" "$(awk -F'\t' -v id="$id" '$1 == id { print $3 }' "$list")"
  done >"$todo"
  echo "$(wc -l <"$todo") trainings to do" >&2
  runs() { cat "$todo"; } # what train_all's trainers work through
  set_file=$list
  train_all
  rm -f "$todo"
}

report_step() {
  collect_proof
  example proof --truth "$proof/networks.json" --target-ms "$(target_ms)" --tolerance "$tolerance" \
    --out "$proof/proof.json"
}

case ${1:-} in
  centre) centre_step ;;
  search) search_step ;;
  list) list_step ;;
  extra) extra_step "${@:2}" ;;
  measure) measure_step ;;
  train) train_step ;;
  report) report_step && bash research/scripts/compact-evidence.sh "$proof" ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' >&2 # the header above
    exit 2
    ;;
esac
