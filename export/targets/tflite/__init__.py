"""The TFLite target. Public modules: ``target`` (the record the registry loads),
``runtime`` (LiteRT for the benchmarks), ``metadata`` (the standard metadata and the
model JSON beside each .tflite), ``partitions`` (XNNPACK partition count), ``graph``
(flatbuffer surgery) and ``probabilities`` (the final SOFTMAX and the logits model
the checks run). Internal: ``nhwc`` (exact ONNX rewrites before onnx2tf), ``quant``
(the int8 models), ``ranges`` (activation ranges), ``bias`` (bias correction),
``layers`` (the graph and its tensors for per-layer localization) and ``fallback``
(int8 with its worst layers in float);
nothing outside this package imports them (``tests/test_layout.py``)."""

__all__ = ["target", "runtime", "metadata", "partitions", "graph", "probabilities"]
