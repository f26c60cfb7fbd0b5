"""What each form of transfer can express (issue 42): each form of correction of a source table is
fitted by unweighted least squares to the target device's own entries (a full profile: every piece, not a few
networks), and the networks of a validation report measured on the target are predicted by the fitted
table's sums. A reference, not a strict bound: a transfer fitted on networks minimises their error, not
the entries', but a form that ranks the networks far below the goal even when fitted to every entry
will not reach it from a few networks.

    python research/scripts/transfer-oracle.py --source SRC.json --target FULL.json \
        --report VALIDATION.json --input-size 32 --classes 10 --hsconas BIN --out OUT.json

Forms: one factor per stage (the stem and head sharing one), per operator and stage; each also with
the piece's MACs at the target's input size and a constant per layer with a block, fitted per group;
and the `per-stage-macs` level's own form (a factor per stage, one MACs and one layer coefficient). Writes, per form, the number of coefficients and
within ±5%, ±10% and Kendall's tau of the predictions against the report's measurements, beside the
target table's own plain sum and the source's.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rank_stats import kendall_tau  # noqa: E402

STAGE_REPEATS = [4, 4, 8, 4]
OPS = ["shuffle3", "shuffle5", "shuffle7", "xception"]
SCALES = ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1.0"]


def stage_of(layer):  # 1-based layer
    end = 0
    for stage, repeats in enumerate(STAGE_REPEATS):
        end += repeats
        if layer <= end:
            return stage + 1
    return len(STAGE_REPEATS)


def predict(hsconas, table, arch):
    out = subprocess.run([hsconas, "latency", "predict", "--table", table, "--arch", arch, "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def piece_values(hsconas, table):
    """Every piece's value as `hsconas` reads it (normalised by the table's reference), from
    `hsconas latency predict` of uniform networks and of one with every allowed layer skipped."""
    values = {}
    skips = ",".join("shuffle3:0.5" if first_of_stage(i + 1) else "skip" for i in range(20))
    archs = [",".join([f"{op}:{scale}"] * 20) for op in OPS for scale in SCALES] + [skips]
    for arch in archs:
        d = predict(hsconas, table, arch)
        values["stem"], values["head"] = d["stem_ms"], d["head_ms"]
        for layer in d["layers"]:
            choice = layer["choice"]
            key = f"L{layer['layer']}:skip" if choice == "skip" else f"L{layer['layer']}:{choice}"
            values[key] = layer["ms"]
    return values


def first_of_stage(layer):  # 1-based
    starts, at = [], 1
    for repeats in STAGE_REPEATS:
        starts.append(at)
        at += repeats
    return layer in starts


def piece_macs(hsconas, size, classes):
    """MACs of every piece at the target configuration, from `hsconas arch info` of uniform networks."""
    macs = {}
    for op in OPS:
        for scale in SCALES:
            arch = ",".join([f"{op}:{scale}"] * 20)
            out = subprocess.run([hsconas, "arch", "info", "--arch", arch, "--input-size", str(size),
                                  "--classes", str(classes), "--json"], check=True,
                                 capture_output=True, text=True).stdout
            for layer in json.loads(out)["layers"]:
                part = layer["part"]
                key = part if part in ("stem", "head") else f"{part}:{op}:{scale}"
                macs[key] = float(layer["macs"])
    return macs


def network_keys(arch):
    keys = ["stem", "head"]
    for i, c in enumerate(arch):
        scale = f"{float(c['scale']):.1f}" if c["op"] != "skip" else ""
        keys.append(f"L{i + 1}:skip" if c["op"] == "skip" else f"L{i + 1}:{c['op']}:{scale}")
    return keys


def group_of(key, by_op):
    if key in ("stem", "head"):
        return "stem-head"
    layer, op = key.split(":")[:2]
    stage = stage_of(int(layer[1:]))  # a skip in its stage's group, as the transfer's levels put it
    return f"{op}-stage{stage}" if by_op else f"stage{stage}"


def main():
    ap = argparse.ArgumentParser()
    for flag in ("--source", "--target", "--report", "--hsconas", "--out"):
        ap.add_argument(flag, required=True)
    ap.add_argument("--input-size", type=int, required=True)
    ap.add_argument("--classes", type=int, required=True)
    args = ap.parse_args()
    report = json.load(open(args.report))
    macs = piece_macs(args.hsconas, args.input_size, args.classes)
    src = piece_values(args.hsconas, args.source)
    tgt = piece_values(args.hsconas, args.target)
    keys = sorted(tgt)
    assert sorted(src) == keys, "the two tables hold other pieces"
    mac = {k: (0.0 if k.endswith(":skip") else macs[k]) for k in keys}
    layer = {k: (0.0 if k in ("stem", "head") or k.endswith(":skip") else 1.0) for k in keys}
    nets = [(network_keys(n["arch"]), n["measured_ms"]) for n in report["networks"]]
    measured = np.array([m for _, m in nets])

    def score(model):
        predicted = np.array([sum(model[k] for k in ks) for ks, _ in nets])
        ratio = predicted / measured - 1
        return {
            "within_5_percent": 100 * float(np.mean(np.abs(ratio) <= 0.05)),
            "within_10_percent": 100 * float(np.mean(np.abs(ratio) <= 0.10)),
            "kendall_tau": kendall_tau([float(v) for v in predicted], [float(v) for v in measured]),
        }

    rows = [dict(form="the target's own entries (plain sum)", coefficients=len(keys), **score(tgt)),
            dict(form="the source's entries (plain sum)", coefficients=0, **score(src))]
    for by_op in (False, True):
        for with_terms in (False, True):
            groups = {}
            for k in keys:
                groups.setdefault(group_of(k, by_op), []).append(k)
            model, count = {}, 0
            for ks in groups.values():
                columns = [[src[k] for k in ks]]
                if with_terms:
                    columns += [[mac[k] for k in ks], [layer[k] for k in ks]]
                a = np.array(columns).T
                a = a[:, np.abs(a).sum(axis=0) > 0]  # a group without MACs or layers (skips)
                w, *_ = np.linalg.lstsq(a, np.array([tgt[k] for k in ks]), rcond=None)
                count += a.shape[1]
                for k, row in zip(ks, a):
                    model[k] = float(row @ w)
            form = ("per operator and stage" if by_op else "per stage") + (
                ", with MACs and a cost per layer" if with_terms else ", factors only")
            rows.append(dict(form=form, coefficients=count, **score(model)))
    # The `per-stage-macs` level's own form: a factor per stage, one MACs and one layer coefficient.
    names = sorted({group_of(k, False) for k in keys})
    a = np.array([[src[k] if group_of(k, False) == g else 0.0 for g in names] + [mac[k], layer[k]]
                  for k in keys])
    w, *_ = np.linalg.lstsq(a, np.array([tgt[k] for k in keys]), rcond=None)
    model = {k: float(row @ w) for k, row in zip(keys, a)}
    rows.append(dict(form="per stage, one MACs and one layer coefficient (per-stage-macs)",
                     coefficients=a.shape[1], **score(model)))
    result = {"source": args.source, "target": args.target, "report": args.report,
              "input_size": args.input_size, "networks": len(nets), "forms": rows}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    for r in rows:
        print(f"{r['form']:<55} {r['coefficients']:>4} {r['within_10_percent']:6.1f}% {r['kendall_tau']:.3f}")


if __name__ == "__main__":
    main()
