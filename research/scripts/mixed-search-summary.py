"""Summary of research/scripts/mixed-search.sh: the FP32 search's winner against the mixed-precision
searches' winners on one mixed table.

    python research/scripts/mixed-search-summary.py OUT TABLE RATIO PROBE_BEFORE PROBE_AFTER [KIND ...]

Reads OUT/fp32/search.json and, for each KIND (default: mixed), OUT/KIND/search.json and
OUT/KIND-faster/search.json. Prints JSON: for each search its target, the winner's
architecture, INT8 layers (1-based), predicted accuracy (the built-in predictor's test top-1 of the FP32
network, percent), predicted and measured latency (ms, normalised to the table's reference state) and why
it won, and every re-measurement as [predicted, measured] ms; then the FP32 winner's measured latency over each mixed winner's and each mixed winner's predicted
accuracy minus the FP32 winner's. The winners of `--mode constraint` are the fastest within the
predictor's error of the most accurate, so they need not have the same predicted accuracy; the comparison
at equal predicted accuracy is made, per KIND, on every network the searches measured on the device: for
each FP32 network measured, the fastest network the KIND's two searches measured whose predicted accuracy
is at least as high, and the ratio of their measured latencies. `goal_met`: that ratio is at least RATIO
for the FP32 winner (per KIND). Also records the table's correction in use.
"""
import json
import statistics
import sys

out, table_path, ratio, before, after = sys.argv[1:6]
kinds = sys.argv[6:] or ["mixed"]
ratio = float(ratio)
table = json.load(open(table_path))
calibration = table.get("calibration") or {}
provenance = table["provenance"]


def vnni():
    """Whether this machine's CPU has VNNI (AVX-512 VNNI or AVX-VNNI), by /proc/cpuinfo."""
    try:
        flags = open("/proc/cpuinfo").read().split()
    except OSError:
        return None
    return "avx512_vnni" in flags or "avx_vnni" in flags


def arch_string(arch):
    """The string form of an architecture in a report's JSON form (a list of layers) or already a string."""
    if isinstance(arch, str):
        return arch
    layers = []
    for layer in arch:
        text = "skip" if layer["op"] == "skip" else f"{layer['op']}:{layer['scale']}"
        layers.append(text + ("@int8" if layer.get("precision") == "int8" else ""))
    return ",".join(layers)


def measured(report):
    """{arch: (predicted top-1 %, measured ms)} of every network the search measured on the device (the
    last measurement of one measured twice)."""
    return {
        arch_string(r["arch"]): (100 * r["accuracy"], r["measured_ms"]) for r in report["remeasured"]
    }


def int8_layers(arch):
    layers = arch.split(",")
    return [i + 1 for i, layer in enumerate(layers) if layer.endswith("@int8")]


searches, networks = {}, {}
names = ["fp32"] + [n for kind in kinds for n in (kind, f"{kind}-faster")]
for name in names:
    report = json.load(open(f"{out}/{name}/search.json"))
    networks[name] = measured(report)
    w = report["winner"]
    searches[name] = {
        "precisions": report["settings"].get("precisions", ["fp32"]),
        "fastest_precision": report["settings"]["evolution"].get("fastest_precision", False),
        "target_ms": report["settings"]["objective"]["target_ms"],
        "mode": report["settings"]["objective"]["mode"],
        "evaluations": report["evaluations"],
        "arch": w["arch"],
        "int8_layers": int8_layers(w["arch"]),
        "predicted_top1": round(100 * w["accuracy"], 3),
        "predicted_ms": w["predicted_ms"],
        "measured_ms": w["measured_ms"],
        "reason": w["reason"],
        # Every re-measurement: [predicted ms, measured ms] (the search report itself need not be kept).
        "remeasured": [[r["predicted_ms"], r["measured_ms"]] for r in report["remeasured"]],
    }
fp32 = searches["fp32"]
comparisons = {}
for name in names[1:]:
    s = searches[name]
    comparisons[name] = {
        "fp32_measured_over_mixed": fp32["measured_ms"] / s["measured_ms"],
        "predicted_top1_minus_fp32": round(s["predicted_top1"] - fp32["predicted_top1"], 3),
    }


def at_equal_accuracy(kind):
    """Each FP32 network measured against the fastest network of KIND's searches measured at the same or
    higher predicted accuracy."""
    mixed_networks = {**networks[kind], **networks[f"{kind}-faster"]}
    rows = []
    for arch, (top1, ms) in sorted(networks["fp32"].items(), key=lambda kv: kv[1][1]):
        candidates = [(m_ms, a, t) for a, (t, m_ms) in mixed_networks.items() if t >= top1]
        if not candidates:
            rows.append({"fp32_arch": arch, "fp32_predicted_top1": round(top1, 3), "fp32_measured_ms": ms,
                         "mixed_arch": None})
            continue
        m_ms, a, t = min(candidates)
        rows.append({
            "fp32_arch": arch,
            "fp32_predicted_top1": round(top1, 3),
            "fp32_measured_ms": ms,
            "mixed_arch": a,
            "mixed_int8_layers": int8_layers(a),
            "mixed_predicted_top1": round(t, 3),
            "mixed_measured_ms": m_ms,
            "fp32_over_mixed": ms / m_ms,
        })
    winner_row = next(r for r in rows if r["fp32_arch"] == fp32["arch"])
    ratios = [r["fp32_over_mixed"] for r in rows if r["mixed_arch"]]
    return {
        "fp32_winner": winner_row,
        "ratios_min_median_max": [min(ratios), statistics.median(ratios), max(ratios)] if ratios else None,
        "networks": rows,
        "goal_met": bool(winner_row.get("fp32_over_mixed", 0) >= ratio),
    }


equal = {kind: at_equal_accuracy(kind) for kind in kinds}
print(
    json.dumps(
        {
            "table": {
                "device": provenance["device"],
                "input_size": provenance["input_size"],
                "classes": provenance["classes"],
                "int8": provenance.get("int8"),
                "cpu_model": provenance["fingerprint"]["cpu_model"],
                "correction": calibration.get("correction"),
            },
            "this_cpu_has_vnni": vnni(),
            "ratio": ratio,
            "searches": searches,
            "comparisons": comparisons,
            "measured_networks": {name: len(n) for name, n in networks.items()},
            # One KIND: its comparison at the top level, as before KINDS existed.
            **({"at_equal_predicted_accuracy": equal[kinds[0]], "goal_met": equal[kinds[0]]["goal_met"]}
               if len(kinds) == 1 else {"at_equal_predicted_accuracy": equal}),
            "probe_s": {"before": before, "after": after},
        },
        indent=1,
    )
)
