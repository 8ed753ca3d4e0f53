"""The TFLite graph for per-layer localization (``export.localize``): its operators
(QUANTIZE and DEQUANTIZE seen through), and any of its tensors read from LiteRT with
``experimental_preserve_all_tensors``, dequantized and turned from NHWC to NCHW.
XNNPACK keeps no intermediate tensors, so these runs use LiteRT's builtin kernels. The
model read is the one the checks run: without its final SOFTMAX (``probabilities``)."""

from __future__ import annotations

import numpy as np

from ...litert_io import dequantize
from ...spec import Artifact
from ..base import GraphOp, Intermediates
from .graph import op_names
from .probabilities import logits_model
from .ranges import runs_keeping_tensors

ALIASES = ("QUANTIZE", "DEQUANTIZE")


def tensor_labels(graph) -> list[str]:
    """A unique label per tensor of ``graph``: its name, with ``#index`` where names repeat."""
    names = [(t.name or b"").decode() for t in graph.tensors]
    seen = {n: names.count(n) for n in names}
    return [n if seen[n] == 1 else f"{n}#{i}" for i, n in enumerate(names)]


def graph_ops(model) -> list[GraphOp]:
    """The first subgraph's operators as localization sees them (activation inputs only)."""
    graph, names = model.subgraphs[0], op_names(model)
    labels = tensor_labels(graph)

    def activation(t: int) -> bool:
        return t >= 0 and model.buffers[graph.tensors[t].buffer].data is None

    def kind(name: str) -> str:
        return "add" if name == "ADD" else "alias" if name in ALIASES else "op"

    return [
        GraphOp(
            kind(names[op.opcodeIndex]),
            tuple(labels[t] for t in op.inputs if activation(t)),
            tuple(labels[t] for t in op.outputs),
        )
        for op in graph.operators or []
    ]


def intermediates(artifact: Artifact) -> Intermediates:
    from importlib.metadata import version

    from ai_edge_litert.tools import flatbuffer_utils

    body = logits_model(artifact.path)  # its output: the logits the final SOFTMAX reads
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(body))
    graph = model.subgraphs[0]
    labels = tensor_labels(graph)

    def fetch(names: list[str], x: np.ndarray) -> list[np.ndarray]:
        indices = [labels.index(name) for name in names]
        samples, details = [], None
        for interpreter in runs_keeping_tensors(body, np.asarray(x, np.float32).transpose(0, 2, 3, 1)):
            details = details or {d["index"]: d for d in interpreter.get_tensor_details()}
            samples.append([dequantize(interpreter.get_tensor(i), details[i]) for i in indices])
        values = [np.concatenate(parts) for parts in zip(*samples)]
        return [v.transpose(0, 3, 1, 2) if v.ndim == 4 else v for v in values]

    return Intermediates(
        graph_ops(model),
        labels[int(graph.outputs[0])],
        fetch,
        f"LiteRT {version('ai-edge-litert')} builtin kernels with every tensor kept (XNNPACK keeps none), NHWC",
    )
