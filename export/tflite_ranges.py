"""Activation ranges for full-integer int8 chosen by quantization error instead of
min/max over the calibration images.

The TFLite calibrator records each activation's min/max, so a few extreme values
set the step for everything else. Here each range is shrunk by the factor (among
SHRINK) that gives the lowest mean squared error of int8 fake quantization over
the calibration activations, as PyTorch's HistogramObserver does with a
histogram; the input and the logits keep min/max. Written by hand: the TFLite converter has no other calibration
statistic. The factors are applied to the calibrated float model's min/max
(``_experimental_calibrate_only``), which the converter's own quantizer
(``mlir_quantize``) then turns into the int8 model."""
from __future__ import annotations

import numpy as np

SHRINK = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4)
SAMPLES_PER_IMAGE = 100_000  # activation values per tensor and image that enter the error


def fake_quantize(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """int8 asymmetric quantize-dequantize of ``values`` on the range [low, high] (widened to hold 0)."""
    low, high = min(low, 0.0), max(high, 0.0)
    scale = (high - low) / 255.0 or 1e-12
    zero_point = np.round(-128.0 - low / scale)
    return (np.clip(np.round(values / scale + zero_point), -128, 127) - zero_point) * scale


def ranged_tensors(model) -> list[int]:
    """Indices of the calibrated model's tensors that carry a per-tensor min/max, except
    the input (its range is the pixel convention) and the logits (clipping the largest
    logits would change the top-1), followed back through the RESHAPE before them."""
    from ai_edge_litert.tools import flatbuffer_utils

    graph = model.subgraphs[0]
    kept = {int(t) for t in [*graph.inputs, *graph.outputs]}
    for op in reversed(graph.operators or []):
        if flatbuffer_utils.opcode_to_name(model, op.opcodeIndex) in ("RESHAPE", "SQUEEZE") \
                and int(op.outputs[0]) in kept:
            kept.add(int(op.inputs[0]))
    return [i for i, t in enumerate(graph.tensors) if i not in kept
            and t.quantization is not None and t.quantization.min is not None and len(t.quantization.min) == 1]


def best_shrink(calibrated: bytes, calibration: np.ndarray) -> dict[int, float]:
    """Tensor index -> the SHRINK factor of its range with the lowest fake-quantization
    error, summed over the calibration images (run through the calibrated float model)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
    tensors = model.subgraphs[0].tensors
    ranges = {i: (float(tensors[i].quantization.min[0]), float(tensors[i].quantization.max[0]))
              for i in ranged_tensors(model)}
    interpreter = Interpreter(model_content=calibrated, experimental_preserve_all_tensors=True,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    rng = np.random.default_rng(0)
    errors = {i: np.zeros(len(SHRINK)) for i in ranges}
    for sample in calibration:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], sample[None])
        interpreter.invoke()
        for i, (low, high) in ranges.items():
            values = interpreter.get_tensor(i).ravel().astype(np.float64)
            if values.size > SAMPLES_PER_IMAGE:
                values = rng.choice(values, SAMPLES_PER_IMAGE, replace=False)
            errors[i] += shrink_errors(values, low, high)
    return {i: SHRINK[int(np.argmin(e))] for i, e in errors.items()}


def shrink_errors(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Summed squared fake-quantization error of ``values`` on [low, high] shrunk by each SHRINK factor."""
    return np.array([np.square(fake_quantize(values, low * a, high * a) - values).sum() for a in SHRINK])


def with_shrunk_ranges(calibrated: bytes, shrink: dict[int, float]) -> bytes:
    """The calibrated model with each listed tensor's min/max multiplied by its factor."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
    tensors = model.subgraphs[0].tensors
    for i, factor in shrink.items():
        q = tensors[i].quantization
        q.min, q.max = np.asarray(q.min, np.float32) * factor, np.asarray(q.max, np.float32) * factor
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
