"""The ONNX target. Public modules: ``target`` (the record the registry loads) and
``runtime`` (ONNX Runtime for the benchmarks); nothing else of this package is
imported from outside it (``tests/test_layout.py``)."""

__all__ = ["target", "runtime"]
