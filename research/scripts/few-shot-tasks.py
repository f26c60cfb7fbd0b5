#!/usr/bin/env python3
"""How alike two tasks rank the same networks: Kendall's tau-b (as `hsconas` computes it) between the
trained top-1 of the networks two `hsconas predictor collect` results files share (matched by
architecture, each the mean over its seeds), with a 95% bootstrap interval over the shared networks
(2,000 resamples, seed 0; nearest-rank percentiles; a resample with a constant side counts as 0).

    research/scripts/few-shot-tasks.py A/results.tsv B/results.tsv [...] > tasks.json

A few-shot adaptation can only improve on its prior where the new task orders networks otherwise than
the prior's task does; this says how differently the measured tasks order them."""

import itertools
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rank_stats import kendall_tau_b  # noqa: E402


def load(path):
    """{arch: mean top-1 over its rows} and the recipe of a results TSV."""
    with open(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        rows = [dict(zip(header, line.rstrip("\n").split("\t"))) for line in f if line.strip()]
    runs = {}
    for r in rows:
        runs.setdefault(r["arch"], []).append(float(r["top1"]))
    recipes = sorted({r.get("recipe", "") for r in rows})
    return {a: sum(v) / len(v) for a, v in runs.items()}, recipes


def interval(x, y, resamples=2000, seed=0):
    """2.5th and 97.5th percentile of tau over bootstrap resamples of the pairs."""
    rng, n, taus = random.Random(seed), len(x), []
    for _ in range(resamples):
        pick = [rng.randrange(n) for _ in range(n)]
        taus.append(kendall_tau_b([x[i] for i in pick], [y[i] for i in pick]))
    taus.sort()
    return taus[round(0.025 * (resamples - 1))], taus[round(0.975 * (resamples - 1))]


def main(paths):
    tasks = {p: load(p) for p in paths}
    pairs = []
    for a, b in itertools.combinations(paths, 2):
        shared = sorted(set(tasks[a][0]) & set(tasks[b][0]))
        if len(shared) < 3:
            sys.exit(f"{a} and {b} share {len(shared)} networks: too few to rank")
        x = [tasks[a][0][s] for s in shared]
        y = [tasks[b][0][s] for s in shared]
        low, high = interval(x, y)
        pairs.append({"a": a, "b": b, "networks": len(shared), "kendall_tau": kendall_tau_b(x, y),
                      "ci95": [low, high]})
    out = {"tasks": [{"results": p, "networks": len(t[0]), "recipes": t[1]} for p, t in tasks.items()],
           "pairs": pairs}
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1:])
