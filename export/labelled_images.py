"""The user's labelled images (``--val-dir``): an ImageFolder layout (one subfolder
per class, named like a label), read and checked before any conversion starts,
optionally split into a calibration part (``--calib-from-val``) and a capped,
stratified accuracy part (``--val-count``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from casvit.preprocess import Preprocessing

from .calibration import CalibrationSet, image_count, image_files, read_rgb
from .errors import ExportError


def add_arguments(group) -> None:
    group.add_argument(
        "--val-dir",
        type=Path,
        default=None,
        help="labelled images to measure top-1/top-5 of eager PyTorch and every artifact on: "
        "one subfolder per class, named exactly like a label, holding JPEG/PNG files",
    )
    group.add_argument(
        "--val-count",
        type=image_count,
        default=None,
        help="at most this many --val-dir images (stratified per class, seeded by --seed)",
    )
    group.add_argument(
        "--calib-from-val",
        type=image_count,
        default=None,
        metavar="N",
        help="calibrate int8 on N --val-dir images (stratified) instead of --calib; "
        "they are left out of the accuracy measurement",
    )
    group.add_argument(
        "--max-top1-drop",
        type=float,
        default=None,
        metavar="POINTS",
        help="accuracy gate: largest top-1 drop vs eager, in percentage points, for every artifact "
        "(default per precision: fp32 0, fp16 0.1, int8 and compressed weights 1.0; "
        "a loss of one image always passes)",
    )


def read_image(path: Path, record: Preprocessing) -> np.ndarray:
    """File -> (height, width, 3) uint8 RGB through the export's preprocessing record,
    exactly as the parity and calibration images are prepared."""
    return read_rgb(path, record, what="validation image")


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
        }


def check_options(options: dict) -> None:
    """Option combinations that make no sense are a one-line error before anything runs."""
    if options.get("val_dir") is None:
        given = [
            f"--{k.replace('_', '-')}"
            for k in ("val_count", "calib_from_val", "max_top1_drop")
            if options.get(k) is not None
        ]
        if given:
            raise ExportError(f"{', '.join(given)} needs --val-dir")
    if options.get("calib_from_val") is not None and options.get("calib") is not None:
        raise ExportError("--calib and --calib-from-val both choose the calibration images: give one of them")
    drop = options.get("max_top1_drop")
    if drop is not None and not 0 <= drop <= 100:
        raise ExportError(f"--max-top1-drop must be between 0 and 100 points, got {drop:g}")


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


def load_validation(options: dict, labels: list[str], record: Preprocessing, seed: int) -> ValidationSet | None:
    """The validation set of a run (None without ``--val-dir``), images read and checked
    (its option combinations were checked by ``export.preflight`` before the run)."""
    if options.get("val_dir") is None:
        return None
    root = Path(options["val_dir"]).resolve()
    classes, class_ids, files, targets = class_files(root, labels)
    available = len(files)
    keep = np.arange(available)
    calibration = None
    if options.get("calib_from_val"):
        calib_idx = stratified_take(targets, options["calib_from_val"], seed, "--calib-from-val")
        if len(calib_idx) == available:
            raise ExportError(
                f"--calib-from-val {options['calib_from_val']} takes all {available} images of "
                f"{root}; none would be left to measure accuracy on"
            )
        names = [str(files[i].relative_to(root)) for i in calib_idx]
        calibration = CalibrationSet(
            f"--calib-from-val: {len(calib_idx)} images of {root} (stratified, seed {seed}), "
            "left out of the accuracy measurement",
            names,
            np.stack([read_image(files[i], record) for i in calib_idx]),
        )
        keep = np.setdiff1d(keep, calib_idx)
    if options.get("val_count"):
        keep = keep[stratified_take(targets[keep], options["val_count"], seed, "--val-count")]
    rgb = np.stack([read_image(files[i], record) for i in keep])
    return ValidationSet(
        root,
        classes,
        class_ids,
        [str(files[i].relative_to(root)) for i in keep],
        targets[keep],
        rgb,
        calibration,
        available,
    )
