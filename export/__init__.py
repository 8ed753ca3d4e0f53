"""CAS-ViT export toolchain. Importing the package switches library telemetry off
(before any converter or runtime is loaded), see ``export.offline``.

``from export import export_model, ExportError`` is the Python API (``export.api``);
both are loaded on first use, so tools that import only a small part of the package
(the ARM64 runner, android_assets) do not pay for torch and the converters."""

from .offline import disable_telemetry

disable_telemetry()

__all__ = ["ExportError", "ExportResult", "export_model"]
_LAZY = {"export_model": "api", "ExportResult": "api", "ExportError": "errors"}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'export' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{_LAZY[name]}", __name__), name)
