"""Bias correction of the full-integer int8 model: each convolution's (and the
classifier's) int32 bias takes back the mean error that rounding its weights to int8
adds to its output.

For ``y = W x + b`` the int8 weights ``W_q`` (one scale per output channel) make ``y``
off by ``(W_q - W) x``; over the calibration images that error has the mean
``(W_q - W) E[x]`` per output channel, a constant the bias absorbs (Nagel et al.,
"Data-Free Quantization", 2019: bias correction, here with empirical input means).
``E[x]`` is taken per kernel tap over the positions the convolution reads, zero
padding and stride included, from the calibrated float model run on the calibration
images. Only the weight error is corrected: the full empirical correction (the
quantized model's mean output against the float model's, layer by layer) also fits
the activation rounding of the calibration images, and on the digits checkpoint
calibrated with photos it made every measure worse (README.md at commit bc6431b). Written by hand: the
TFLite converter has no bias correction; torch.ao's and AIMET's work on their own
model formats."""

from __future__ import annotations

import numpy as np

from ...errors import ExportError

CORRECTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
INT32 = np.iinfo(np.int32)


def correct_biases(quantized: bytes, calibrated: bytes, calibration: np.ndarray) -> tuple[bytes, int]:
    """``quantized`` with every corrected op's int32 bias set to ``b - (W_q - W) E[x]``
    (``b`` the float bias, so its own rounding is not added to the correction's);
    ``calibrated`` is the float model it was quantized from (same ops, same order),
    ``calibration`` the NHWC batch exactly as the model's input takes it. Returns the
    model and how many biases were corrected."""
    from ai_edge_litert.tools import flatbuffer_utils

    from .graph import constant_values, dequantized, op_names

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(quantized))
    float_model = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
    graph, float_graph = model.subgraphs[0], float_model.subgraphs[0]
    names, float_names = op_names(model), op_names(float_model)
    ops, float_ops = _weighted_ops(graph, names), _weighted_ops(float_graph, float_names)
    pairs = list(zip(ops, float_ops))
    if len(ops) != len(float_ops) or any(
        names[op.opcodeIndex] != float_names[f.opcodeIndex]
        or list(graph.tensors[int(op.inputs[1])].shape) != list(float_graph.tensors[int(f.inputs[1])].shape)
        for op, f in pairs
    ):
        raise ExportError("bias correction: the int8 model's weighted ops do not match its float model's")
    means = _input_tap_means(calibrated, float_graph, [(names[op.opcodeIndex], f) for op, f in pairs], calibration)
    for (op, float_op), tap_means in zip(pairs, means):
        error = _weight_error(
            names[op.opcodeIndex],
            dequantized(model, graph.tensors[int(op.inputs[1])]),
            constant_values(float_model, float_graph.tensors[int(float_op.inputs[1])]),
            tap_means,
        )
        bias = constant_values(float_model, float_graph.tensors[int(float_op.inputs[2])]).astype(np.float64)
        _set_bias(model, graph, int(op.inputs[2]), bias - error)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), len(pairs)


def _weighted_ops(graph, names: list[str]) -> list:
    """The corrected ops with a bias, in graph order (the quantizer keeps the order but
    renames the tensor it hands to the graph output). An op without a bias is left
    alone; CAS-ViT has none (every conv carries its folded BatchNorm or its own bias)."""
    return [
        op for op in graph.operators if names[op.opcodeIndex] in CORRECTED and len(op.inputs) > 2 and op.inputs[2] >= 0
    ]


def _input_tap_means(calibrated: bytes, float_graph, ops: list, calibration: np.ndarray) -> list[np.ndarray]:
    """Per op: the mean over the calibration images of what each kernel tap reads,
    ``(kh, kw, C)`` for a convolution, ``(C,)`` for a fully connected layer."""
    from .ranges import runs_keeping_tensors

    sums = [0.0] * len(ops)
    for interpreter in runs_keeping_tensors(calibrated, calibration):
        for k, (kind, op) in enumerate(ops):
            x = np.asarray(interpreter.get_tensor(int(op.inputs[0])), np.float64)
            sums[k] = sums[k] + (
                x.reshape(-1, x.shape[-1]).mean(0)
                if kind == "FULLY_CONNECTED"
                else _tap_means(x[0], float_graph.tensors[int(op.inputs[1])].shape, op.builtinOptions)
            )
    return [s / len(calibration) for s in sums]


def _tap_means(x: np.ndarray, weight_shape, options) -> np.ndarray:
    """``(kh, kw, C)``: for each tap of a TFLite convolution over the HWC input ``x``,
    the mean of the input values it reads over all output positions (zero padding
    included, as TFLite's SAME padding places it)."""
    kh, kw = int(weight_shape[1]), int(weight_shape[2])
    if (getattr(options, "dilationHFactor", 1), getattr(options, "dilationWFactor", 1)) != (1, 1):
        raise ExportError("bias correction: dilated convolutions are not supported")
    sh, sw = options.strideH, options.strideW
    padded, (oh, ow) = x, ((x.shape[0] - kh) // sh + 1, (x.shape[1] - kw) // sw + 1)
    if options.padding == 0:  # SAME
        oh, ow = -(-x.shape[0] // sh), -(-x.shape[1] // sw)
        th, tw = max((oh - 1) * sh + kh - x.shape[0], 0), max((ow - 1) * sw + kw - x.shape[1], 0)
        padded = np.pad(x, ((th // 2, th - th // 2), (tw // 2, tw - tw // 2), (0, 0)))
    return np.stack(
        [
            np.stack(
                [padded[i : i + (oh - 1) * sh + 1 : sh, j : j + (ow - 1) * sw + 1 : sw].mean((0, 1)) for j in range(kw)]
            )
            for i in range(kh)
        ]
    )


def _weight_error(kind: str, quantized: np.ndarray, weights: np.ndarray, tap_means: np.ndarray) -> np.ndarray:
    """Per output channel: the mean error ``(W_q - W) E[x]`` of the op's output."""
    delta = quantized - weights.astype(np.float64)
    if kind == "FULLY_CONNECTED":  # weights (O, I)
        return delta @ tap_means
    if kind == "CONV_2D":  # weights (O, kh, kw, I)
        return np.einsum("oijc,ijc->o", delta, tap_means)
    multiplier = delta.shape[-1] // tap_means.shape[-1]  # depthwise: weights (1, kh, kw, C * multiplier)
    return np.einsum("ijc,ijc->c", delta[0], np.repeat(tap_means, multiplier, axis=-1))


def _set_bias(model, graph, index: int, real: np.ndarray) -> None:
    """Set an int32 bias to the steps nearest to ``real`` (per output channel), into a
    new buffer when another tensor shares its buffer."""
    from ai_edge_litert import schema_py_generated as schema

    tensor = graph.tensors[index]
    steps = np.clip(np.round(real / np.asarray(tensor.quantization.scale, np.float64)), INT32.min, INT32.max)
    data = np.frombuffer(steps.astype(np.int32).tobytes(), np.uint8)
    if sum(t.buffer == tensor.buffer for g in model.subgraphs for t in g.tensors) > 1:
        model.buffers.append(schema.BufferT())
        tensor.buffer = len(model.buffers) - 1
    model.buffers[tensor.buffer].data = data
