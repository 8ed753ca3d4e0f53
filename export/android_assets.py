"""``python -m export.android_assets --from OUT [--model FILE.tflite]``: copy an
exported ``.tflite``, its model JSON and ``labels.txt`` into the Android app's
assets as ``model.tflite``, ``model.json`` and ``labels.txt``. Only files that
``OUT/manifest.json`` lists, inside OUT, with a matching sha256, are copied: each is
read once, checked, and those very bytes are written. OUT's lock (shared with the
export and verify-arm) is held while the set is read. Exit codes: 0 copied, 2 bad
input or OUT in use, 3 the environment failed, 4 internal error, 130 interrupted;
every failure is one line on stderr."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .errors import DISK_FULL_ERRNOS, ExportError, OneLineParser, outcome, shown
from .fsutil import atomic_write
from .manifest import MANIFEST, listed, load_manifest, member, read_listed
from .outset import held
from .targets.tflite.metadata import LABELS_FILE, SCHEMA

ASSETS_DIR = Path(__file__).resolve().parents[1] / "android_app" / "app" / "src" / "main" / "assets"
MODEL_NAME, JSON_NAME = "model.tflite", "model.json"


def listed_files(out_dir: Path) -> dict[str, str]:
    """file name -> sha256 from the manifest of the deliverable set in ``out_dir``."""
    if not (out_dir / MANIFEST).is_file():
        raise ExportError(f"no {MANIFEST} of an export in {out_dir}; run make export TARGET=tflite first")
    manifest = load_manifest(out_dir)
    if manifest.get("rejected"):
        raise ExportError(f"{out_dir} holds a rejected export (its gate failed); nothing in it is for deployment")
    return listed(manifest)


def choose_model(out_dir: Path, listed: dict[str, str], model: str | None = None) -> str:
    """The name of the .tflite to ship, among those the manifest lists: ``model`` (a
    file name in ``out_dir`` or a path to one), else the only one, else the only fp32
    one; otherwise an error listing the choices."""
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
                f"model {model} is not a .tflite listed in {out_dir / MANIFEST}; choose one of: {listing}"
            )
        return name
    if not found:
        raise ExportError(f"no .tflite in {out_dir}; run make export TARGET=tflite first")
    if len(found) == 1:
        return found[0]
    fp32 = [name for name in found if Path(name).stem.endswith("_fp32")]
    if len(fp32) == 1:
        return fp32[0]
    raise ExportError(f"several models in {out_dir}; pick one with --model (MODEL=...): {listing}")


def checked_bytes(out_dir: Path, listed: dict[str, str], name: str) -> bytes:
    """A file's bytes, read once: listed in the manifest, inside OUT and matching its
    sha256 (a stale or edited file must never reach the app)."""
    if name not in listed:
        raise ExportError(f"{name} is not listed in {out_dir / MANIFEST}; re-run the export")
    return read_listed(out_dir, name, listed[name])


def model_description(out_dir: Path, listed: dict[str, str], model: str) -> tuple[dict, str]:
    """The model JSON beside ``model`` (checked like the model) and the name of its labels file."""
    name = str(Path(model).with_suffix(".json"))
    if name not in listed:
        raise ExportError(f"{name} (the model description) is not listed beside {model}; re-run the export")
    try:
        meta = json.loads(checked_bytes(out_dir, listed, name))
    except ValueError as e:
        raise ExportError(f"cannot read {out_dir / name}: {e}") from None
    if not isinstance(meta, dict) or meta.get("schema") != SCHEMA or meta.get("model_file") != Path(model).name:
        raise ExportError(f"{out_dir / name} is not a {SCHEMA} description of {model}")
    labels = meta.get("labels_file", LABELS_FILE)
    member(out_dir, labels, "labels_file")  # relative, inside OUT, before anything else is said about it
    return meta, labels


def copy_assets(out_dir: Path, assets_dir: Path = ASSETS_DIR, model: str | None = None) -> str:
    """Copy the chosen model, its JSON (``model_file`` rewritten) and labels while
    holding OUT's lock; returns the model's name."""
    if not Path(out_dir).is_dir():
        raise ExportError(f"export folder not found: {out_dir}")
    with held(Path(out_dir), "; wait for it to finish") as out:
        files = listed_files(out)
        name = choose_model(out, files, model)
        meta, labels_name = model_description(out, files, name)
        model_bytes = checked_bytes(out, files, name)
        labels_bytes = checked_bytes(out, files, labels_name)
    try:
        assets_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(assets_dir / MODEL_NAME, model_bytes)
        atomic_write(assets_dir / Path(labels_name).name, labels_bytes)
        atomic_write(assets_dir / JSON_NAME, json.dumps({**meta, "model_file": MODEL_NAME}, indent=2) + "\n")
    except OSError as e:
        if e.errno in DISK_FULL_ERRNOS:
            raise
        raise ExportError(f"cannot write to {assets_dir}: {e.strerror or e}") from None
    return name


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(prog="python -m export.android_assets", description=__doc__)
    p.add_argument("--from", dest="out_dir", type=Path, required=True, help="export output folder")
    p.add_argument("--model", default=None, help="which .tflite (default: the only one, or the fp32 one)")
    p.add_argument("--assets", type=Path, default=ASSETS_DIR, help="the Android app's assets folder")
    args = p.parse_args(argv)
    try:
        name = copy_assets(args.out_dir, args.assets, args.model)
    except BaseException as e:  # noqa: BLE001 -- every ending is one line and a documented code
        code, message = outcome(e)
        print(f"error: {message}", file=sys.stderr)
        return code
    print(shown(f"copied {name} -> {args.assets / MODEL_NAME} (+ {JSON_NAME}, labels)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
