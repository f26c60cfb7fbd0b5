"""Test oracle: validate ONNX models with onnx.checker (full check) and run them in ONNX Runtime.

Used by the Rust test suite only (never by the product). Reads a JSON manifest:
    {"cases": [{"model": "a.onnx", "input": "a.in.f32", "shape": [1, 3, 32, 32], "output": "a.out.f32"}]}
For each case: checks the model, feeds the raw little-endian f32 input of the given shape to the first graph
input, writes the first output as raw f32 and its shape to "<output>.json". Exits non-zero with the model's
name on the first failure.
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def main(manifest_path):
    with open(manifest_path) as f:
        manifest = json.load(f)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    for case in manifest["cases"]:
        model = onnx.load(case["model"])
        try:
            onnx.checker.check_model(model, full_check=True)
        except Exception as e:  # noqa: BLE001 - report any checker failure with the file name
            sys.exit(f"onnx.checker rejected {case['model']}: {e}")
        session = ort.InferenceSession(case["model"], options, providers=["CPUExecutionProvider"])
        x = np.fromfile(case["input"], dtype="<f4").reshape(case["shape"])
        (y,) = session.run(None, {session.get_inputs()[0].name: x})[:1]
        y.astype("<f4").tofile(case["output"])
        with open(case["output"] + ".json", "w") as f:
            json.dump({"shape": list(y.shape)}, f)


if __name__ == "__main__":
    main(sys.argv[1])
