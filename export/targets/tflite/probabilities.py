"""The classifier's output: every shipped ``.tflite`` ends in one float32 SOFTMAX, so
its output (``probabilities``) holds what MediaPipe's ImageClassifier, the Task
Library and ML Kit report as scores; the tensor the SOFTMAX reads keeps the name
``logits``.

Parity and accuracy are measured on logits: :func:`logits_model` is the shipped
model with that one final SOFTMAX taken out (every other op, weight and kernel the
same), so its output is the shipped model's own logits tensor. Written by hand: the
TFLite converter has no option for either edit. Imports only NumPy (LiteRT's schema
on use), for the benchmarks and the ARM64 check."""

from __future__ import annotations

from pathlib import Path

import numpy as np

LOGITS, PROBABILITIES = "logits", "probabilities"


def add_softmax(model) -> int:
    """Append a float32 SOFTMAX (beta 1) reading the single graph output; its output
    becomes the graph output, named ``probabilities``. Returns its tensor index."""
    from ai_edge_litert import schema_py_generated as schema

    from .graph import new_operator, new_tensor_like, opcode_index

    graph = model.subgraphs[0]
    (logits,) = (int(i) for i in graph.outputs)
    if graph.tensors[logits].type != schema.TensorType.FLOAT32:
        raise ValueError("the model's output is not float32: no float SOFTMAX can follow it")
    probabilities = new_tensor_like(schema, graph, logits, "", float32=True)
    graph.tensors[probabilities].name = PROBABILITIES.encode()
    options = schema.SoftmaxOptionsT()
    options.beta = 1.0
    opcode = opcode_index(model, schema, schema.BuiltinOperator.SOFTMAX, 1)
    softmax = new_operator(schema, opcode, [logits], [probabilities], options, schema.BuiltinOptions.SoftmaxOptions)
    graph.operators.append(softmax)
    graph.outputs = np.array([probabilities], np.int32)
    return probabilities


def final_softmax(model):
    """The SOFTMAX op writing the single graph output, or None."""
    from ai_edge_litert.tools import flatbuffer_utils

    graph = model.subgraphs[0]
    outputs = [int(i) for i in graph.outputs]
    for op in graph.operators or []:
        if [int(i) for i in op.outputs] == outputs:
            return op if flatbuffer_utils.opcode_to_name(model, op.opcodeIndex) == "SOFTMAX" else None
    return None


def logits_model(path: str | Path) -> bytes:
    """The ``.tflite`` at ``path`` without its final SOFTMAX: the same graph, whose output
    (and signature output ``logits``) is the tensor that SOFTMAX read. A model without a
    final SOFTMAX is returned as it is (its output is already logits)."""
    from ai_edge_litert.tools import flatbuffer_utils

    data = Path(path).read_bytes()
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(data))
    softmax = final_softmax(model)
    if softmax is None:
        return data
    graph = model.subgraphs[0]
    logits = int(softmax.inputs[0])
    graph.operators = [op for op in graph.operators if op is not softmax]
    graph.outputs = np.array([logits], np.int32)
    for signature in model.signatureDefs or []:
        for output in signature.outputs or []:
            output.name, output.tensorIndex = LOGITS, logits
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
