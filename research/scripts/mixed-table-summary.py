"""Summary of research/scripts/mixed-table.sh: how well a mixed-precision latency table predicts networks
whose layers run in FP32 or INT8, on the machine that measured it.

    python research/scripts/mixed-table-summary.py OUT NAME PROBE_BEFORE PROBE_AFTER

Reads OUT/table.json, OUT/validation-1.json (the table's accuracy), OUT/repeatability.json (the two
validations' measurements of the same networks compared: the machine's test-retest ceiling),
OUT/gains.json and OUT/times.json. Prints JSON: every predictor of validation 1 (within ±5/±10%, Kendall
tau); the predictor in use re-computed network by network, split by the share of INT8 layers among the
layers with weights and by the number of FP32/INT8 boundaries (precision changes between consecutive
layers with weights); the least-squares cost of one boundary (measured - predicted, ms, against the
number of boundaries); the least-squares fit, on the same networks (descriptive, in-sample), of
measured - table sum against each stage's number of INT8 layers (where INT8 layers cost more in a network
than their pieces say); and, for the same networks, what the table's FP32 entries alone would have
predicted (every layer as if FP32, with the same kind of correction refitted on the calibration
networks), to show what the INT8 entries add.
"""
import json
import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rank_stats import kendall_tau  # noqa: E402

out, name, before, after = sys.argv[1:5]
table = json.load(open(f"{out}/table.json"))
report = json.load(open(f"{out}/validation-1.json"))
report_2 = json.load(open(f"{out}/validation-2.json"))
repeat = json.load(open(f"{out}/repeatability.json"))
gains = json.load(open(f"{out}/gains.json"))
times = json.load(open(f"{out}/times.json"))


def within(pred, meas, pct):
    return 100.0 * sum(abs(p / m - 1) <= pct / 100 for p, m in zip(pred, meas)) / len(meas)


def accuracy(pred, meas):
    return {
        "n": len(meas),
        "within_5_percent": within(pred, meas, 5),
        "within_10_percent": within(pred, meas, 10),
        "kendall_tau": kendall_tau(pred, meas),
        "median_ratio_measured_to_predicted": statistics.median(m / p for p, m in zip(pred, meas)),
    }


# Entries normalised to the table's reference state (ratio-1: each group's reference timing).
ref = table["reference"]
assert ref["model"] == {"model": "ratio", "window": 1}, "the summary handles the default drift model only"
points = [p["reference_ms"] for p in ref["trace"]["points"]]
stat = table["statistic"] + "_ms"


def entry(key):
    e = table["entries"][key]
    return e[stat] / (points[e["group"]] / ref["latency_ms"])


def layers(arch):
    return [
        ("skip" if l["op"] == "skip" else f"{l['op']}:{l['scale']:.1f}", l.get("precision", "fp32"))
        for l in arch
    ]


def table_sum(arch, as_fp32=False):
    s = entry("stem") + entry("head")
    for i, (choice, precision) in enumerate(layers(arch)):
        suffix = "@int8" if precision == "int8" and not as_fp32 else ""
        s += entry(f"L{i + 1}:{choice}{suffix}")
    return s


def boundaries(arch):
    seq = [p for c, p in layers(arch) if c != "skip"]
    return sum(a != b for a, b in zip(seq, seq[1:]))


def int8_share(arch):
    seq = [p for c, p in layers(arch) if c != "skip"]
    return sum(p == "int8" for p in seq) / len(seq)


def fit(xs, ys):
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    return slope, my - slope * mx


cal = table["calibration"]
kind = cal["correction"]


def corrector(sums, measured):
    """The calibration's kind of correction, fitted on these sums."""
    if kind == "bias":
        b = statistics.fmean(m - s for s, m in zip(sums, measured))
        return lambda s: s + b
    if kind == "linear":
        a, b = fit(sums, measured)
        return lambda s: a * s + b
    return lambda s: s


# The correction in use, as stored, and its FP32-only twin refitted on the same calibration networks.
def stored(s):
    if kind == "bias":
        return s + cal["bias_ms"]
    if kind == "linear":
        return cal["linear"]["scale"] * s + cal["linear"]["offset_ms"]
    return s


cal_measured = [c["measured_ms"] for c in cal["samples"]]
fp32_correction = corrector([table_sum(c["arch"], True) for c in cal["samples"]], cal_measured)

nets = report["networks"]
measured = [n["measured_ms"] for n in nets]
for n in nets:
    assert abs(table_sum(n["arch"]) - n["table_sum_ms"]) < 1e-9 * max(1.0, n["table_sum_ms"]), n
