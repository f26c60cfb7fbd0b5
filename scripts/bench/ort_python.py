"""Times an ONNX model with Python's onnxruntime using the same protocol as `hsconas-runtime bench`
(warm-up, at least N runs and T ms, 1 intra-op thread, the same input shape). Benchmark use only.
Prints one JSON line with min/p10/median/mean in milliseconds."""
import argparse
import json
import time

import numpy as np
import onnxruntime as ort


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--min-time-ms", type=float, default=500.0)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    options = ort.SessionOptions()
    options.intra_op_num_threads = a.threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(a.model, options, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in inp.shape]
    feed = {inp.name: np.random.RandomState(0).standard_normal(shape).astype(np.float32)}
    for _ in range(a.warmup):
        session.run(None, feed)
    samples, total = [], 0.0
    while len(samples) < a.runs or total < a.min_time_ms:
        t0 = time.perf_counter_ns()
        session.run(None, feed)
        ms = (time.perf_counter_ns() - t0) / 1e6
        samples.append(ms)
        total += ms
    s = np.sort(np.array(samples))
    print(json.dumps({"min_ms": float(s[0]), "p10_ms": float(np.percentile(s, 10)),
                      "median_ms": float(np.median(s)), "mean_ms": float(s.mean()), "runs": len(s)}))


if __name__ == "__main__":
    main()
