"""Graph rewrites of TFLite models (TFLite schema object API): quantized models run
as one XNNPACK partition with a float residual stream, and every model's input
normalization runs on a wide view.
Written by hand: the TFLite converter keeps chosen ops in float only through its
quantization debugger (``denylisted_ops``), a second quantization pass, and has
no such option for dynamic-range weights.

- ``float_islands``: XNNPACK has no integer GELU, so in a full-integer
  model every int8 GELU ran on LiteRT's own kernel and cut the delegated graph
  around it. Each becomes DEQUANTIZE -> float32 GELU -> QUANTIZE between the same
  int8 tensors (same scales), all three delegated: the exact GELU computed in
  float instead of LiteRT's int8 lookup table of it. The residual ADDs (an ADD one
  of whose inputs has another user: the skip connection) after the first stage go
  to float the same way: the residual stream then runs from block to block in
  float, as in the peers' PT2E int8; each branch reads an int8 copy, but the sum
  is not rounded to int8 after every block. The gate products (each MUL by a
  LOGISTIC's output: CASAtt's spatial and channel gates) run in float too: XNNPACK's
  float multiply is faster than its int8 one on x86 without AVX2. The sigmoid itself
  stays int8, a lookup table that gives the same bits on every CPU: with it in float
  the int8 model's outputs differed between ARM64 and x86, with it in int8 they are
  bit-identical. Each choice was kept because it measured better (``benchmarks.tflite_ab``,
  ``benchmarks.tflite_ablation``, parity photos, digits, ``export.verify_arm``): figures
  in docs/tflite.md.
- ``float_depthwise_weights``: XNNPACK has no dynamic-range (hybrid) depthwise
  convolution; its int8 weights become the float32 values they stand for
  (scale * q), so the layer runs in float with the same weights.
- ``wide_input_normalization`` (every precision): the input normalization, a 1x1
  depthwise conv over 3 channels, runs on a reshaped view of the same memory
  ([1, H, 1, W*3]) with its per-channel weights and bias tiled W times: the same
  multiply-add per element, but XNNPACK's depthwise kernel then works along a row of
  W*3 channels instead of pixel by pixel over 3; outputs are bit-identical (figures in
  docs/tflite.md)."""

from __future__ import annotations

from collections import Counter

import numpy as np


def op_names(model) -> list[str]:
    """Builtin op name per operator code of ``model``."""
    from ai_edge_litert.tools import flatbuffer_utils

    return [flatbuffer_utils.opcode_to_name(model, i) for i in range(len(model.operatorCodes))]


