"""Summary of research/scripts/int8-accuracy.sh: per network, the test top-1 of the FP32 export and of
each INT8 model, their drops, and how many convolutions ONNX Runtime runs as integer kernels.

  int8-accuracy-summary.py RUNS [EVIDENCE_DIR]
"""
import json
import os
import statistics
import sys

# The models every run has, then those added for CPUs without VNNI (runs before them lack them).
MODELS = ["fp32", "ours-minmax", "ours-pct", "ort-minmax"]
LATER = ["ours-rr", "ort-rr", "ours-u8u8"]


def main(runs, evidence):
    rows = []
    names = [n for n in sorted(os.listdir(runs)) if os.path.isfile(os.path.join(runs, n, "result.json"))]
    global MODELS
    MODELS = MODELS + [m for m in LATER
                       if names and all(os.path.isfile(os.path.join(runs, n, m + ".json")) for n in names)]
    for name in names:
        d = os.path.join(runs, name)
        top1 = {m: json.load(open(os.path.join(d, m + ".json")))["top1"] for m in MODELS}
        kernels = json.load(open(os.path.join(d, "kernels.json")))
        info = json.load(open(os.path.join(d, "model.json")))
        rows.append({
            "network": name,
            "architecture": info["architecture"],
            "images": json.load(open(os.path.join(d, "fp32.json")))["images"],
            "top1": top1,
            "drop": {m: round(top1["fp32"] - top1[m], 2) for m in MODELS[1:]},
            "integer_convolutions": {m: kernels[m].get("QLinearConv", 0) for m in kernels},
            "float_convolutions": {m: kernels[m].get("Conv", 0) + kernels[m].get("FusedConv", 0)
                                   for m in kernels},
        })
    import subprocess
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    summary = {
        "command": "bash research/scripts/int8-accuracy.sh NETWORK_DIR...",
        "data": os.environ.get("DATA", "../shared/data/cifar10-jpeg.tar.gz"),
        "calibration_images": int(os.environ.get("CAL", "256")),
        "cpu": next((l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("Model name")), "?"),
        "vnni": "avx512_vnni" in cpu or "avx_vnni" in cpu,
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True).stdout.strip(),
        "networks": rows,
    }
    if rows:
        summary["mean_drop"] = {m: round(statistics.mean(r["drop"][m] for r in rows), 3) for m in MODELS[1:]}
        summary["ours_minus_ort_minmax"] = [round(r["drop"]["ours-minmax"] - r["drop"]["ort-minmax"], 2)
                                            for r in rows]
    print(f"{'network':<12} {'fp32':>7} " + " ".join(f"{m:>12}" for m in MODELS[1:]))
    for r in rows:
        print(f"{r['network']:<12} {r['top1']['fp32']:7.2f} "
              + " ".join(f"{r['top1'][m]:7.2f} ({-r['drop'][m]:+.2f})" for m in MODELS[1:]))
    if rows:
        print("mean drop (points): " + ", ".join(f"{m} {v}" for m, v in summary["mean_drop"].items()))
    if evidence:
        os.makedirs(evidence, exist_ok=True)
        with open(os.path.join(evidence, "summary.json"), "w") as f:
            json.dump(summary, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "")
