"""Activation ranges for full-integer int8 from PyTorch's ``HistogramObserver``
instead of the TFLite calibrator's min/max.

The TFLite calibrator records each activation's min/max over the calibration
images, so a few extreme values set the step for everything else. Here each
tensor's values from every calibration image go through a ``HistogramObserver``
(torch.ao, the observer the peers' PT2E int8 uses), whose range search trades
clipping against rounding on the histogram; the input and the logits keep
min/max. The ranges are written into the calibrated float model
(``_experimental_calibrate_only``), which the converter's own quantizer
(``mlir_quantize``) then turns into the int8 model. Written by hand: the TFLite
converter has no other calibration statistic."""

from __future__ import annotations

import numpy as np

from ...litert_io import quantize

INT8 = (-128, 127)


def ranged_tensors(model) -> list[int]:
    """Indices of the calibrated model's tensors that carry a per-tensor min/max, except
    the input (its range is the pixel convention) and the logits (clipping the largest
    logits would change the top-1), followed back through the RESHAPE before them."""
    from ai_edge_litert.tools import flatbuffer_utils

    graph = model.subgraphs[0]
    kept = {int(t) for t in [*graph.inputs, *graph.outputs]}
    for op in reversed(graph.operators or []):
        if (
            flatbuffer_utils.opcode_to_name(model, op.opcodeIndex) in ("RESHAPE", "SQUEEZE")
            and int(op.outputs[0]) in kept
        ):
            kept.add(int(op.inputs[0]))
    return [
        i
        for i, t in enumerate(graph.tensors)
        if i not in kept
        and t.quantization is not None
        and t.quantization.min is not None
        and len(t.quantization.min) == 1
    ]


def runs_keeping_tensors(model: bytes, samples: np.ndarray):
    """The model run on each NHWC sample in turn (LiteRT's builtin kernels, XNNPACK off,
    every tensor kept): yields the interpreter after each run. Used on the calibrated
    float model (calibration images) and by per-layer localization."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(
        model_content=model,
        experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    for sample in samples:
        interpreter.set_tensor(inp["index"], quantize(np.ascontiguousarray(sample[None], np.float32), inp))
        interpreter.invoke()
        yield interpreter


def histogram_ranges(calibrated: bytes, calibration: np.ndarray) -> dict[int, tuple[float, float]]:
    """Tensor index -> (min, max) that ``HistogramObserver`` chooses from the tensor's
    values over the calibration images (run through the calibrated float model)."""
    import torch
    from ai_edge_litert.tools import flatbuffer_utils
    from torch.ao.quantization.observer import HistogramObserver

    tensors = ranged_tensors(flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated)))
    observers = {
        i: HistogramObserver(dtype=torch.qint8, qscheme=torch.per_tensor_affine, quant_min=INT8[0], quant_max=INT8[1])
        for i in tensors
    }
    for interpreter in runs_keeping_tensors(calibrated, calibration):
        for i, observer in observers.items():
            observer(torch.from_numpy(np.array(interpreter.get_tensor(i), np.float32)))
    return {i: _range(*observer.calculate_qparams()) for i, observer in observers.items()}


def _range(scale, zero_point) -> tuple[float, float]:
    """The real interval an int8 (scale, zero point) covers."""
    scale, zero_point = float(scale), int(zero_point)
    return (INT8[0] - zero_point) * scale, (INT8[1] - zero_point) * scale


def with_ranges(calibrated: bytes, ranges: dict[int, tuple[float, float]]) -> bytes:
    """The calibrated model with each listed tensor's min/max replaced."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
    tensors = model.subgraphs[0].tensors
    for i, (low, high) in ranges.items():
        q = tensors[i].quantization
        q.min, q.max = np.array([low], np.float32), np.array([high], np.float32)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
