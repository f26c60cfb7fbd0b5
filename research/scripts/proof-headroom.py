#!/usr/bin/env python3
"""How much room the search-level proof leaves above uniform channel scaling, against the seed noise.

Reads the proof's networks (docs/evidence/search-proof/networks.json: latencies measured together with
the winner, trainings of the ground truth's recipe) and writes docs/evidence/search-proof/headroom.json:

- `seed_noise`: over every network trained with seeds 0 and 1, the mean |seed 0 - seed 1| (points), the
  standard deviation of one training implied by those differences (sqrt(mean(d^2) / 2)) and that of a
  two-seed mean (divided by sqrt 2);
- `at_winner`: from proof.json, the uniform scaling measured closest to the winner and, among it and
  the draws within the tolerance of the winner's latency, the most accurate trained network, and the difference
  between them (the most a perfect search could have beaten uniform scaling by, on what was trained);
- `uniform`: every uniform scaling's latency (as measured in the proof's runs) and accuracy.

Usage: python3 research/scripts/proof-headroom.py [PROOF_DIR] (default docs/evidence/search-proof), after
`research/scripts/search-proof.sh report`. Analysis of committed results only: it trains and measures nothing.
"""
import json
import math
import statistics
import sys

proof_dir = sys.argv[1] if len(sys.argv) > 1 else "docs/evidence/search-proof"
proof = json.load(open(f"{proof_dir}/proof.json"))
networks = json.load(open(f"{proof_dir}/networks.json"))["networks"]
tolerance = proof["tolerance"]


def mean_top1(n):
    runs = n.get("runs") or []
    return statistics.mean(r["test_top1"] for r in runs) if runs else None


both = [n for n in networks if {r["seed"] for r in n.get("runs") or []} >= {0, 1}]
diffs = []
for n in both:
    by_seed = {r["seed"]: r["test_top1"] for r in n["runs"]}
    diffs.append(by_seed[0] - by_seed[1])
one_sd = math.sqrt(statistics.mean(d * d for d in diffs) / 2)

# The proof's own selection (hsconas_nas::SearchProof): the draws within the tolerance of the winner's
# latency and the uniform scaling measured closest to it, each with its mean test top-1.
winner, uniform = proof["winner"], proof["uniform"]
trained_near = [e for e in proof["draws"] + [uniform] if e.get("test_top1") is not None]
best = max(trained_near, key=lambda e: e["test_top1"])


def entry(e):
    return {k: e[k] for k in ("id", "measured_ms", "relative_to_winner", "test_top1", "seeds")}


def network_entry(n):
    return {
        "id": n["id"],
        "measured_ms": n["measured_ms"],
        "relative_to_winner": n["measured_ms"] / winner["measured_ms"] - 1,
        "test_top1": mean_top1(n),
        "seeds": sorted(r["seed"] for r in n.get("runs") or []),
    }


out = {
    "proof": proof_dir,
    "tolerance": tolerance,
    "seed_noise": {
        "networks": len(both),
        "mean_abs_seed_difference": statistics.mean(abs(d) for d in diffs),
        "max_abs_seed_difference": max(abs(d) for d in diffs),
        "one_training_sd": one_sd,
        "two_seed_mean_sd": one_sd / math.sqrt(2),
    },
    "at_winner": {
        "winner": entry(winner),
        "uniform": entry(uniform),
        "best_trained": entry(best),
        "trained_within_tolerance": len(trained_near),
        "best_minus_uniform": best["test_top1"] - uniform["test_top1"],
        "winner_minus_uniform": (winner["test_top1"] - uniform["test_top1"])
        if winner.get("test_top1") is not None
        else None,
    },
    "uniform": sorted(
        (network_entry(n) for n in networks if n["group"] == "uniform" and n.get("runs")),
        key=lambda e: e["measured_ms"],
    ),
}
json.dump(out, open(f"{proof_dir}/headroom.json", "w"), indent=2)
a, s = out["at_winner"], out["seed_noise"]
print(
    f"within ±{tolerance:.0%} of the winner: best trained {a['best_trained']['id']} "
    f"{a['best_trained']['test_top1']:.2f}%, uniform {a['uniform']['id']} {a['uniform']['test_top1']:.2f}%: "
    f"headroom {a['best_minus_uniform']:+.2f} points; one training's sd {s['one_training_sd']:.2f}, "
    f"a two-seed mean's {s['two_seed_mean_sd']:.2f} ({s['networks']} networks with two seeds); "
    f"wrote {proof_dir}/headroom.json"
)
