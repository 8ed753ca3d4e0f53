"""The ONNX graph for per-layer localization (``export.localize``): its operators, and
any of its tensors read by running the model in ONNX Runtime with them added as graph
outputs (their types from ONNX shape inference)."""

from __future__ import annotations

import numpy as np

from ...spec import Artifact
from ..base import GraphOp, Intermediates
from .runtime import run_outputs, session

ALIASES = ("Identity", "Cast")


def intermediates(artifact: Artifact) -> Intermediates:
    import onnx
    import onnxruntime

    model = onnx.load(str(artifact.path))
    graph = model.graph
    constants = {i.name for i in graph.initializer} | {
        o for n in graph.node if n.op_type == "Constant" for o in n.output
    }

    def kind(op_type: str) -> str:
        return "add" if op_type == "Add" else "alias" if op_type in ALIASES else "op"

    ops = [
        GraphOp(kind(n.op_type), tuple(t for t in n.input if t and t not in constants), tuple(n.output))
        for n in graph.node
    ]

    def fetch(names: list[str], x: np.ndarray) -> list[np.ndarray]:
        typed = {v.name: v for v in onnx.shape_inference.infer_shapes(model).graph.value_info}
        extended = onnx.ModelProto()
        extended.CopyFrom(model)
        declared = {o.name for o in graph.output}
        extended.graph.output.extend(typed[name] for name in dict.fromkeys(names) if name not in declared)
        values = run_outputs(session(extended.SerializeToString()), x, list(names))
        return [np.asarray(v, np.float32) for v in values]

    return Intermediates(ops, graph.output[0].name, fetch, f"ONNX Runtime {onnxruntime.__version__} (CPU)")
