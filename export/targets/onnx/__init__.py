"""The ONNX target. Public modules: ``target`` (the record the registry loads) and
``runtime`` (ONNX Runtime for the benchmarks and the checks). Internal: ``layers``
(the graph and its tensors for per-layer localization); nothing outside this package
imports it (``tests/test_layout.py``)."""

__all__ = ["target", "runtime"]
