"""``python -m export.android_assets --from OUT [--model FILE.tflite]``: copy an
exported ``.tflite``, its model JSON and ``labels.txt`` into the Android app's
assets as ``model.tflite``, ``model.json`` and ``labels.txt``. Only files that
``OUT/manifest.json`` lists, with a matching sha256, are copied."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .errors import ExportError, OneLineParser
from .fsutil import atomic_copy, atomic_write, sha256_of
from .outset import read_manifest
from .targets.tflite.metadata import SCHEMA

ASSETS_DIR = Path(__file__).resolve().parents[1] / "android_app" / "app" / "src" / "main" / "assets"
MODEL_NAME, JSON_NAME = "model.tflite", "model.json"


def listed_files(out_dir: Path) -> dict[str, str]:
    """file name -> sha256 from the manifest of the deliverable set in ``out_dir``."""
    if not out_dir.is_dir():
        raise ExportError(f"export folder not found: {out_dir}")
    manifest = read_manifest(out_dir)
    if manifest is None:
        raise ExportError(f"no manifest.json of an export in {out_dir}; run make export TARGET=tflite first")
    if manifest.get("rejected"):
        raise ExportError(f"{out_dir} holds a rejected export (its gate failed); nothing in it is for deployment")
    return {f["path"]: f["sha256"] for f in manifest["files"]}


def choose_model(out_dir: Path, model: str | None = None) -> Path:
    """The .tflite to ship, among those the manifest lists: ``model`` (a file name in
    ``out_dir`` or a path to one), else the only one, else the only fp32 one;
    otherwise an error listing the choices."""
    listed = listed_files(out_dir)
    found = sorted(name for name in listed if name.endswith(".tflite"))
    listing = ", ".join(found) or "none"
    if model is not None:
        name = Path(model).name
        if (
            name not in found
            or not (out_dir / name).is_file()
            or (Path(model).is_file() and Path(model).resolve() != (out_dir / name).resolve())
        ):
            raise ExportError(
                f"model {model} is not a .tflite listed in {out_dir / 'manifest.json'}; choose one of: {listing}"
            )
        return out_dir / name
    if not found:
        raise ExportError(f"no .tflite in {out_dir}; run make export TARGET=tflite first")
    if len(found) == 1:
        return out_dir / found[0]
    fp32 = [name for name in found if Path(name).stem.endswith("_fp32")]
    if len(fp32) == 1:
        return out_dir / fp32[0]
    raise ExportError(f"several models in {out_dir}; pick one with --model (MODEL=...): {listing}")


def check_listed(out_dir: Path, names: list[str]) -> None:
    """Each file must be listed in the manifest and match its sha256 (a stale or edited
    file must never reach the app)."""
    listed = listed_files(out_dir)
    for name in names:
        if name not in listed:
            raise ExportError(f"{name} is not listed in {out_dir / 'manifest.json'}; re-run the export")
        if not (out_dir / name).is_file() or sha256_of(out_dir / name) != listed[name]:
            raise ExportError(
                f"{out_dir / name} differs from its manifest entry (sha256); "
                "the output set was changed after the export: re-run it"
            )


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


def copy_assets(out_dir: Path, assets_dir: Path = ASSETS_DIR, model: str | None = None) -> Path:
    """Copy the chosen model, its JSON (``model_file`` rewritten) and labels; returns the model path."""
    source = choose_model(Path(out_dir), model)
    check_listed(Path(out_dir), [source.name, source.with_suffix(".json").name])
    meta = read_model_json(source)
    labels = source.parent / meta.get("labels_file", "labels.txt")
    if not labels.is_file():
        raise ExportError(f"{labels.name} is missing beside {source.name}")
    check_listed(Path(out_dir), [labels.name])
    try:
        assets_dir.mkdir(parents=True, exist_ok=True)
        atomic_copy(source, assets_dir / MODEL_NAME)
        atomic_copy(labels, assets_dir / labels.name)
        atomic_write(assets_dir / JSON_NAME, json.dumps({**meta, "model_file": MODEL_NAME}, indent=2) + "\n")
    except OSError as e:
        raise ExportError(f"cannot write to {assets_dir}: {e.strerror or e}") from None
    return source


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m export.android_assets", description=__doc__)
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
