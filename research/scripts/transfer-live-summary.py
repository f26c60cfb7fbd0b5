"""The summary of one research/scripts/transfer-live.sh run: for the transferred and the fully profiled
table, the transfer record, the calibration's choice, and the validation's predictor in use and plain
table sum (within ±5%, ±10%, Kendall tau on the 200 held-out networks); the steps' wall times; the
machine's test-retest ceiling from repeatability.json (the same 200 networks measured by the two
validations).

    python research/scripts/transfer-live-summary.py OUT NAME SOURCE DEVICE SIZE N
"""
import json
import os
import platform
import subprocess
import sys

out, name, source, device, size, n = sys.argv[1:7]


def load(path):
    with open(f"{out}/{path}") as f:
        return json.load(f)


def accuracy(row):
    a = row["accuracy"]
    return {
        "predictor": row["name"],
        "within_5_percent": a["within_5_percent"],
        "within_10_percent": a["within_10_percent"],
        "kendall_tau": a["kendall_tau"],
        "rmspe_percent": a["rmspe_percent"],
    }


def table_summary(table):
    t = load(f"{table}.json")
    report = load(f"{table}.validation.json")
    rows = {r["name"]: r for r in report["predictors"]}
    active = next(r for r in report["predictors"] if r["active"])
    drift = (report.get("drift") or {}).get("summary")
    return {
        "transfer": t["provenance"].get("transfer"),
        "calibration_correction": t["calibration"]["correction"],
        "in_use": accuracy(active),
        "plain_table_sum": accuracy(rows["table"]),
        "macs": accuracy(rows["MACs"]),
        "validation_drift": drift,
    }


def cpu():
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next(l.split(":", 1)[1].strip() for l in lscpu.splitlines() if l.startswith("Model name"))
    vnni = "avx512_vnni" in lscpu
    return f"{model} ({'avx512_vnni' if vnni else 'no VNNI'}), {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} logical CPUs"


repeat = load("repeatability.json")
summary = {
    "pair": name,
    "source": source,
    "device": device,
    "input_size": int(size),
    "networks": int(n),
    "machine": cpu(),
    "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip(),
    "command": f"SOURCE={source} DEVICE={device} SIZE={size} N={n}"
    + (f' EXTRA="{extra}"' if (extra := os.environ.get("EXTRA", "")) else "")
    + (" ONCE=1" if os.environ.get("ONCE") == "1" else "")
    + " research/scripts/transfer-live.sh",
    "seconds": load("times.json"),
    "transferred": table_summary("transferred"),
    # The transfer's own report (`--json`): its rounds of networks and pieces and their held-out errors.
    "transfer_rounds": load("transfer-run.json")["rounds"] if os.path.exists(f"{out}/transfer-run.json") else None,
    "full_profile": table_summary("full"),
    # With ONCE=1: `hsconas profile --once-per-shape`, validated on the same networks.
    "once_per_shape": table_summary("shapes") if os.path.exists(f"{out}/shapes.json") else None,
    "test_retest": {
        "what": "the 200 held-out networks as the two validations measured them (raw and normalised)",
        "raw_kendall_tau": repeat["raw_ms"]["kendall_tau"],
        "normalised_kendall_tau": repeat["measured_ms"]["kendall_tau"],
        "normalised_within_5_percent_common_speed_removed": repeat["measured_ms"]["within_5_percent_common_speed_removed"],
    },
}
print(json.dumps(summary, indent=2))
