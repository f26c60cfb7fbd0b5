"""How quiet the machine is: seconds a fixed Python loop (5e6 additions) takes, about 0.44 s on the quiet
2-core Intel VM and 0.6-1.0 s when something outside the VM competes for it. The benchmarks record three
readings before and after their timings.

  probe.py [N]   prints N readings (default 3), space-separated
"""
import sys
import time


# At global scope, as `python -c` runs it (a loop inside a function is about three times faster): the
# readings stay comparable with the ones quoted in docs/latency-local-cpu.md and the evidence.
LOOP = "s = 0\nfor i in range(5000000):\n    s += i\n"


def reading():
    start = time.perf_counter()
    exec(LOOP, {})
    return round(time.perf_counter() - start, 3)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    print(" ".join(str(reading()) for _ in range(n)))
