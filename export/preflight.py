"""Every check on a resolved export request that needs no model (each option's own
value was read by its declaration when the spec was built): option combinations, the files
and folders it names, each target's own checks (``Target.validate``) and the
resource limits (``export.limits``). The pipeline calls :func:`validate` before it
builds the model, so bad input costs no conversion time and is a one-line
ExportError (exit 2)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from casvit import VARIANTS

from . import limits, targets
from .calibration import check_calibration_folder
from .errors import ExportError
from .spec import ExportSpec

# The tool's own names beside OUT are ".<name>.lock" and ".<name>.txn-<pid>": this many
# characters longer than OUT's name (a PID has at most 7 digits on Linux).
NAME_OVERHEAD = len(".") + len(".txn-") + 7


def validate(spec: ExportSpec) -> None:
    """Raise ExportError for the first thing wrong with ``spec``; print a memory
    estimate when the run will be large."""
    for name, record in spec.target_options.items():
        if not isinstance(record, targets.get(name).options):
            raise ExportError(f"options of {name} are a {type(record).__name__}, not its option record")
    if spec.variant == "custom" and spec.checkpoint is None:
        raise ExportError(
            "--variant custom takes its architecture from a checkpoint: give --checkpoint, "
            f"or choose one of {', '.join(VARIANTS)}"
        )
    _check_combinations(spec)
    for name in spec.targets:
        check = targets.get(name).validate
        if check is not None:
            check(spec)
    if isinstance(spec.labels, Path):
        _check_file(spec.labels, "labels file")
    if spec.accuracy.val_dir is not None and not _resolved(spec.accuracy.val_dir, "--val-dir").is_dir():
        raise ExportError(f"validation folder not found: {spec.accuracy.val_dir}")
    if spec.calibration.calib is not None:
        check_calibration_folder(_resolved(spec.calibration.calib, "--calib"), spec.calibration.calib_count)
    check_output_folder(spec.out_dir)
    limits.check(spec)


def _check_combinations(spec: ExportSpec) -> None:
    """Options that need another, exclude another or need a target that uses them.
    Calibration options only calibrate the run's integer models (``Target.calibrates``):
    asked for without one they would be silently ignored, so they are an error."""
    a, c = spec.accuracy, spec.calibration
    if a.val_dir is None:
        given = [
            f
            for f, v in (
                ("--val-count", a.val_count),
                ("--calib-from-val", c.calib_from_val),
                ("--max-top1-drop", a.max_top1_drop),
            )
            if v is not None
        ]
        if given:
            raise ExportError(f"{', '.join(given)} needs --val-dir")
    if c.calib is not None and c.calib_from_val is not None:
        raise ExportError("--calib and --calib-from-val both choose the calibration images: give one of them")
    given = "--calib" if c.calib is not None else "--calib-from-val" if c.calib_from_val is not None else None
    if given and not targets.calibrating(spec):
        raise ExportError(
            f"{given} is only used to calibrate an int8 model (TFLite int8), which this run does not "
            f"make: add one (e.g. --target tflite with int8 in --tflite-precisions) or drop {given}"
        )


def _check_file(path: Path, what: str) -> None:
    resolved = _resolved(path, what)
    if resolved.is_dir():
        raise ExportError(f"{what} {path} is a directory, not a file")
    if not resolved.is_file():
        raise ExportError(f"{what} not found: {path}")


def _resolved(path: Path, what: str) -> Path:
    """``path`` with its symlinks followed; a loop is an ExportError naming the option."""
    try:
        return Path(path).resolve()
    except (RuntimeError, OSError) as e:  # Python 3.11 raises RuntimeError on a symlink loop
        raise ExportError(f"{what} {path} cannot be resolved: {e}") from None


def check_output_folder(out: Path) -> None:
    """OUT can be made and replaced: its path resolves (no symlink loop), no part of it
    is a file, its name leaves room for the lock and staging names beside it, and the
    nearest existing folder of its parent is writable."""
    out = _resolved(out, "--out")
    for parent in reversed(out.parents):
        if parent.exists() and not parent.is_dir():
            raise ExportError(f"--out {out}: {parent} is a file, not a folder")
    if out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} exists and is not a folder")
    existing = next(p for p in out.parents if p.exists())
    limit = os.pathconf(existing, "PC_NAME_MAX")
    if len(os.fsencode(out.name)) + NAME_OVERHEAD > limit:
        raise ExportError(
            f"--out: the folder name {out.name[:40]}... is too long for this file system "
            f"(at most {limit - NAME_OVERHEAD} bytes, to leave room for the lock and staging folders beside it)"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ExportError(
            f"output folder {out} is not writable: {existing} does not let this user create files "
            f"({os.strerror(errno.EACCES)})"
        )
