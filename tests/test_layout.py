"""The layout shows the design: each target is one package whose internals only it
imports, the modules every target shares name no target, the code passes ruff (lint
and format), and the ARM64 runner's copy of the LiteRT I/O conversion equals the
project's."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from export import targets

from .helpers import ROOT

TARGETS_DIR = ROOT / "export" / "targets"
# Shared modules: every target and tool uses them, so none of them may import a
# target package or name one in its code (docstrings may describe examples).
SHARED = [
    "accuracy",
    "audit",
    "calibration",
    "checks",
    "cli",
    "context",
    "evalpool",
    "evaluate",
    "exported",
    "golden",
    "inputs",
    "labelled_images",
    "labels",
    "limits",
    "localize",
    "localize_report",
    "outset",
    "parity",
    "pipeline",
    "preflight",
    "preprocessing",
    "report",
    "spec",
    "timing",
]


def _python_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py") if ".venv" not in p.parts)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (relative imports resolved, ``from X import Y`` as X.Y and X)."""
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _target_packages() -> dict[str, list[str]]:
    """name -> the public modules its package declares (``__all__`` of its ``__init__``)."""
    out = {}
    for init in sorted(TARGETS_DIR.glob("*/__init__.py")):
        out[init.parent.name] = importlib.import_module(f"export.targets.{init.parent.name}").__all__
    return out


def test_every_registered_target_is_a_package_with_a_declared_face():
    packages = _target_packages()
    assert set(packages) == set(targets.REGISTRY)
    for name, public in packages.items():
        assert "target" in public, name
        assert targets.REGISTRY[name] == f"export.targets.{name}.target"
        for module in public:
            assert (TARGETS_DIR / name / f"{module}.py").is_file() or (TARGETS_DIR / name / module).is_dir()


def test_no_module_outside_a_target_package_imports_its_internals():
    packages = _target_packages()
    offenders = []
    for path in _python_files("export", "benchmarks", "casvit"):
        inside = path.relative_to(TARGETS_DIR).parts[0] if path.is_relative_to(TARGETS_DIR) else None
        for module in _imports(path):
            parts = module.split(".")
            if parts[:2] != ["export", "targets"] or len(parts) < 4 or parts[2] not in packages:
                continue
            if parts[2] != inside and parts[3] not in packages[parts[2]]:
                offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert offenders == []


def _code_names(path: Path) -> set[str]:
    """Identifiers, attribute names and the one-word string constants (keys, names, file
    names: what logic branches on) of a module; prose (messages, help) and docstrings
    may mention a format."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if not any(c.isspace() for c in node.value):
                names.add(node.value)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update(alias.name for alias in node.names)
            names.add(getattr(node, "module", None) or "")
    return names


@pytest.mark.parametrize("module", SHARED)
def test_shared_modules_import_and_name_no_target(module):
    path = ROOT / "export" / f"{module}.py"
    assert not [m for m in _imports(path) if m.startswith("export.targets.") and m.split(".")[2] in targets.REGISTRY]
    named = [n for n in _code_names(path) for t in targets.REGISTRY if t in n.lower()]
    assert named == [], f"{module} names a target in its code: {named}"


def test_ruff_lint_and_format_pass():
    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout[-3000:]
    fmt = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout[-3000:]


def test_the_arm64_runner_converts_litert_io_as_the_project_does():
    """runner.py runs where the project is not installed, so it keeps a copy of
    ``export.litert_io``: both give the same values on every dtype and at saturation."""
    from export import litert_io
    from export.verify_arm import runner

    x = np.linspace(-3.0, 3.0, 101, dtype=np.float32)
    details = [
        {"dtype": np.float32},
        {"dtype": np.int8, "quantization": (0.02, -3)},
        {"dtype": np.uint8, "quantization": (0.013, 128)},
        {"dtype": np.int16, "quantization": (1e-4, 0)},
    ]
    for detail in details:
        q = litert_io.quantize(x, detail)
        assert q.dtype == np.dtype(detail["dtype"])
        np.testing.assert_array_equal(q, runner.quantize(x, detail))
        np.testing.assert_array_equal(litert_io.dequantize(q, detail), runner.dequantize(q, detail))
