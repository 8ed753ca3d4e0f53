"""Graph rewrites of quantized TFLite models (TFLite schema object API) so that
XNNPACK takes the whole graph as one partition (written by hand: no converter
option keeps one op in float inside a quantized model).

- ``float_gelu``: XNNPACK has no integer GELU, so in a full-integer model every
  int8 GELU ran on LiteRT's own kernel and cut the delegated graph around it.
  Each becomes DEQUANTIZE -> float32 GELU -> QUANTIZE between the same int8
  tensors (same scales), all three delegated: the exact GELU computed in float
  instead of LiteRT's int8 lookup table of it.
- ``float_depthwise_weights``: XNNPACK has no dynamic-range (hybrid) depthwise
  convolution; its int8 weights become the float32 values they stand for
  (scale * q), so the layer runs in float with the same weights."""
from __future__ import annotations

from collections import Counter

import numpy as np


def op_names(model) -> list[str]:
    """Builtin op name per operator code of ``model``."""
    from ai_edge_litert.tools import flatbuffer_utils

    return [flatbuffer_utils.opcode_to_name(model, i) for i in range(len(model.operatorCodes))]


def _opcode_index(model, schema, builtin: int, version: int) -> int:
    """Index of the operator code for ``builtin`` (added when absent)."""
    for index, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return index
    code = schema.OperatorCodeT()
    code.builtinCode, code.version = builtin, version
    code.deprecatedBuiltinCode = min(builtin, schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _float_twin(schema, graph, index: int, suffix: str) -> int:
    """A new float32 tensor shaped like tensor ``index``; returns its index."""
    source = graph.tensors[index]
    tensor = schema.TensorT()
    tensor.name = bytes(source.name or b"") + suffix.encode()
    tensor.shape = np.array(source.shape, np.int32)
    tensor.type = schema.TensorType.FLOAT32
    tensor.buffer = 0
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def _operator(schema, opcode: int, inputs: list[int], outputs: list[int], options=None, options_type=0):
    op = schema.OperatorT()
    op.opcodeIndex = opcode
    op.inputs, op.outputs = np.array(inputs, np.int32), np.array(outputs, np.int32)
    op.builtinOptionsType, op.builtinOptions = options_type, options
    return op


def float_gelu(model) -> int:
    """Rewrite every int8 GELU of ``model`` (in place) as DEQUANTIZE -> float32 GELU ->
    QUANTIZE between the original int8 tensors; returns how many were rewritten."""
    from ai_edge_litert import schema_py_generated as schema

    names = op_names(model)
    ops = schema.BuiltinOperator
    dequantize = _opcode_index(model, schema, ops.DEQUANTIZE, 2)
    quantize = _opcode_index(model, schema, ops.QUANTIZE, 2)
    rewritten = 0
    for graph in model.subgraphs:
        operators = []
        for op in graph.operators or []:
            source = graph.tensors[op.inputs[0]]
            if names[op.opcodeIndex] != "GELU" or source.type != schema.TensorType.INT8:
                operators.append(op)
                continue
            x, y = int(op.inputs[0]), int(op.outputs[0])
            x_float, y_float = _float_twin(schema, graph, x, "_float"), _float_twin(schema, graph, y, "_float")
            operators += [_operator(schema, dequantize, [x], [x_float]),
                          _operator(schema, op.opcodeIndex, [x_float], [y_float], op.builtinOptions,
                                    op.builtinOptionsType),
                          _operator(schema, quantize, [y_float], [y])]
            rewritten += 1
        graph.operators = operators
    return rewritten


def float_depthwise_weights(model) -> int:
    """Give every DEPTHWISE_CONV_2D with int8 weights of ``model`` (in place) float32
    weights equal to their dequantized values; returns how many were changed."""
    from ai_edge_litert import schema_py_generated as schema

    names = op_names(model)
    changed = 0
    for graph in model.subgraphs:
        for op in graph.operators or []:
            if names[op.opcodeIndex] != "DEPTHWISE_CONV_2D":
                continue
            weights = graph.tensors[op.inputs[1]]
            if weights.type != schema.TensorType.INT8 or graph.tensors[op.inputs[0]].type != schema.TensorType.FLOAT32:
                continue
            q = weights.quantization
            values = np.frombuffer(bytes(model.buffers[weights.buffer].data), np.int8).reshape(weights.shape)
            shape = [1] * values.ndim
            shape[q.quantizedDimension] = -1
            scale = np.asarray(q.scale, np.float32).reshape(shape)
            zero_point = np.asarray(q.zeroPoint, np.float32).reshape(shape)
            buffer = schema.BufferT()
            buffer.data = np.frombuffer(((values - zero_point) * scale).astype("<f4").tobytes(), np.uint8)
            model.buffers.append(buffer)
            weights.buffer, weights.type, weights.quantization = len(model.buffers) - 1, schema.TensorType.FLOAT32, None
            changed += 1
    return changed


def census(model) -> Counter:
    """Op name -> count over every subgraph of ``model``."""
    names = op_names(model)
    return Counter(names[op.opcodeIndex] for graph in model.subgraphs for op in graph.operators or [])
