"""The TFLite target. Public modules: ``target`` (the record the registry loads),
``runtime`` (LiteRT for the benchmarks), ``metadata`` (the standard metadata and the
model JSON beside each .tflite), ``partitions`` (XNNPACK partition count) and
``graph`` (flatbuffer surgery). Internal: ``onnx2tf`` (the converter run), ``nhwc``
(exact ONNX rewrites before it), ``quant`` (the int8 models), ``ranges`` (activation
ranges) and ``bias`` (bias correction); nothing outside this package imports them
(``tests/test_layout.py``)."""

__all__ = ["target", "runtime", "metadata", "partitions", "graph"]
