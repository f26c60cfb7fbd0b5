#!/usr/bin/env python3
"""Compares each pair's N-curve with the `per-stage-macs` level (DIR/<pair>.json[.gz]) against the curve
committed before it (the path after `=`), split by split (the same seed and draws give the same splits):
median within +-10% and Kendall tau before and after, how many splits chose the new level, and a check
that the splits where neither run chose it came out the same (so the differences are the new level's).
Writes DIR/summary.json and DIR/summary.md. Used by research/scripts/transfer-terms.sh."""
import argparse
import gzip
import json
import statistics
from pathlib import Path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True, type=Path)
    ap.add_argument("pairs", nargs="+", help="NAME=BEFORE.json")
    args = ap.parse_args()
    rows = []
    for item in args.pairs:
        name, before_path = item.split("=", 1)
        before = json.loads(Path(before_path).read_text())
        plain, packed = args.dir / f"{name}.json", args.dir / f"{name}.json.gz"
        after = json.loads(plain.read_text() if plain.exists() else gzip.open(packed).read())
        by_n = {s["networks"]: s for s in before["sizes"]}
        for s in after["sizes"]:
            n = s["networks"]
            b = by_n[n]
            same, unchanged = 0, 0
            for db, da in zip(b["draws"], s["draws"]):
                if (db["level"], db["penalty"]) == (da["level"], da["penalty"]) and da["level"] != "per-stage-macs":
                    same += 1
                    unchanged += db["test"] == da["test"]
            med = lambda sz, key: statistics.median(d["test"][key] for d in sz["draws"])
            rows.append({
                "pair": name,
                "networks": n,
                "draws": len(s["draws"]),
                "before": {"within_10_percent": med(b, "within_10_percent"),
                           "kendall_tau": med(b, "kendall_tau"),
                           "rmspe_percent": med(b, "rmspe_percent")},
                "after": {"within_10_percent": med(s, "within_10_percent"),
                          "kendall_tau": med(s, "kendall_tau"),
                          "rmspe_percent": med(s, "rmspe_percent")},
                "new_level_chosen": sum(d["level"] == "per-stage-macs" for d in s["draws"]),
                "same_level_splits": same,
                "same_level_splits_identical": unchanged,
            })
    (args.dir / "summary.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = ["| pair | N | chose per-stage-macs | within ±10% before / after | Kendall tau before / after | RMSPE before / after |",
             "| --- | ---: | ---: | --- | --- | --- |"]
    for r in rows:
        b, a = r["before"], r["after"]
        lines.append(f"| {r['pair']} | {r['networks']} | {r['new_level_chosen']} of {r['draws']} | "
                     f"{b['within_10_percent']:.1f}% / {a['within_10_percent']:.1f}% | "
                     f"{b['kendall_tau']:.3f} / {a['kendall_tau']:.3f} | "
                     f"{b['rmspe_percent']:.2f}% / {a['rmspe_percent']:.2f}% |")
    (args.dir / "summary.md").write_text("\n".join(lines) + "\n")
    bad = [r for r in rows if r["same_level_splits_identical"] != r["same_level_splits"]]
    print("\n".join(lines))
    if bad:
        print(f"warning: {len(bad)} rows with splits that chose the same other level but differ")


if __name__ == "__main__":
    main()
