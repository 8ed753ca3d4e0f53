"""``python -m export.android_assets --from OUT [--model FILE.tflite]``: copy an
exported ``.tflite``, its model JSON and ``labels.txt`` into the Android app's
assets as ``model.tflite``, ``model.json`` and ``labels.txt``."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from .errors import ExportError
from .fsutil import atomic_write
from .tflite_meta import SCHEMA

ASSETS_DIR = Path(__file__).resolve().parents[1] / "android_app" / "app" / "src" / "main" / "assets"
MODEL_NAME, JSON_NAME = "model.tflite", "model.json"


def choose_model(out_dir: Path, model: str | None = None) -> Path:
    """The .tflite to ship: ``model`` (a file name in ``out_dir`` or a path), else the
    only one, else the only fp32 one; otherwise an error listing the choices."""
    if not out_dir.is_dir():
        raise ExportError(f"export folder not found: {out_dir}")
    found = sorted(out_dir.glob("*.tflite"))
    listing = ", ".join(p.name for p in found) or "none"
    if model is not None:
        path = Path(model) if Path(model).is_file() else out_dir / model
        if not path.is_file() or path.suffix != ".tflite":
            raise ExportError(f"model {model} not found in {out_dir}; choose one of: {listing}")
        return path
    if not found:
        raise ExportError(f"no .tflite in {out_dir}; run make export TARGET=tflite first")
    if len(found) == 1:
        return found[0]
    fp32 = [p for p in found if p.stem.endswith("_fp32")]
    if len(fp32) == 1:
        return fp32[0]
    raise ExportError(f"several models in {out_dir}; pick one with --model (MODEL=...): {listing}")


def read_model_json(model: Path) -> dict:
    path = model.with_suffix(".json")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportError(f"{path.name} (the model description) is missing beside {model.name}") from None
    except (OSError, ValueError) as e:
        raise ExportError(f"cannot read {path}: {e}") from None
    if not isinstance(meta, dict) or meta.get("schema") != SCHEMA or meta.get("model_file") != model.name:
        raise ExportError(f"{path} is not a {SCHEMA} description of {model.name}")
    return meta


def _copy_atomic(src: Path, dst: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    os.close(fd)
    try:
        shutil.copy(src, tmp)  # contents and permission bits
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def copy_assets(out_dir: Path, assets_dir: Path = ASSETS_DIR, model: str | None = None) -> Path:
    """Copy the chosen model, its JSON (``model_file`` rewritten) and labels; returns the model path."""
    source = choose_model(Path(out_dir), model)
    meta = read_model_json(source)
    labels = source.parent / meta.get("labels_file", "labels.txt")
    if not labels.is_file():
        raise ExportError(f"{labels.name} is missing beside {source.name}")
    try:
        assets_dir.mkdir(parents=True, exist_ok=True)
        _copy_atomic(source, assets_dir / MODEL_NAME)
        _copy_atomic(labels, assets_dir / labels.name)
        atomic_write(assets_dir / JSON_NAME, json.dumps({**meta, "model_file": MODEL_NAME}, indent=2) + "\n")
    except OSError as e:
        raise ExportError(f"cannot write to {assets_dir}: {e.strerror or e}") from None
    return source


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        self.exit(2, f"error: {message} (see python -m export.android_assets --help)\n")


def main(argv: list[str] | None = None) -> int:
    p = _Parser(prog="python -m export.android_assets", description=__doc__)
    p.add_argument("--from", dest="out_dir", type=Path, required=True, help="export output folder")
    p.add_argument("--model", default=None, help="which .tflite (default: the only one, or the fp32 one)")
    p.add_argument("--assets", type=Path, default=ASSETS_DIR, help="the Android app's assets folder")
    args = p.parse_args(argv)
    try:
        source = copy_assets(args.out_dir, args.assets, args.model)
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"copied {source.name} -> {args.assets / MODEL_NAME} (+ {JSON_NAME}, labels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
