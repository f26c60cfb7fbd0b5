"""How well a device's measurements of the same networks agree with themselves: two `hsconas latency
validate` reports made with the same table and seed (the same networks), compared network by network.
This is a reference level for any latency model on that device, not a bound: both measurements are
noisy, so a prediction can agree with one of them better than the other measurement does, but a model
that ranks the networks far below this level is limited by more than the device's noise.

    python research/scripts/latency-repeatability.py FIRST.report.json SECOND.report.json [OUT.json]

Prints, and writes to OUT as JSON, for the raw and the normalised measurements: Kendall's tau between the
two measurements, the share of networks whose second measurement is within ±5% and ±10% of the first (as
measured, and after dividing by the median ratio, i.e. a common change of speed removed), the median
ratio, and Kendall's tau of the table sum against each measurement.
"""
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rank_stats import kendall_tau  # noqa: E402


def within(ratios, pct):
    return 100.0 * sum(abs(r - 1) <= pct / 100 for r in ratios) / len(ratios)


first, second = (json.load(open(p)) for p in sys.argv[1:3])
a, b = first["networks"], second["networks"]
if [n["arch"] for n in a] != [n["arch"] for n in b]:
    sys.exit("the two reports measured different networks: use the same table and --seed")
result = {"first": sys.argv[1], "second": sys.argv[2], "networks": len(a)}
for key in ("raw_ms", "measured_ms"):
    x, y = [n[key] for n in a], [n[key] for n in b]
    ratios = [q / p for p, q in zip(x, y)]
    median = statistics.median(ratios)
    table = [n["table_sum_ms"] for n in a]
    result[key] = {
        "kendall_tau": kendall_tau(x, y),
        "within_5_percent": within(ratios, 5),
        "within_10_percent": within(ratios, 10),
        "median_ratio": median,
        "within_5_percent_common_speed_removed": within([r / median for r in ratios], 5),
        "within_10_percent_common_speed_removed": within([r / median for r in ratios], 10),
        "table_sum_kendall_tau_first": kendall_tau(table, x),
        "table_sum_kendall_tau_second": kendall_tau(table, y),
    }
print(json.dumps(result, indent=2))
if len(sys.argv) > 3:
    json.dump(result, open(sys.argv[3], "w"), indent=2)
