"""The registry of export targets: name -> the module whose ``TARGET`` record
(``export.targets.base.Target``) says everything about that format. Adding a
target is one module plus one line here; the order is the conversion order, so a
target comes after those it depends on."""

from __future__ import annotations

import importlib
import platform

from .base import BenchRuntime, GraphOp, Intermediates, MemoryCost, Repair, Repaired, Target

REGISTRY: dict[str, str] = {
    "onnx": "export.targets.onnx.target",
    "tflite": "export.targets.tflite.target",
    "coreml": "export.targets.coreml.target",
}
# What an export makes when no target is named (the CLI, make export, the Python API).
DEFAULT_TARGETS = ("coreml",)
# Versions every report records besides the targets' own tools.
CORE_TOOLS, LAST_TOOLS = ("torch",), ("numpy",)

__all__ = [
    "REGISTRY",
    "BenchRuntime",
    "GraphOp",
    "Intermediates",
    "MemoryCost",
    "Repair",
    "Repaired",
    "Target",
    "get",
    "names",
    "package_versions",
    "records",
    "tools",
    "tool_versions",
]


def names() -> tuple[str, ...]:
    """Every registered target, in conversion order."""
    return tuple(REGISTRY)


def get(name: str) -> Target:
    """The record of a registered target (its module is imported on first use)."""
    if name not in REGISTRY:
        raise ValueError(f"unknown target {name!r}")
    record = importlib.import_module(REGISTRY[name]).TARGET
    if record.name != name:
        raise ValueError(f"{REGISTRY[name]}.TARGET is named {record.name!r}, registered as {name!r}")
    earlier = names()[: names().index(name)]
    if not set(record.depends_on) <= set(earlier):
        raise ValueError(f"target {name!r} depends on {', '.join(record.depends_on)}: register it after them")
    return record


def records() -> list[Target]:
    return [get(name) for name in names()]


def calibrating(spec) -> list[str]:
    """The targets of ``spec`` whose run makes a model calibrated on images."""
    return [name for name in spec.targets if get(name).calibrated_in(spec)]


def tools() -> tuple[str, ...]:
    """The Python distributions whose versions a report records, each once."""
    return tuple(dict.fromkeys([*CORE_TOOLS, *(t for r in records() for t in r.tools), *LAST_TOOLS]))


def package_versions(packages: tuple[str, ...]) -> dict[str, str]:
    """Each package's installed version ("not installed" when absent)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in packages:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def tool_versions() -> dict[str, str]:
    """Python and every tool of every target: the report's ``versions``."""
    return {"python": platform.python_version(), **package_versions(tools())}
