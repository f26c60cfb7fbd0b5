#!/usr/bin/env python3
"""The scaling model of docs/scale-out.md: data-parallel supernet training on W workers, on paper.

Inputs: TRAFFIC, the JSON of `supernet_traffic` (gradient values one step all-reduces and the path's
multiply-accumulates per image, for the CIFAR-10 and the ImageNet supernet), and the assumptions below
(stated in the output). Per step and worker:

  compute  = batch * 6 * MACs / throughput           (forward 2 FLOPs per MAC, backward twice that)
  comm     = 2 (W - 1) / W * bytes / bandwidth  +  2 (W - 1) * latency    (ring all-reduce, no overlap)
  efficiency = compute / (compute + comm)

Writes OUT/scaling-model.json and OUT/scaling-model.md (the table the doc copies).
Usage: research/scripts/scaling-model.py TRAFFIC OUT
"""
import json
import os
import sys

# Assumptions (not measured here; see docs/scale-out.md for what they stand for).
BATCH_PER_WORKER = 64
GPU_EFFECTIVE_FLOPS = 4.5e12  # a V100-class GPU at ~30% of its 15 TFLOP/s FP32 peak on these small layers
LINKS = {"10 Gb/s": (10e9 / 8, 20e-6), "100 Gb/s": (100e9 / 8, 5e-6)}  # bytes/s, per-message latency s
WORKERS = [8, 32, 64]


def model(traffic):
    rows = []
    for net in traffic:
        floats = net["allreduced_floats_per_step"]["mean"]
        macs = net["path_macs_per_image"]["mean"]
        nbytes = 4 * floats
        compute = BATCH_PER_WORKER * 6 * macs / GPU_EFFECTIVE_FLOPS
        for link, (bandwidth, latency) in LINKS.items():
            for w in WORKERS:
                comm = 2 * (w - 1) / w * nbytes / bandwidth + 2 * (w - 1) * latency
                rows.append({
                    "supernet": net["supernet"],
                    "workers": w,
                    "link": link,
                    "allreduced_mb_per_step": nbytes / 1e6,
                    "compute_ms_per_step": 1000 * compute,
                    "comm_ms_per_step": 1000 * comm,
                    "efficiency": compute / (compute + comm),
                    "speedup": w * compute / (compute + comm),
                })
    return rows


def main():
    traffic_path, out = sys.argv[1], sys.argv[2]
    traffic = json.load(open(traffic_path))
    rows = model(traffic)
    os.makedirs(out, exist_ok=True)
    result = {
        "command": f"research/scripts/scaling-model.py {traffic_path} {out}",
        "assumptions": {
            "batch_per_worker": BATCH_PER_WORKER,
            "gpu_effective_flops": GPU_EFFECTIVE_FLOPS,
            "training_flops_per_mac": 6,
            "links": {k: {"bytes_per_s": b, "latency_s": l} for k, (b, l) in LINKS.items()},
            "allreduce": "ring, 2(W-1)/W of the buffer per worker, 2(W-1) messages, not overlapped with compute",
        },
        "traffic": traffic,
        "rows": rows,
    }
    json.dump(result, open(f"{out}/scaling-model.json", "w"), indent=1)
    lines = [
        "| supernet | all-reduced per step | compute per step | link | workers | all-reduce per step | efficiency | speed-up |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['supernet']} | {r['allreduced_mb_per_step']:.1f} MB | {r['compute_ms_per_step']:.1f} ms "
            f"| {r['link']} | {r['workers']} | {r['comm_ms_per_step']:.1f} ms | {100 * r['efficiency']:.0f}% "
            f"| {r['speedup']:.1f}x |"
        )
    open(f"{out}/scaling-model.md", "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