def opcode_index(model, schema, builtin: int, version: int) -> int:
    """Index of the operator code for ``builtin`` (added when absent)."""
    for index, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return index
    code = schema.OperatorCodeT()
    code.builtinCode, code.version = builtin, version
    code.deprecatedBuiltinCode = min(builtin, schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def new_tensor_like(schema, graph, index: int, suffix: str, shape=None, float32: bool = False) -> int:
    """A new activation tensor like tensor ``index`` (its shape unless ``shape`` is given;
    its type and quantization, or float32 without quantization); returns its index."""
    source = graph.tensors[index]
    tensor = schema.TensorT()
    name = source.name or b""
    tensor.name = (name.encode() if isinstance(name, str) else bytes(name)) + suffix.encode()
    tensor.shape = np.array(source.shape if shape is None else shape, np.int32)
    if float32:
        tensor.type, tensor.quantization = schema.TensorType.FLOAT32, None
    else:
        tensor.type, tensor.quantization = source.type, source.quantization
    tensor.buffer = 0
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def new_operator(schema, opcode: int, inputs: list[int], outputs: list[int], options=None, options_type=0):
    op = schema.OperatorT()
    op.opcodeIndex = opcode
    op.inputs, op.outputs = np.array(inputs, np.int32), np.array(outputs, np.int32)
    op.builtinOptionsType, op.builtinOptions = options_type, options
    return op


def float_islands(model, also: frozenset[int] = frozenset()) -> int:
    """Run every int8 GELU of ``model``, every gate product and every residual ADD below
    the highest resolution in float32 (in place). At the highest resolution (the first
    stage) the stream holds most of the elements a DEQUANTIZE/QUANTIZE pair would convert
    and the rounding error is still small, so those ADDs stay int8 (README.md at commit bc6431b: 0.5 % of the
    latency instead of 3 %, quality as good). ``also``: the ``id`` of more operators to run in float (the int8
    fallback's; give their weights float values first, ``float_weights``)."""
    names = op_names(model)
    pixels = {id(op): _pixels(graph, op) for graph in model.subgraphs for op in residual_adds(names, graph)}
    largest = max(pixels.values(), default=0)
    floated = {i for i, n in pixels.items() if n < largest} | set(also)
    floated |= {id(op) for graph in model.subgraphs for op in gate_products(names, graph)}
    return in_float(model, lambda names, graph, op: names[op.opcodeIndex] == "GELU" or id(op) in floated)


def gate_products(names: list[str], graph) -> list:
    """Each MUL of ``graph`` reading a LOGISTIC's output (``x * sigmoid(...)``)."""
    operators = graph.operators or []
    gates = {int(op.outputs[0]) for op in operators if names[op.opcodeIndex] == "LOGISTIC"}
    return [op for op in operators if names[op.opcodeIndex] == "MUL" and any(int(t) in gates for t in op.inputs)]


def _pixels(graph, op) -> int:
    """Height x width of the NHWC output of ``op``."""
    return int(np.prod(graph.tensors[int(op.outputs[0])].shape[1:-1]))


def residual_adds(names: list[str], graph) -> list:
    """The ADDs of ``graph`` one of whose inputs is also read by another operator (a skip connection)."""
    operators = graph.operators or []
    readers = Counter(int(t) for op in operators for t in op.inputs)
    return [op for op in operators if names[op.opcodeIndex] == "ADD" and any(readers[int(t)] > 1 for t in op.inputs)]


def in_float(model, chosen) -> int:
    """Run the int8 operators for which ``chosen(names, graph, op)`` holds in float32
    (in place): each int8 activation entering them gets one DEQUANTIZE, each result
    used by an integer operator or as a graph output one QUANTIZE back into the
    original int8 tensor (same scale); chains of chosen operators stay in float.
    Operators with quantized constants (int8 weights, int32 biases) are never chosen;
    their other constants are read as they are. Returns how many."""
    from ai_edge_litert import schema_py_generated as schema

    names = op_names(model)
    dequantize = opcode_index(model, schema, schema.BuiltinOperator.DEQUANTIZE, 2)
    quantize = opcode_index(model, schema, schema.BuiltinOperator.QUANTIZE, 2)
    count = 0
    for graph in model.subgraphs:
        operators = graph.operators or []
        picked = {
            i
            for i, op in enumerate(operators)
            if _int8_activations_and_plain_constants(model, schema, graph, op) and chosen(names, graph, op)
        }
        needed_as_int8 = {int(t) for t in graph.outputs} | {
            int(t) for i, op in enumerate(operators) if i not in picked for t in op.inputs
        }
        twin, rewritten = {}, []
        for i, op in enumerate(operators):
            if i not in picked:
                rewritten.append(op)
                continue
            for t in (int(t) for t in op.inputs if t >= 0 and not _constant_tensor(model, graph, t)):
                if t not in twin:
                    twin[t] = new_tensor_like(schema, graph, t, "_float", float32=True)
                    rewritten.append(new_operator(schema, dequantize, [t], [twin[t]]))
            outputs = [int(t) for t in op.outputs]
            for t in outputs:
                twin[t] = new_tensor_like(schema, graph, t, "_float", float32=True)
            op.inputs = np.array([twin.get(int(t), int(t)) for t in op.inputs], np.int32)  # constants stay
            op.outputs = np.array([twin[t] for t in outputs], np.int32)
            rewritten.append(op)
            rewritten += [new_operator(schema, quantize, [twin[t]], [t]) for t in outputs if t in needed_as_int8]
            count += 1
        graph.operators = rewritten
    return count


def _constant_tensor(model, graph, index: int) -> bool:
    return model.buffers[graph.tensors[index].buffer].data is not None


def _quantized(tensor) -> bool:
    q = tensor.quantization
    return q is not None and q.scale is not None and len(q.scale) > 0


def _int8_activations_and_plain_constants(model, schema, graph, op) -> bool:
    """Every activation of ``op`` is int8 and none of its constants is quantized."""
    for t in (int(t) for t in [*op.inputs, *op.outputs] if t >= 0):
        tensor = graph.tensors[t]
        if _constant_tensor(model, graph, t):
            if _quantized(tensor):
                return False
        elif tensor.type != schema.TensorType.INT8:
            return False
    return True


def float_weights(model, graph, op) -> int:
    """Give ``op``'s quantized constants (int8 weights, int32 bias) float32 values equal
    to what they stand for (in place), so that ``in_float`` may run it in float with the
    same weights; returns how many constants were changed."""
    from ai_edge_litert import schema_py_generated as schema

    changed = 0
    for t in (int(t) for t in op.inputs if t >= 0 and _constant_tensor(model, graph, int(t))):
        if _quantized(graph.tensors[t]):
            _dequantize_constant(model, schema, graph.tensors[t])
            changed += 1
    return changed


def _dequantize_constant(model, schema, tensor) -> None:
    """A quantized constant tensor becomes float32 holding its real values, in a new buffer."""
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(dequantized(model, tensor).astype("<f4").tobytes(), np.uint8)
    model.buffers.append(buffer)
    tensor.buffer, tensor.type, tensor.quantization = len(model.buffers) - 1, schema.TensorType.FLOAT32, None


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
            _dequantize_constant(model, schema, weights)
            changed += 1
    return changed


def wide_input_normalization(model) -> int:
    """Run each 1x1 DEPTHWISE_CONV_2D over a 3-channel NHWC tensor on a [1, H, 1, W*3]
    view (RESHAPE -> wider depthwise -> RESHAPE, in place); returns how many. Its
    weights and bias may be constants or (float16) DEQUANTIZE outputs of constants."""
    from ai_edge_litert import schema_py_generated as schema

    names = op_names(model)
    reshape = opcode_index(model, schema, schema.BuiltinOperator.RESHAPE, 1)
    changed = 0
    for graph in model.subgraphs:
        producer = {int(t): op for op in graph.operators or [] for t in op.outputs}
        rewritten = []
        for op in graph.operators or []:
            if not _three_channel_scale_shift(names, graph, op):
                rewritten.append(op)
                continue
            x, y = int(op.inputs[0]), int(op.outputs[0])
            shape = [int(d) for d in graph.tensors[x].shape]
            wide = [1, shape[1], 1, shape[2] * 3]
            tiled = [
                _tiled_constant(model, schema, graph, producer, int(t), shape[2]) if t >= 0 else -1
                for t in op.inputs[1:]
            ]  # -1: no bias
            x_wide, y_wide = (new_tensor_like(schema, graph, t, "_wide", shape=wide) for t in (x, y))
            rewritten.append(_reshape(model, schema, graph, reshape, x, x_wide))
            op.inputs, op.outputs = np.array([x_wide, *tiled], np.int32), np.array([y_wide], np.int32)
            op.builtinOptions.depthMultiplier = 1
            rewritten += [op, _reshape(model, schema, graph, reshape, y_wide, y)]
            changed += 1
        graph.operators = rewritten
    return changed


def _three_channel_scale_shift(names: list[str], graph, op) -> bool:
    """``op`` is a stride-1 1x1 DEPTHWISE_CONV_2D (multiplier 1) on a batch-1 NHWC tensor of 3 channels."""
    if names[op.opcodeIndex] != "DEPTHWISE_CONV_2D":
        return False
    options = op.builtinOptions
    shape = [int(d) for d in graph.tensors[int(op.inputs[0])].shape]
    return (
        len(shape) == 4
        and shape[0] == 1
        and shape[3] == 3
        and options.strideH == options.strideW == 1
        and [int(d) for d in graph.tensors[int(op.inputs[1])].shape] == [1, 1, 1, 3]
    )


def _constant(model, schema, graph, name: bytes, values: np.ndarray, tensor_type: int, quantization=None) -> int:
    """A new constant tensor holding ``values``."""
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(np.ascontiguousarray(values).tobytes(), np.uint8)
    model.buffers.append(buffer)
    tensor = schema.TensorT()
    tensor.name, tensor.shape, tensor.type = name, np.array(values.shape, np.int32), tensor_type
    tensor.buffer, tensor.quantization = len(model.buffers) - 1, quantization
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


_NUMPY_TYPE = {0: np.float32, 1: np.float16, 2: np.int32, 9: np.int8}  # TensorType -> dtype


def constant_values(model, tensor) -> np.ndarray:
    """A constant tensor's values in its own type and shape."""
    return np.frombuffer(bytes(model.buffers[tensor.buffer].data), _NUMPY_TYPE[tensor.type]).reshape(tensor.shape)


def dequantized(model, tensor) -> np.ndarray:
    """The real values (float64) a quantized constant stands for, per-channel scale and zero point included."""
    q = tensor.quantization
    shape = [1] * len(tensor.shape)
    shape[q.quantizedDimension] = -1
    zero_point = np.asarray(q.zeroPoint, np.float64).reshape(shape)
    return (constant_values(model, tensor).astype(np.float64) - zero_point) * np.asarray(q.scale, np.float64).reshape(
        shape
    )


def _tiled_constant(model, schema, graph, producer: dict, index: int, reps: int) -> int:
    """Constant tensor ``index`` repeated ``reps`` times along its last axis (per-channel
    quantization included) as a new tensor. A DEQUANTIZE output (float16 weights) is
    widened where it is: its DEQUANTIZE reads the tiled constant instead."""
    if index in producer:
        dequantize = producer[index]
        dequantize.inputs = np.array(
            [_tiled_constant(model, schema, graph, producer, int(dequantize.inputs[0]), reps)], np.int32
        )
        graph.tensors[index].shape = np.array(graph.tensors[int(dequantize.inputs[0])].shape, np.int32)
        return index
    source = graph.tensors[index]
    values = constant_values(model, source)
    quantization = source.quantization
    if quantization is not None and quantization.scale is not None and len(quantization.scale) > 1:
        tiled = schema.QuantizationParametersT()
        tiled.scale = np.tile(np.asarray(quantization.scale, np.float32), reps)
        tiled.zeroPoint = np.tile(np.asarray(quantization.zeroPoint, np.int64), reps)
        tiled.quantizedDimension = quantization.quantizedDimension
        quantization = tiled
    repeats = [1] * (values.ndim - 1) + [reps]
    return _constant(
        model, schema, graph, bytes(source.name or b"") + b"_tiled", np.tile(values, repeats), source.type, quantization
    )


def _reshape(model, schema, graph, opcode: int, source: int, target: int):
    """RESHAPE ``source`` into ``target``'s shape (shape given as options and as a tensor)."""
    shape = np.array(graph.tensors[target].shape, np.int32)
    options = schema.ReshapeOptionsT()
    options.newShape = [int(d) for d in shape]
    new_shape = _constant(
        model, schema, graph, bytes(graph.tensors[target].name or b"") + b"_shape", shape, schema.TensorType.INT32
    )
    return new_operator(schema, opcode, [source, new_shape], [target], options, schema.BuiltinOptions.ReshapeOptions)


def census(model) -> Counter:
    """Op name -> count over every subgraph of ``model``."""
    names = op_names(model)
    return Counter(names[op.opcodeIndex] for graph in model.subgraphs for op in graph.operators or [])
