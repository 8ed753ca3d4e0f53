"""int8 TFLite models quantized by us from onnx2tf's SavedModel with the TFLite
converter, instead of onnx2tf's ``output_integer_quantized_tflite`` (which also
writes int8-I/O and int16-activation models we never ship, about 40 % of its run).

- ``int8``: full integer inside (per-channel weights, per-tensor activations with
  ``HistogramObserver`` ranges over the calibration images, ``export.targets.tflite.ranges``),
  float32 input and output; each bias then takes back the mean error of its int8
  weights (``export.targets.tflite.bias``), and every GELU, gate product and residual ADD
  after the first stage goes to float between int8 tensors (``tflite_graph.float_islands``).
- ``int8-dynamic``: dynamic-range weights; depthwise weights then go back to
  float (``tflite_graph.float_depthwise_weights``).

The GELU and depthwise rewrites let XNNPACK take the whole graph as one partition;
the float residual stream keeps int8 rounding off the skip connections. Runs in the
converter's child process (``export.isolate``), like onnx2tf."""

from __future__ import annotations

from pathlib import Path

import numpy as np

QUANTIZED = ("int8-dynamic", "int8")


def before_islands(path: Path) -> Path:
    """Where the full-integer model is kept as quantized, before ``float_islands``: the
    int8 fallback (``export.targets.tflite.fallback``) chooses more float layers from it."""
    return path.with_name(f"{path.stem}_before_islands.tflite")


def quantize(saved_model: Path, calibration: np.ndarray, outputs: dict[str, Path]) -> None:
    """Write the ``outputs`` (precision -> .tflite path) from ``saved_model``;
    ``calibration`` is the NHWC float32 batch exactly as the model's input takes it."""
    for precision, path in outputs.items():
        body = _convert(saved_model, calibration if precision == "int8" else None)
        if precision == "int8":
            before_islands(path).write_bytes(body)
        path.write_bytes(_one_partition(body, precision))


def _convert(saved_model: Path, calibration: np.ndarray | None) -> bytes:
    """TFLite converter: dynamic-range quantization, or full-integer with ``calibration``,
    HistogramObserver activation ranges (``export.targets.tflite.ranges``) and corrected biases
    (``export.targets.tflite.bias``)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if calibration is None:
        return converter.convert()
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.representative_dataset = lambda: ([sample[None]] for sample in calibration)
    # The converter's own two halves (private API, TensorFlow 2.21): calibrate only, then
    # its MLIR quantizer, with our ranges in between; float32 input and output as before.
    from tensorflow.lite.python.convert import mlir_quantize

    from .bias import correct_biases
    from .ranges import histogram_ranges, with_ranges

    converter._experimental_calibrate_only = True
    calibrated = converter.convert()
    ranged = with_ranges(calibrated, histogram_ranges(calibrated, calibration))
    quantized = mlir_quantize(ranged, False, input_data_type=tf.float32, output_data_type=tf.float32)
    return correct_biases(quantized, calibrated, calibration)[0]


def _one_partition(body: bytes, precision: str) -> bytes:
    """The rewrites that make ``precision``'s model a single XNNPACK partition."""
    from ai_edge_litert.tools import flatbuffer_utils

    from .graph import float_depthwise_weights, float_islands

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(body))
    (float_islands if precision == "int8" else float_depthwise_weights)(model)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
