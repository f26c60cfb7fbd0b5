#!/usr/bin/env python3
"""What measuring one piece per shape costs in accuracy, offline, on a full profile and its validation:
the twins of a shape (hsconas_models::build::Piece::shape: the layers of a stage after its first, with
one choice) take the entry of one of them instead of their own, as `hsconas profile --once-per-shape`
does, and the plain table sums of the report's 200 networks are compared with what was measured, beside
the full table's. Variants: `first` (the twin `--once-per-shape` measures: the first in the space's
order) and DRAWS random twins per shape (how much the choice of the one measurement matters).

The entries are read as the product reads them (normalised for drift): `hsconas latency predict --json`
on archs that together hold every piece; the full table's sums are checked against the report's
`table_sum_ms` before anything is compared (unless --other-table: a report that validated another table
of the same device, which gives measured networks all the same). Prints and writes (--out) within ±5%, ±10%, Kendall tau and
RMSPE of each variant.

  research/scripts/once-per-shape-offline.py --table T.json --report R.json --out O.json [--draws 10]
  research/scripts/once-per-shape-offline.py --summary SUMMARY.md O.json...   # the docs' table
"""
import argparse
import gzip
import json
import os
import tempfile
import random
import subprocess
import sys

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from rank_stats import kendall_tau  # noqa: E402

STAGE_FIRST = {1, 5, 9, 17}  # 1-based first layers of the four stages (stride 2)


def stage(layer):
    return max(f for f in STAGE_FIRST if f <= layer)


def shape(key):
    if key in ("stem", "head"):
        return key
    layer, choice = key[1:].split(":", 1)
    layer = int(layer)
    return f"stage{stage(layer)}:{'first' if layer in STAGE_FIRST else 'rest'}:{choice}"


def layer_choices(keys):
    by_layer = {}
    for k in keys:
        if k.startswith("L") and "@" not in k:
            layer, choice = k[1:].split(":", 1)
            by_layer.setdefault(int(layer), []).append(choice)
    return [sorted(by_layer[l]) for l in sorted(by_layer)]


def normalised_entries(hsconas, table_path, keys):
    """Every piece's entry as predictions use it, from `latency predict --json` on covering archs."""
    choices = layer_choices(keys)
    values = {}
    for i in range(max(len(c) for c in choices)):
        arch = ",".join(c[i % len(c)] for c in choices)
        out = subprocess.run([hsconas, "latency", "predict", "--table", table_path, "--arch", arch, "--json"],
                             check=True, capture_output=True, text=True).stdout
        p = json.loads(out)
        values["stem"], values["head"] = p["stem_ms"], p["head_ms"]
        for layer in p["layers"]:
            values[f"L{layer['layer']}:{layer['choice']}"] = layer["ms"]
    missing = [k for k in keys if "@" not in k and k not in values]
    if missing:
        raise SystemExit(f"no prediction covered {missing[:5]}")
    return values


def arch_keys(arch):
    keys = ["stem", "head"]
    for i, l in enumerate(arch, 1):
        keys.append(f"L{i}:skip" if l["op"] == "skip" else f"L{i}:{l['op']}:{l['scale']}")
    return keys


def metrics(predicted, measured):
    rel = [p / m - 1 for p, m in zip(predicted, measured)]
    n = len(rel)
    return {
        "within_5_percent": 100 * sum(abs(r) <= 0.05 for r in rel) / n,
        "within_10_percent": 100 * sum(abs(r) <= 0.10 for r in rel) / n,
        "kendall_tau": kendall_tau(predicted, measured),
        "rmspe_percent": 100 * (sum(r * r for r in rel) / n) ** 0.5,
    }


