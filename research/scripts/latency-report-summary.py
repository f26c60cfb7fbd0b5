"""The summary of one `research/scripts/latency-report.sh` campaign (its runs under OUT): the validation table of
every predictor (median and range over runs), how the device moved (the reference network's timings while
profiling, calibrating and validating), and the predictor in use under each drift model of every run.

    python research/scripts/latency-report-summary.py OUT REPEATS SIZE [EVIDENCE] [HOG]

With EVIDENCE (a folder), each run's report, its table without the entries (provenance, reference network
and its trace, calibration, validation), the loaded run's report and the hog's timing (HOG=1), run 1's second
validation and the two measurements' agreement (RETEST=1), the steps'
seconds (`<size>-times.json`) and the drift tables as Markdown (`<size>-summary.md`, quoted by
docs/latency-local-cpu.md) are written there.
"""
import json
import os
import re
import shutil
import statistics
import sys

out, repeats, size = sys.argv[1], int(sys.argv[2]), sys.argv[3]
evidence = sys.argv[4] if len(sys.argv) > 4 else ""
hog = len(sys.argv) > 5 and sys.argv[5] == "1"
runs = [f"{out}/run-{i}" for i in range(1, repeats + 1)]
reports = [json.load(open(f"{run}/report.json")) for run in runs]
tables = [json.load(open(f"{run}/table.json")) for run in runs]
times = []
for run in runs:
    lines = [re.match(r"([\w-]+): (\d+) s", line) for line in open(f"{run}/times.txt")]
    times.append({f"{m[1].replace('-', '_')}_s": int(m[2]) for m in lines if m})

metrics = ["rmse_ms", "rmspe_percent", "mae_ms", "max_error_ms", "within_5_percent", "within_10_percent",
           "kendall_tau", "spearman_rho"]
print(f"summary over {repeats} runs: median [min, max]")
print("| predictor | " + " | ".join(metrics) + " |")
print("|---" * (len(metrics) + 1) + "|")
for name in [p["name"] for p in reports[0]["predictors"]]:
    cells = []
    for m in metrics:
        values = [next(p for p in r["predictors"] if p["name"] == name)["accuracy"][m] for r in reports]
        cells.append(f"{statistics.median(values):.3f} [{min(values):.3f}, {max(values):.3f}]")
    print(f"| {name} | " + " | ".join(cells) + " |")


def model_name(m):
    return f"ratio-{m['window']}" if m["model"] == "ratio" else m["model"]


def state(points, reference_ms):
    """The reference's timings relative to the table's state: median, lowest, highest."""
    factors = [p["reference_ms"] / reference_ms for p in points]
    return f"{statistics.median(factors):.3f} ({min(factors):.3f}-{max(factors):.3f})"


md = [f"### How the device moved, input {size}", "",
      "| run | reference timed | profile (s) | reference network in the table (ms) | while profiling | "
      "while calibrating | calibration to validation (s) | while validating |",
      "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
for i, (table, report, t) in enumerate(zip(tables, reports, times), 1):
    ref = table["reference"]
    drift = report["drift"]
    context = "alone" if ref.get("alone") else "interleaved"
    md.append(f"| {i} | {context} | {t['profile_s']} | {ref['latency_ms']:.3f} | "
              f"{state(ref['trace']['points'], ref['latency_ms'])} | "
              f"{state(table['calibration']['trace']['points'], ref['latency_ms'])} | {t.get('gap_s', '-')} | "
              f"{state(drift['trace']['points'], drift['reference_ms'])} |")
md += ["", f"### The predictor in use under each drift model, input {size}", "",
       "| run | drift model | predictor in use | RMSPE % | within ±5 % | within ±10 % | Kendall tau |",
       "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
loaded = [("1, loaded", json.load(open(f"{runs[0]}/hog-report.json")))] if hog else []
contexts = [("alone" if t["reference"].get("alone") else "interleaved")
            + (f", pieces x{b}" if (b := t["provenance"]["protocol"].get("burst", 1)) > 1 else "") for t in tables]
for label, report in [(f"{i} ({c})", r) for i, (r, c) in enumerate(zip(reports, contexts), 1)] + loaded:
    drift = report["drift"]
    for rows in drift["by_model"]:
        row = next(p for p in rows["predictors"] if p["active"])
        a = row["accuracy"]
        mine = " (the table's)" if rows["model"] == drift["model"] else ""
        md.append(f"| {label} | {model_name(rows['model'])}{mine} | {row['name']} | {a['rmspe_percent']:.2f} | "
                  f"{a['within_5_percent']:.1f} | {a['within_10_percent']:.1f} | {a['kendall_tau']:.3f} |")
md += ["", f"### The predictor in use against the plain table sum, input {size}", "",
       "| run | predictor in use | within ±5 %: in use | table | in use - table (points) | Kendall tau |",
       "| --- | --- | ---: | ---: | ---: | ---: |"]
for i, report in enumerate(reports, 1):
    used = next(p for p in report["predictors"] if p["active"])
    plain = next(p for p in report["predictors"] if p["name"] == "table")
    u, t = used["accuracy"]["within_5_percent"], plain["accuracy"]["within_5_percent"]
    md.append(f"| {i} | {used['name']} | {u:.1f} | {t:.1f} | {u - t:+.1f} | {used['accuracy']['kendall_tau']:.3f} |")
retest = f"{runs[0]}/repeatability.json"
if os.path.exists(retest):
    r = json.load(open(retest))
    md += ["", f"Test-retest (run 1's networks measured again): Kendall tau {r['raw_ms']['kendall_tau']:.3f} raw, "
           f"{r['measured_ms']['kendall_tau']:.3f} normalised."]
md = "\n".join(md) + "\n"
print()
print("the device's state: the reference network's timings divided by its latency in the table (median, range)")
print(md)
if not evidence:
    sys.exit(0)
os.makedirs(evidence, exist_ok=True)
for i, (run, table) in enumerate(zip(runs, tables), 1):
    shutil.copy(f"{run}/report.json", f"{evidence}/{size}-run-{i}.report.json")
    table.pop("entries", None)
    json.dump(table, open(f"{evidence}/{size}-run-{i}.table-summary.json", "w"), indent=2)
if hog:
    shutil.copy(f"{runs[0]}/hog-report.json", f"{evidence}/{size}-run-1-hog.report.json")
    shutil.copy(f"{runs[0]}/hog.json", f"{evidence}/{size}-run-1-hog.json")
if os.path.exists(retest):
    shutil.copy(f"{runs[0]}/retest-report.json", f"{evidence}/{size}-run-1-retest.report.json")
    shutil.copy(retest, f"{evidence}/{size}-run-1-repeatability.json")
json.dump(times, open(f"{evidence}/{size}-times.json", "w"), indent=2)
open(f"{evidence}/{size}-summary.md", "w").write(md)
print(f"kept in {evidence}")
