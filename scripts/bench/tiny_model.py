"""Writes a tiny ONNX model (one Add on a [1, 8] tensor) to measure the fixed per-call overhead."""
import sys

import onnx
from onnx import TensorProto, helper

x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 8])
y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 8])
one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
graph = helper.make_graph([helper.make_node("Add", ["input", "one"], ["output"])], "tiny", [x], [y], [one])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
onnx.checker.check_model(model, full_check=True)
onnx.save(model, sys.argv[1])
