"""An export's output set as verify-arm needs it: the golden data and every .tflite
the manifest lists, each checked against the manifest's sha256, with its precision
and input convention from the report. Anything missing or altered is a BadInput."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import golden
from ..fsutil import sha256_of

PRECISION_ORDER = ("fp32", "fp16", "int8-dynamic", "int8")


class BadInput(Exception):
    """The folder is not a complete, unaltered export output set (exit 2)."""


@dataclass(frozen=True)
class Model:
    file: str
    path: Path
    precision: str
    convention: str
    export_parity: dict | None  # the export's own check (x86, the venv's LiteRT)
    export_runtime: str


@dataclass(frozen=True)
class OutputSet:
    out_dir: Path
    golden_file: str
    golden_sha256: str
    golden: dict[str, np.ndarray]
    models: list[Model]


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise BadInput(f"{path.parent}: no {path.name} ({what}); is this an export output folder?")
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise BadInput(f"{path}: not valid JSON ({e})") from None


def _listed(manifest: dict, out_dir: Path) -> dict[str, str]:
    """path -> sha256 of every file the manifest lists."""
    try:
        return {str(f["path"]): str(f["sha256"]) for f in manifest["files"]}
    except (KeyError, TypeError):
        raise BadInput(f"{out_dir / 'manifest.json'}: no 'files' list of path/sha256 entries") from None


def _checked_file(out_dir: Path, name: str, sha256: str) -> Path:
    path = out_dir / name
    if not path.is_file():
        raise BadInput(f"{path}: listed in the manifest but missing")
    if sha256_of(path) != sha256:
        raise BadInput(f"{path}: sha256 differs from the manifest (altered or corrupted)")
    return path


def _read_golden(path: Path) -> dict[str, np.ndarray]:
    try:
        data = golden.read(path)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise BadInput(
            f"{path}: unreadable golden data ({str(e).splitlines()[0] if str(e) else type(e).__name__})"
        ) from None
    if data["rgb"].dtype != np.uint8 or data["rgb"].shape[-1] != 3 or data["logits"].ndim != 2:
        raise BadInput(f"{path}: golden data has unexpected shapes or types")
    return data


def _precision_rank(by_file: dict, name: str) -> tuple[int, str]:
    precision = (by_file.get(name) or {}).get("precision", "")
    return (PRECISION_ORDER.index(precision) if precision in PRECISION_ORDER else len(PRECISION_ORDER), name)


def load(out_dir: Path) -> OutputSet:
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise BadInput(f"{out_dir}: not a folder")
    listed = _listed(_read_json(out_dir / "manifest.json", "the list of files and hashes"), out_dir)
    report = _read_json(out_dir / "report.json", "precision and input convention of each artifact")
    if golden.FILE_NAME not in listed:
        raise BadInput(f"{out_dir / 'manifest.json'}: lists no {golden.FILE_NAME} (golden data); re-export")
    golden_path = _checked_file(out_dir, golden.FILE_NAME, listed[golden.FILE_NAME])
    by_file = {a.get("file"): a for a in report.get("artifacts", [])}
    models = []
    for name in sorted((n for n in listed if n.endswith(".tflite")), key=lambda n: _precision_rank(by_file, n)):
        artifact = by_file.get(name)
        if artifact is None:
            raise BadInput(f"{out_dir / 'report.json'}: no artifact entry for {name}")
        models.append(
            Model(
                name,
                _checked_file(out_dir, name, listed[name]),
                artifact["precision"],
                artifact["input_convention"],
                artifact.get("parity"),
                artifact.get("runtime", ""),
            )
        )
    if not models:
        raise BadInput(f"{out_dir / 'manifest.json'}: lists no .tflite file (export with --target tflite)")
    return OutputSet(out_dir, golden.FILE_NAME, listed[golden.FILE_NAME], _read_golden(golden_path), models)
