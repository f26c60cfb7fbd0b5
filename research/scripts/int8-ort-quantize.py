"""ONNX Runtime's own static quantiser, the baseline of research/scripts/int8-accuracy.sh (Python is a
cross-check here, never in the product path).

  int8-ort-quantize.py FP32.onnx CALIBRATION.f32 OUT.onnx [--reduce-range]
      quantize_static: QDQ, per-channel int8 weights, int8 activations, MinMax, calibrated on the raw
      little-endian f32 images `hsconas export onnx --save-calibration` wrote (N x 3 x S x S); the FP32
      model's metadata is kept. --reduce-range: its 7-bit weights (for x86 CPUs without VNNI).
  int8-ort-quantize.py --kernels DIR
      prints, as JSON, the operators ONNX Runtime (CPU, all optimisations) runs for each INT8 model in DIR.
"""
import json
import os
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static


class Images(CalibrationDataReader):
    def __init__(self, images):
        self.it = iter([{"input": x[None]} for x in images])

    def get_next(self):
        return next(self.it, None)


def quantize(fp32, calibration, out, reduce_range=False):
    model = onnx.load(fp32)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    size = dims[2]
    images = np.fromfile(calibration, dtype="<f4").reshape(-1, 3, size, size)
    quantize_static(fp32, out, Images(images), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    reduce_range=reduce_range)
    q = onnx.load(out)
    del q.metadata_props[:]
    q.metadata_props.extend(model.metadata_props)
    q.metadata_props.add(key="precision", value="int8 (onnxruntime quantize_static)")
    q.metadata_props.add(key="int8_weight_range", value="reduced" if reduce_range else "full")
    onnx.save(q, out)


def kernels(path):
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    with tempfile.TemporaryDirectory() as tmp:
        options.optimized_model_filepath = os.path.join(tmp, "optimised.onnx")
        ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        counts = {}
        for node in onnx.load(options.optimized_model_filepath).graph.node:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


if __name__ == "__main__":
    if sys.argv[1] == "--kernels":
        d = sys.argv[2]
        models = ["ours-minmax", "ours-pct", "ort-minmax", "ours-rr", "ort-rr"]
        print(json.dumps({m: kernels(os.path.join(d, m + ".onnx")) for m in models
                          if os.path.exists(os.path.join(d, m + ".onnx"))}, indent=1))
    else:
        quantize(*sys.argv[1:4], reduce_range="--reduce-range" in sys.argv[4:])
