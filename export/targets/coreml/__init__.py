"""The Core ML target. Public modules: ``target`` (the record the registry loads),
``mil`` (the reference interpreter that runs a Core ML program off macOS) and ``w8a8``
(int8 weights and activations calibrated on Linux; its recipe is what
``benchmarks.w8a8_ablation`` varies). Internal: ``convert`` (coremltools' conversion
and the package writing), ``describe`` (the package's metadata), ``outputs`` (the
classifier's outputs edited after conversion) and ``layers`` (the program's graph and
vars for per-layer localization); nothing outside this package imports
them (``tests/test_layout.py``)."""

__all__ = ["target", "mil", "w8a8"]