def summary(results, out):
    """The Markdown table docs/latency-local-cpu.md copies, one row per result file."""
    rows = ["| table, validation | within ±5%: every piece / one per shape / random twin | "
            "within ±10%: every piece / one per shape | Kendall tau: every piece / one per shape / random twin |",
            "| --- | --- | --- | --- |"]
    for path in results:
        r = json.load(open(path))
        f, o, rng = r["full"], r["first"], r["random_twin_range"]
        name = os.path.basename(path).removesuffix(".json")
        rows.append(f"| {name} | {f['within_5_percent']:.1f} / {o['within_5_percent']:.1f} / "
                    f"{rng['within_5_percent'][0]:.1f}-{rng['within_5_percent'][1]:.1f} | "
                    f"{f['within_10_percent']:.1f} / {o['within_10_percent']:.1f} | "
                    f"{f['kendall_tau']:.3f} / {o['kendall_tau']:.3f} / "
                    f"{rng['kendall_tau'][0]:.3f}-{rng['kendall_tau'][1]:.3f} |")
    open(out, "w").write("\n".join(rows) + "\n")
    print("\n".join(rows))


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--summary":  # --summary OUT.md RESULT.json...
        return summary(sys.argv[3:], sys.argv[2])
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--table", required=True)
    ap.add_argument("--report", required=True)
    ap.add_argument("--hsconas", default="target/release/hsconas")
    ap.add_argument("--draws", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--other-table", action="store_true",
                    help="the report validated another table of the device: skip the check of its sums")
    a = ap.parse_args()
    read = lambda path: json.load(gzip.open(path, "rt") if path.endswith(".gz") else open(path))
    table = read(a.table)
    report = read(a.report)
    keys = [k for k in table["entries"] if "@" not in k]
    with tempfile.TemporaryDirectory() as tmp:  # hsconas reads tables uncompressed
        path = os.path.join(tmp, "table.json")
        json.dump(table, open(path, "w"))
        value = normalised_entries(a.hsconas, path, keys)
    nets = report["networks"]
    measured = [n["measured_ms"] for n in nets]
    full = [sum(value[k] for k in arch_keys(n["arch"])) for n in nets]
    worst = max(abs(f / n["table_sum_ms"] - 1) for f, n in zip(full, nets))
    if worst > 1e-9 and not a.other_table:
        raise SystemExit(f"the entries read do not reproduce the report's table sums (off by {worst:.2e})")
    twins = {}
    for k in keys:  # the table's order is not the space's: sort by layer, then choice
        twins.setdefault(shape(k), []).append(k)
    order = lambda k: (0, 0, k) if k in ("stem", "head") else (1, int(k[1:].split(":")[0]), k)
    for s in twins:
        twins[s].sort(key=order)

    def sums(pick):
        copied = {k: value[pick[shape(k)]] for k in keys}
        return [sum(copied[k] for k in arch_keys(n["arch"])) for n in nets]

    result = {"table": a.table, "report": a.report, "report_validated_this_table": not a.other_table,
              "networks": len(nets), "shapes": len(twins),
              "pieces": len(keys), "full": metrics(full, measured)}
    result["first"] = metrics(sums({s: t[0] for s, t in twins.items()}), measured)
    rng = random.Random(a.seed)
    result["random_twin"] = [metrics(sums({s: rng.choice(t) for s, t in twins.items()}), measured)
                             for _ in range(a.draws)]
    result["random_twin_range"] = {m: [min(d[m] for d in result["random_twin"]), max(d[m] for d in result["random_twin"])]
                                   for m in result["full"]}
    json.dump(result, open(a.out, "w"), indent=1)
    row = lambda name, m: print(f"{name:<22}{m['within_5_percent']:>7.1f}%{m['within_10_percent']:>8.1f}%"
                                f"{m['kendall_tau']:>8.3f}{m['rmspe_percent']:>8.2f}%")
    print(f"{len(keys)} pieces, {len(twins)} shapes; plain table sums of {len(nets)} measured networks")
    print(f"{'':<22}{'±5%':>8}{'±10%':>9}{'tau':>8}{'RMSPE':>9}")
    row("every piece", result["full"])
    row("one per shape (first)", result["first"])
    for i, m in enumerate(result["random_twin"]):
        row(f"random twin {i + 1}", m)


if __name__ == "__main__":
    main()
