"""The Core ML target. Public modules: ``target`` (the record the registry loads) and
``mil`` (the reference interpreter that runs a Core ML program off macOS). Internal:
``outputs`` (the classifier's outputs edited after conversion) and ``layers`` (the
program's graph and vars for per-layer localization); nothing outside this package
imports them (``tests/test_layout.py``)."""

__all__ = ["target", "mil"]