predicted = [stored(n["table_sum_ms"]) for n in nets]
fp32_predicted = [fp32_correction(table_sum(n["arch"], True)) for n in nets]


def split(key, bins):
    rows = []
    for label, low, high in bins:
        idx = [i for i, n in enumerate(nets) if low <= key(n["arch"]) < high]
        if len(idx) >= 5:
            rows.append({"bin": label, **accuracy([predicted[i] for i in idx], [measured[i] for i in idx])})
    return rows


STAGE_OF_LAYER = [0] * 4 + [1] * 4 + [2] * 8 + [3] * 4


def int8_per_stage(arch):
    counts = [0, 0, 0, 0]
    for i, (_, precision) in enumerate(layers(arch)):
        counts[STAGE_OF_LAYER[i]] += precision == "int8"
    return counts


def least_squares(design, y):
    """Coefficients and their ordinary standard errors."""
    coefficients = np.linalg.lstsq(design, y, rcond=None)[0]
    residual = y - design @ coefficients
    dof = len(y) - design.shape[1]
    covariance = (residual @ residual / dof) * np.linalg.inv(design.T @ design)
    return coefficients, np.sqrt(np.diag(covariance))


sum_residual = np.array([n["measured_ms"] - n["table_sum_ms"] for n in nets])
design = np.array([[1.0] + int8_per_stage(n["arch"]) for n in nets])
coefficients, standard_errors = least_squares(design, sum_residual)
stage_fit = {
    "intercept_ms": float(coefficients[0]),
    "ms_per_int8_layer_in_stage": [float(c) for c in coefficients[1:]],
    "standard_error_ms": [float(s) for s in standard_errors[1:]],
    "residual_sd_ms_before": float(sum_residual.std()),
    "residual_sd_ms_after": float((sum_residual - design @ coefficients).std()),
}
residual = [m - p for p, m in zip(predicted, measured)]
slope, intercept = fit([boundaries(n["arch"]) for n in nets], residual)
_, boundary_se = least_squares(
    np.array([[1.0, boundaries(n["arch"])] for n in nets]), np.array(residual)
)
# Pieces whose INT8 twin was measured in another group (tables profiled before twins were kept together).
twins_apart = sum(
    1
    for key, e in table["entries"].items()
    if key.endswith("@int8") and e.get("group") != table["entries"][key[: -len("@int8")]].get("group")
)
nets_2 = report_2["networks"]
predicted_2 = [stored(n["table_sum_ms"]) for n in nets_2]
active = next(p for p in report["predictors"] if p["active"])
summary = {
    "name": name,
    "table": {
        "cpu_model": table["provenance"]["fingerprint"]["cpu_model"],
        "input_size": table["provenance"]["input_size"],
        "entries": len(table["entries"]),
        "int8": table["provenance"]["int8"],
        "backend": table["provenance"]["backend_version"],
        "date": table["provenance"]["date"],
    },
    "seconds": times,
    "probe_s": {"before": before, "after": after},
    "int8_speedup": {
        "all": gains["all"],
        "by_op": gains["by_op"],
        "first_and_last_layers": [gains["by_layer"][0], gains["by_layer"][-1]],
    },
    "calibration": {"networks": len(cal["samples"]), "correction": kind},
    "validation": {
        "networks": len(nets),
        "predictors": {p["name"]: p["accuracy"] for p in report["predictors"]},
        "in_use": active["name"],
        "in_use_recomputed": accuracy(predicted, measured),
        "by_int8_share": split(int8_share, [("0-33%", 0, 1 / 3), ("33-67%", 1 / 3, 2 / 3), ("67-100%", 2 / 3, 1.01)]),
        "by_boundaries": split(boundaries, [("0-5", 0, 6), ("6-9", 6, 10), ("10-19", 10, 20)]),
        "ms_per_boundary": {
            "slope_ms": slope,
            "intercept_ms": intercept,
            "slope_standard_error_ms": float(boundary_se[1]),
        },
        "int8_cost_by_stage_in_sample": stage_fit,
        "fp32_entries_only": accuracy(fp32_predicted, measured),
        "in_use_on_validation_2": accuracy(predicted_2, [n["measured_ms"] for n in nets_2]),
    },
    "int8_twins_in_another_group": twins_apart,
    "test_retest": {
        "raw": {k: repeat["raw_ms"][k] for k in ("kendall_tau", "within_5_percent", "within_10_percent")},
        "normalised": {
            k: repeat["measured_ms"][k] for k in ("kendall_tau", "within_5_percent", "within_10_percent")
        },
    },
}
print(json.dumps(summary, indent=2))
