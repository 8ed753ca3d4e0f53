"""The Core ML target. Public modules: ``target`` (the record the registry loads) and
``mil`` (the reference interpreter that runs a Core ML program off macOS). Internal:
``convert`` (coremltools' conversion and the package writing), ``outputs`` (the
classifier's outputs edited after conversion) and ``w8a8`` (int8 weights and
activations calibrated on Linux); nothing outside this package imports them
(``tests/test_layout.py``)."""

__all__ = ["target", "mil"]
