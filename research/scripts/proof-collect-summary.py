#!/usr/bin/env python3
"""The proof's report (research/scripts/proof-collect.sh report): the search's winner against every
baseline measured at or under the target, with 95% intervals from the seed noise.

Latency: every measurement run (hsconas-runtime measure, p10 per network, every network in each run)
is read as ratios within that run; the target T is the median of the campaign's equal-latency group
*in the same runs* (the rule `centre` used to set it), so "at or under T" does not move with the
machine's speed between measurements. A network's latency relative to T is the median over the runs
of (its p10 / the equal group's median p10).

Accuracy: test top-1 per training; the campaign's networks have seed 0 from its results file (trained
by the campaign, possibly on another machine), anything trained for the proof from its runs folder.
Seed noise: pooled over every network with two or more trainings, the standard deviation of one
training; the difference of two means has the standard error sd * sqrt(1/n_a + 1/n_b) and a
Student-t interval with the pooled degrees of freedom. With few networks trained twice the interval is
wide: that is what the data allow.
"""
import argparse
import csv
import glob
import json
import math
import os
import statistics

# Two-sided 95% Student-t quantiles (t_{0.975, df}).
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
        10: 2.228, 12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


def t975(df):
    """The quantile of the nearest tabulated df at or below `df` (slightly wide, never narrow)."""
    return T975[max(k for k in T975 if k <= df)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--list", required=True)
    ap.add_argument("--measured", required=True)
    ap.add_argument("--collection", required=True, help="the campaign's results.tsv (seed 0)")
    ap.add_argument("--runs", required=True, help="the proof's trainings, <id>-s<seed>/model.json")
    ap.add_argument("--target-ms", type=float, required=True, help="T as the search was given it")
    ap.add_argument("--tolerance", type=float, default=3.0, help="percent over T still 'at T'")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    networks = list(csv.DictReader(open(a.list), delimiter="\t"))
    runs = [json.load(open(f))["results"] for f in sorted(glob.glob(os.path.join(a.measured, "run-*.json")))]
    if not runs:
        raise SystemExit(f"no measurement in {a.measured}")
    ids = [n["id"] for n in networks]
    for r, run in enumerate(runs, 1):
        missing = [i for i in ids if i not in run]
        if missing:
            raise SystemExit(f"measurement run {r} lacks {missing}: measure the whole list again")
    equal = [n["id"] for n in networks if n["group"] == "equal"]
    rel = {}
    for i in ids:
        rel[i] = statistics.median(run[i]["p10_ms"] / statistics.median(run[e]["p10_ms"] for e in equal)
                                   for run in runs)
    raw_ms = {i: statistics.median(run[i]["p10_ms"] for run in runs) for i in ids}

    top1 = {i: {} for i in ids}
    for row in csv.DictReader(open(a.collection), delimiter="\t"):
        if row["id"] in top1:
            top1[row["id"]][int(row.get("seed") or 0)] = float(row["top1"])
    for model in glob.glob(os.path.join(a.runs, "*-s*", "model.json")):
        run_id = os.path.basename(os.path.dirname(model))
        i, seed = run_id.rsplit("-s", 1)
        if i in top1:
            top1[i][int(seed)] = json.load(open(model))["test"]["top1"]

    twice = {i: list(s.values()) for i, s in top1.items() if len(s) >= 2}
    df = sum(len(v) - 1 for v in twice.values())
    sd = math.sqrt(sum(statistics.variance(v) * (len(v) - 1) for v in twice.values()) / df) if df else None

    winner = next((n["id"] for n in networks if n["group"] == "winner"), None)
    if winner is None or not top1[winner]:
        raise SystemExit("the winner is not in the list or not trained yet")
    mean = {i: statistics.mean(s.values()) for i, s in top1.items() if s}
    limit = 1 + a.tolerance / 100
    rows = []
    for n in networks:
        i = n["id"]
        row = {"id": i, "group": n["group"], "arch": n["arch"], "relative_to_target": rel[i] - 1,
               "measured_p10_ms": raw_ms[i], "at_or_under_target": rel[i] <= limit,
               "test_top1": mean.get(i), "seeds": sorted(top1[i])}
        if i != winner and i in mean and sd is not None:
            diff = mean[winner] - mean[i]
            se = sd * math.sqrt(1 / len(top1[winner]) + 1 / len(top1[i]))
            row["winner_minus"] = diff
            row["winner_minus_ci95"] = [diff - t975(df) * se, diff + t975(df) * se]
        rows.append(row)
    compared = [r for r in rows if r["id"] != winner and r["at_or_under_target"] and r["test_top1"] is not None]
    better = [r for r in compared if r.get("winner_minus_ci95", [0, 0])[0] > 0]
    worse = [r for r in compared if r.get("winner_minus_ci95", [0, 0])[1] < 0]
    report = {
        "target_ms_searched": a.target_ms,
        "target_rule": "median p10 of the campaign's equal-latency group in the same runs",
        "tolerance_percent": a.tolerance,
        "measurement_runs": len(runs),
        "seed_noise": {"networks_trained_twice": sorted(twice), "one_training_sd": sd, "df": df},
        "winner": winner,
        "compared": len(compared),
        "winner_better_count": len(better),
        "winner_better_ci_excludes_zero": [r["id"] for r in better],
        "winner_worse_ci_excludes_zero": [r["id"] for r in worse],
        "best_compared": max(compared, key=lambda r: r["test_top1"])["id"] if compared else None,
        "networks": rows,
    }
    json.dump(report, open(a.out, "w"), indent=1)

    # The table docs/RESULTS.md copies (checked by the docs check), beside the report.
    md = ["| network | group | latency vs T | test top-1 % (seeds) | winner minus it, points (95% interval) |",
          "| --- | --- | ---: | ---: | --- |"]
    w = next(r for r in rows if r["id"] == winner)
    seeds = lambda i: ", ".join(f"{top1[i][s]:.2f}" for s in sorted(top1[i]))
    md.append(f"| {winner} (the search's winner) | winner | {100 * w['relative_to_target']:+.1f}% | "
              f"{w['test_top1']:.2f} ({seeds(winner)}) | |")
    for r in sorted(compared, key=lambda r: -r["test_top1"]):
        ci = r["winner_minus_ci95"]
        md.append(f"| {r['id']} | {r['group']} | {100 * r['relative_to_target']:+.1f}% | {r['test_top1']:.2f} "
                  f"({seeds(r['id'])}) | {r['winner_minus']:+.2f} ({ci[0]:+.2f} to {ci[1]:+.2f}) |")
    open(os.path.splitext(a.out)[0] + ".md", "w").write("\n".join(md) + "\n")

    print(f"T = median of the equal group ({a.target_ms} ms when searched); {len(runs)} runs; seed noise "
          f"sd {sd if sd is None else round(sd, 2)} points (df {df}, from {', '.join(sorted(twice)) or 'none'})")
    print(f"winner {winner}: {100 * w['relative_to_target']:+.1f}% from T, test top-1 {w['test_top1']:.2f} "
          f"(seeds {w['seeds']})")
    print(f"{'id':<24}{'group':<10}{'vs T':>8}{'top-1':>8}  winner minus (95% interval)")
    for r in sorted(compared, key=lambda r: -r["test_top1"]):
        ci = r.get("winner_minus_ci95")
        cis = f"{r['winner_minus']:+.2f} ({ci[0]:+.2f} to {ci[1]:+.2f})" if ci else "-"
        print(f"{r['id']:<24}{r['group']:<10}{100 * r['relative_to_target']:>+7.1f}%{r['test_top1']:>8.2f}  {cis}")
    print(f"compared {len(compared)} at or under T (+{a.tolerance}%): winner better (interval above 0) than "
          f"{len(better)}, worse than {len(worse)}; report in {a.out}")


if __name__ == "__main__":
    main()
