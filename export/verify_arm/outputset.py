"""An export's output set as verify-arm needs it: the golden data and every .tflite
the manifest lists, each inside OUT and checked against the manifest's sha256, with
its precision and input convention from the report. Anything missing, altered,
malformed or leading outside OUT is a BadInput."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import golden
from ..errors import ExportError
from ..fsutil import sha256_of
from ..manifest import MANIFEST, REPORT_JSON, listed, load_manifest, member, read_json
from .runner import CONVENTIONS

PRECISION_ORDER = ("fp32", "fp16", "int8-dynamic", "int8")


class BadInput(ExportError):
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


def _read_report(out_dir: Path) -> dict[str, dict]:
    """The report's artifact entries by file name; a malformed report is a BadInput."""
    path = out_dir / REPORT_JSON
    report = read_json(path, f"{out_dir}: no {REPORT_JSON} (precision and input convention of each artifact)")
    artifacts = report.get("artifacts") if isinstance(report, dict) else None
    if not isinstance(artifacts, list) or not all(isinstance(a, dict) for a in artifacts):
        raise BadInput(f"{path}: no 'artifacts' list of objects")
    return {a.get("file"): a for a in artifacts}


def _model(out_dir: Path, name: str, sha256: str, artifact: dict | None) -> Model:
    where = f"{out_dir / REPORT_JSON}: the artifact entry of {name}"
    if artifact is None:
        raise BadInput(f"{out_dir / REPORT_JSON}: no artifact entry for {name}")
    if artifact.get("precision") not in PRECISION_ORDER:
        raise BadInput(f"{where} has precision {artifact.get('precision')!r}, not one of {', '.join(PRECISION_ORDER)}")
    if artifact.get("input_convention") not in CONVENTIONS:
        raise BadInput(
            f"{where} has input_convention {artifact.get('input_convention')!r}, not one of {', '.join(CONVENTIONS)}"
        )
    parity = artifact.get("parity")
    return Model(
        name,
        _checked_file(out_dir, name, sha256),
        artifact["precision"],
        artifact["input_convention"],
        parity if isinstance(parity, dict) else None,
        str(artifact.get("runtime", "")),
    )


def _checked_file(out_dir: Path, name: str, sha256: str) -> Path:
    path = member(out_dir, name, f"{MANIFEST} entry")
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


def load(out_dir: Path) -> OutputSet:
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise BadInput(f"{out_dir}: not a folder")
    manifest = load_manifest(out_dir)
    if manifest.get("rejected"):
        raise BadInput(f"{out_dir} holds a rejected export (its gate failed); only deliverable sets are verified")
    files = listed(manifest)
    by_file = _read_report(out_dir)
    if golden.FILE_NAME not in files:
        raise BadInput(f"{out_dir / MANIFEST}: lists no {golden.FILE_NAME} (golden data); re-export")
    golden_path = _checked_file(out_dir, golden.FILE_NAME, files[golden.FILE_NAME])
    names = sorted((n for n in files if n.endswith(".tflite")), key=lambda n: _precision_rank(by_file, n))
    models = [_model(out_dir, name, files[name], by_file.get(name)) for name in names]
    if not models:
        raise BadInput(f"{out_dir / MANIFEST}: lists no .tflite file (export with --target tflite)")
    return OutputSet(out_dir, golden.FILE_NAME, files[golden.FILE_NAME], _read_golden(golden_path), models)


def _precision_rank(by_file: dict, name: str) -> tuple[int, str]:
    precision = (by_file.get(name) or {}).get("precision", "")
    return (PRECISION_ORDER.index(precision) if precision in PRECISION_ORDER else len(PRECISION_ORDER), name)
