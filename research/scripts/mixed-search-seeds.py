"""Several seeds of research/scripts/mixed-search.sh side by side.

    python research/scripts/mixed-search-seeds.py EVIDENCE_DIR [EVIDENCE_DIR ...]

Each EVIDENCE_DIR holds one run's summary.json (`EVIDENCE=` of mixed-search.sh). Prints JSON: per KIND (the runs' `at_equal_predicted_accuracy` keys) how many runs met
the goal's ratio; the range of the prediction errors (predicted / measured - 1) of every measurement the
searches made (a network measured twice counts twice), how many were predicted too fast, and the same
per search name (fp32, mixed, ...) over the runs; the range of the winners' measured latency relative
to their own search's target; and the networks each KIND's two searches measured per run. Offline: it
measures nothing.
"""
import json
import statistics
import os
import sys

runs = sys.argv[1:]
kinds, errors, winners, measured = None, [], [], {}
by_search = {}
met = {}
for run in runs:
    summary = json.load(open(os.path.join(run, "summary.json")))
    comparisons = summary["at_equal_predicted_accuracy"]
    kinds = kinds or list(comparisons)
    for kind in kinds:
        met.setdefault(kind, 0)
        met[kind] += bool(comparisons[kind]["goal_met"])
        counts = summary["measured_networks"]
        measured.setdefault(kind, []).append(counts[kind] + counts[f"{kind}-faster"])
    for name, search in summary["searches"].items():
        these = [predicted / measured - 1 for predicted, measured in search["remeasured"]]
        errors += these
        by_search.setdefault(name, []).extend(these)
        winners.append(search["measured_ms"] / search["target_ms"] - 1)
print(json.dumps({
    "runs": runs,
    "goal_met_runs": met,
    "measured_networks_per_kind": measured,
    "prediction_error_min_max": [min(errors), max(errors)],
    "predicted_too_fast": sum(e < 0 for e in errors),
    "remeasured_networks": len(errors),
    "winner_relative_to_own_target_min_max": [min(winners), max(winners)],
    "prediction_error_by_search": {
        name: {"n": len(e), "median": statistics.median(e), "min": min(e), "max": max(e)}
        for name, e in by_search.items()
    },
}, indent=1))
