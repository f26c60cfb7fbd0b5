"""Would a correction with INT8 terms per stage predict mixed-precision networks better? (issue 41, item 3)

    python research/scripts/mixed-stage-correction.py TABLE VALIDATION [VALIDATION ...]

TABLE is a calibrated mixed-precision table (`hsconas calibrate`; .json or .json.gz), each VALIDATION a
`hsconas latency validate --out` report of held-out networks on the same table. Each correction is
fitted by least squares on the table's calibration networks only and applied to the held-out ones:

  sum        the table sum
  bias       table sum + b
  line       a * table sum + b
  int8       table sum + b + c * (number of INT8 layers)
  stage      table sum + b + sum over the 4 stages of c_s * (INT8 layers in stage s)

For each: the leave-one-out RMSE over the calibration networks (ms; what a held-out rule at calibration
sees) and, per validation report, within ±5% / ±10% and Kendall tau. Prints JSON. Offline analysis of
committed files: it measures nothing.
"""
import gzip
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rank_stats import kendall_tau  # noqa: E402

STAGE_REPEATS = [4, 4, 8, 4]


def load(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        return json.load(f)


def int8_per_stage(arch):
    counts, layer = [0, 0, 0, 0], 0
    for stage, repeats in enumerate(STAGE_REPEATS):
        for _ in range(repeats):
            counts[stage] += arch[layer].get("precision") == "int8"
            layer += 1
    return counts


def features(net, kind):
    """(regressors, offset): measured ~ offset + regressors . coefficients."""
    stages, total = int8_per_stage(net["arch"]), net["table_sum_ms"]
    return {
        "sum": ([], total),
        "bias": ([1.0], total),
        "line": ([1.0, total], 0.0),
        "int8": ([1.0, float(sum(stages))], total),
        "stage": ([1.0] + [float(s) for s in stages], total),
    }[kind]


def fit(nets, kind):
    rows = [features(n, kind) for n in nets]
    if not rows[0][0]:
        return np.zeros(0)
    x = np.array([r[0] for r in rows])
    y = np.array([n["measured_ms"] - r[1] for n, r in zip(nets, rows)])
    return np.linalg.lstsq(x, y, rcond=None)[0]


def predict(net, kind, coefficients):
    regressors, offset = features(net, kind)
    return offset + float(np.dot(regressors, coefficients)) if regressors else offset


def accuracy(predicted, measured):
    rel = np.abs(np.array(predicted) / np.array(measured) - 1)
    return {
        "within_5_percent": round(100 * float(np.mean(rel <= 0.05)), 2),
        "within_10_percent": round(100 * float(np.mean(rel <= 0.10)), 2),
        "kendall_tau": round(kendall_tau(predicted, measured), 4),
    }


table_path, validations = sys.argv[1], sys.argv[2:]
calibration = load(table_path)["calibration"]["samples"]
reports = [load(v)["networks"] for v in validations]
result = {"calibration_networks": len(calibration), "held_out_networks": [len(r) for r in reports]}
for kind in ["sum", "bias", "line", "int8", "stage"]:
    errors = []
    for i, net in enumerate(calibration):
        c = fit(calibration[:i] + calibration[i + 1 :], kind)
        errors.append(predict(net, kind, c) - net["measured_ms"])
    coefficients = fit(calibration, kind)
    result[kind] = {
        "coefficients": [round(float(c), 4) for c in coefficients],
        "calibration_loo_rmse_ms": round(float(np.sqrt(np.mean(np.square(errors)))), 4),
        "held_out": [
            accuracy([predict(n, kind, coefficients) for n in nets], [n["measured_ms"] for n in nets])
            for nets in reports
        ],
    }
print(json.dumps(result, indent=1))
