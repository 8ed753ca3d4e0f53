"""Calibration images for int8 quantization: a user folder of JPEG/PNG files or,
by default, the real photos bundled with scikit-image. Every image goes through
the export's preprocessing record (``Preprocessing.resize_rgb``), exactly like
the parity inputs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from casvit.preprocess import Preprocessing

from .errors import ExportError
from .inputs import CALIBRATION_PHOTOS, calibration_images

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
DEFAULT_COUNT = 100


@dataclass
class CalibrationSet:
    """``rgb`` is an (N, H, W, 3) uint8 batch; ``names`` says where each image came from."""

    source: str
    names: list[str]
    rgb: np.ndarray

    def describe(self) -> dict:
        return {"source": self.source, "count": len(self.names), "images": self.names}


def image_files(folder: Path) -> list[Path]:
    """JPEG/PNG files directly in ``folder``, sorted by name (hidden files skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ExportError(f"calibration folder not found: {folder}")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ExportError(f"calibration folder {folder} has no images (expected {', '.join(IMAGE_SUFFIXES)} files)")
    return files


def read_rgb(path: Path, record: Preprocessing) -> np.ndarray:
    """One image file as the record's (height, width, 3) uint8 pixels; grayscale or other modes are refused."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()  # decode now so a truncated file fails here, not later
            if image.mode != "RGB":
                raise ExportError(f"calibration image {path} is {_mode_name(image.mode)}, not RGB; "
                                  "convert it to RGB or remove it")
            return record.resize_rgb(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ExportError(f"calibration image {path} cannot be read: {e}") from None


def _mode_name(mode: str) -> str:
    names = {"L": "grayscale", "LA": "grayscale with alpha", "I;16": "16-bit grayscale", "I": "32-bit grayscale",
             "1": "black-and-white", "P": "a palette image", "RGBA": "RGB with alpha", "CMYK": "CMYK"}
    return names.get(mode, f"mode {mode!r}")


def load_calibration(record: Preprocessing, folder: Path | None = None, count: int = DEFAULT_COUNT) -> CalibrationSet:
    """Up to ``count`` images from ``folder`` (first by name) or from the bundled photos."""
    if count < 1:
        raise ExportError(f"calibration count must be at least 1, got {count}")
    if folder is None:
        images = calibration_images()
        chosen = images[:count]
        return CalibrationSet(f"scikit-image bundled photos disjoint from the parity inputs "
                              f"({len(images)} available: {len(CALIBRATION_PHOTOS)} photos and their quadrants)",
                              [f"skimage.data.{n}" for n, _ in chosen],
                              np.stack([record.resize_rgb(img) for _, img in chosen]))
    files = image_files(folder)[:count]
    rgb = [read_rgb(f, record) for f in files]
    return CalibrationSet(f"folder {Path(folder).resolve()}", [f.name for f in files], np.stack(rgb))

