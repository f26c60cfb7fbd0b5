"""Summary of research/scripts/int8-pieces.sh: per piece the FP32 and INT8 medians and the INT8 speed-up
(median of per-round FP32/INT8 ratios), and the speed-up's median by stage, operator and width.

  int8-pieces-summary.py RUNS SIZE "PROBE_BEFORE" "PROBE_AFTER" [EVIDENCE_DIR]
"""
import json
import os
import statistics
import subprocess
import sys


def main(runs, size, before, after, evidence):
    rows = [json.loads(l) for l in open(os.path.join(runs, "samples.jsonl"))]
    by = {}
    for r in rows:
        by.setdefault(r["piece"], {}).setdefault(r["precision"], {})[r["round"]] = r["median_ms"]
    pieces = {}
    for key, p in by.items():
        ratios = [p["fp32"][i] / p["int8"][i] for i in p["fp32"]]
        pieces[key] = {
            "fp32_ms": round(statistics.median(p["fp32"].values()), 4),
            "int8_ms": round(statistics.median(p["int8"].values()), 4),
            "speedup": round(statistics.median(ratios), 3),
            "speedup_min": round(min(ratios), 3),
            "speedup_max": round(max(ratios), 3),
        }

    def group(name_of):
        groups = {}
        for key, v in pieces.items():
            name = name_of(key)
            if name is not None:
                groups.setdefault(name, []).append(v["speedup"])
        return {k: {"pieces": len(v), "median_speedup": round(statistics.median(v), 3),
                    "min": round(min(v), 3), "max": round(max(v), 3)} for k, v in sorted(groups.items())}

    def layer(key):
        return int(key.split(":")[0][1:]) if key.startswith("L") else None

    def stage(key):
        l = layer(key)
        if l is None:
            return None
        return 1 if l <= 4 else 2 if l <= 8 else 3 if l <= 16 else 4

    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    summary = {
        "command": f"SIZE={size} bash research/scripts/int8-pieces.sh",
        "input_size": int(size),
        "cpu": next((l.split(":", 1)[1].strip() for l in cpu.splitlines() if l.startswith("Model name")), "?"),
        "vnni": "avx512_vnni" in cpu,
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                 text=True).stdout.strip(),
        "rounds": max(r["round"] for r in rows),
        "probe_s_before": [float(x) for x in before.split()],
        "probe_s_after": [float(x) for x in after.split()],
        "by_stage": group(lambda k: f"stage {stage(k)}" if stage(k) else None),
        "by_operator": group(lambda k: k.split(":")[1] if k.startswith("L") else None),
        "by_scale": group(lambda k: k.split(":")[2] if k.startswith("L") else None),
        "pieces": pieces,
    }
    for name in ["by_stage", "by_operator", "by_scale"]:
        print(name, json.dumps(summary[name]))
    print("stem", pieces.get("stem"), "head", pieces.get("head"))
    if evidence:
        os.makedirs(evidence, exist_ok=True)
        with open(os.path.join(evidence, f"summary-{size}.json"), "w") as f:
            json.dump(summary, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main(*sys.argv[1:5], sys.argv[5] if len(sys.argv) > 5 else "")
