"""The user's labelled images (``--val-dir``): an ImageFolder layout (one subfolder
per class, named like a label), read and checked before any conversion starts,
optionally split into a calibration part (``--calib-from-val``) and a capped,
stratified accuracy part (``--val-count``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from casvit.preprocess import Preprocessing

from .calibration import CalibrationSet, converted_modes, image_files, read_rgb
from .errors import ExportError


def read_images(paths: list[Path], record: Preprocessing) -> tuple[np.ndarray, dict[str, int]]:
    """Files -> (N, height, width, 3) uint8 RGB through the export's preprocessing record,
    exactly as the parity and calibration images are prepared, and how many of each
    stored mode were converted to RGB."""
    rgb, modes = zip(*(read_rgb(path, record, what="validation image") for path in paths))
    return np.stack(rgb), converted_modes(list(modes))


@dataclass
class ValidationSet:
    """``rgb`` (N, H, W, 3) uint8 and ``targets`` (N,) label indices of the images
    the accuracy is measured on; ``calibration`` holds the images split off for int8."""

    root: Path
    classes: list[str]  # class folder names, sorted
    class_ids: list[int]  # their label indices
    files: list[str]  # paths relative to root
    targets: np.ndarray
    rgb: np.ndarray
    calibration: CalibrationSet | None = None
    available: int = 0  # images found in the folder
    converted: dict[str, int] = field(default_factory=dict)  # stored mode -> measured images converted to RGB
    eager_logits: np.ndarray | None = field(default=None, repr=False)

    def describe(self) -> dict:
        calib = self.calibration.names if self.calibration else []
        counts = {name: int(np.sum(self.targets == i)) for name, i in zip(self.classes, self.class_ids)}
        return {
            "folder": str(self.root),
            "classes": self.classes,
            "class_counts": counts,
            "images_found": self.available,
            "images_measured": len(self.files),
            "calibration_images": len(calib),
            "measured_files": self.files,
            "calibration_files": calib,
            "converted_to_rgb": self.converted,
        }


def class_files(root: Path, labels: list[str]) -> tuple[list[str], list[int], list[Path], np.ndarray]:
    """(class folder names, their label indices, image files, label index per file);
    every class folder must be a label."""
    root = Path(root)
    if not root.is_dir():
        raise ExportError(f"validation folder not found: {root}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ExportError(f"validation folder {root} has no class subfolders (expected one folder per label)")
    index = {}
    for i, name in enumerate(labels):
        index.setdefault(name, i)
    unknown = [c for c in classes if c not in index]
    if unknown:
        shown = ", ".join(repr(c) for c in unknown[:3]) + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
        raise ExportError(
            f"validation folder {root}: class folder(s) {shown} not among the model's "
            f"{len(labels)} labels (e.g. {', '.join(repr(n) for n in labels[:3])}; see --labels)"
        )
    files, targets = [], []
    for name in classes:
        found = image_files(root / name, what="validation class folder")
        files += found
        targets += [index[name]] * len(found)
    return classes, [index[c] for c in classes], files, np.asarray(targets, np.int64)


def stratified_take(targets: np.ndarray, count: int, seed: int, what: str) -> np.ndarray:
    """Indices of ``count`` items keeping each class's share (scikit-learn's
    stratified split); all of them when ``count`` covers the set."""
    if count >= len(targets):
        return np.arange(len(targets))
    from sklearn.model_selection import train_test_split

    try:
        taken, _ = train_test_split(np.arange(len(targets)), train_size=count, stratify=targets, random_state=seed)
    except ValueError as e:
        raise ExportError(
            f"{what} {count}: no stratified sample of {len(targets)} images in {len(np.unique(targets))} classes: {e}"
        ) from None
    return np.sort(taken)


def load_validation(spec, labels: list[str], record: Preprocessing) -> ValidationSet | None:
    """The validation set of a run (None without ``--val-dir``), images read and checked
    (its option combinations were checked by ``export.preflight`` before the run)."""
    accuracy, calibrate_on, seed = spec.accuracy, spec.calibration.calib_from_val, spec.seed
    if accuracy.val_dir is None:
        return None
    root = Path(accuracy.val_dir).resolve()
    classes, class_ids, files, targets = class_files(root, labels)
    available = len(files)
    keep = np.arange(available)
    calibration = None
    if calibrate_on:
        calib_idx = stratified_take(targets, calibrate_on, seed, "--calib-from-val")
        if len(calib_idx) == available:
            raise ExportError(
                f"--calib-from-val {calibrate_on} takes all {available} images of "
                f"{root}; none would be left to measure accuracy on"
            )
        names = [str(files[i].relative_to(root)) for i in calib_idx]
        calib_rgb, calib_converted = read_images([files[i] for i in calib_idx], record)
        calibration = CalibrationSet(
            f"--calib-from-val: {len(calib_idx)} images of {root} (stratified, seed {seed}), "
            "left out of the accuracy measurement",
            names,
            calib_rgb,
            calib_converted,
        )
        keep = np.setdiff1d(keep, calib_idx)
    if accuracy.val_count:
        keep = keep[stratified_take(targets[keep], accuracy.val_count, seed, "--val-count")]
    rgb, converted = read_images([files[i] for i in keep], record)
    return ValidationSet(
        root,
        classes,
        class_ids,
        [str(files[i].relative_to(root)) for i in keep],
        targets[keep],
        rgb,
        calibration,
        available,
        converted,
    )
