"""Calibration images for int8 quantization: a user folder of JPEG/PNG files or,
by default, the real photos bundled with scikit-image. Every image goes through
the export's preprocessing record (``Preprocessing.resize_rgb``), exactly like
the parity inputs."""

from __future__ import annotations

import argparse
import contextlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from casvit.preprocess import Preprocessing

from .errors import ExportError, first_line
from .inputs import CALIBRATION_PHOTOS, calibration_images

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
DEFAULT_COUNT = 100


def image_count(text: str) -> int:
    """argparse type of an image-count option: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of images >= 1, got {text!r}")
    return value


@dataclass
class CalibrationSet:
    """``rgb`` is an (N, H, W, 3) uint8 batch; ``names`` says where each image came from."""

    source: str
    names: list[str]
    rgb: np.ndarray

    def describe(self) -> dict:
        return {"source": self.source, "count": len(self.names), "images": self.names}


def image_files(folder: Path, what: str = "calibration folder") -> list[Path]:
    """JPEG/PNG files directly in ``folder``, sorted by name (hidden files skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ExportError(f"{what} not found: {folder}")
    files = sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise ExportError(f"{what} {folder} has no images (expected {', '.join(IMAGE_SUFFIXES)} files)")
    return files


@contextlib.contextmanager
def _open_rgb(path: Path, what: str = "calibration image"):
    """The image at ``path`` opened with Pillow (header only), refused with a one-line
    ExportError when it is not RGB, cannot be read or is over Pillow's
    decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``; Pillow only warns up to
    twice that, here it is an error too)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.mode != "RGB":
                    raise ExportError(
                        f"{what} {path} is {_mode_name(image.mode)}, not RGB; convert it to RGB or remove it"
                    )
                yield image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ExportError(
            f"{what} {path} is over Pillow's decompression-bomb limit of "
            f"{Image.MAX_IMAGE_PIXELS} pixels; downscale it or remove it"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ExportError(f"{what} {path} cannot be read: {first_line(e)}") from None


def _decode(image, path: Path, what: str) -> None:
    """Decode the pixels now, so a truncated or corrupt file fails with one line here."""
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as e:
        raise ExportError(f"{what} {path} cannot be read: {first_line(e)}") from None


def read_rgb(path: Path, record: Preprocessing, what: str = "calibration image") -> np.ndarray:
    """One image file as the record's (height, width, 3) uint8 pixels; grayscale or other modes are refused."""
    with _open_rgb(path, what) as image:
        _decode(image, path, what)
        return record.resize_rgb(image)


def check_calibration_folder(folder: Path, count: int = DEFAULT_COUNT) -> None:
    """Before any conversion: the folder has images, and the ``count`` that will be
    used decode as RGB within Pillow's limits (a truncated file fails here)."""
    if count < 1:
        raise ExportError(f"calibration count must be at least 1, got {count}")
    for path in image_files(folder)[:count]:
        with _open_rgb(path) as image:
            _decode(image, path, "calibration image")


def _mode_name(mode: str) -> str:
    names = {
        "L": "grayscale",
        "LA": "grayscale with alpha",
        "I;16": "16-bit grayscale",
        "I": "32-bit grayscale",
        "1": "black-and-white",
        "P": "a palette image",
        "RGBA": "RGB with alpha",
        "CMYK": "CMYK",
    }
    return names.get(mode, f"mode {mode!r}")


def load_calibration(record: Preprocessing, folder: Path | None = None, count: int = DEFAULT_COUNT) -> CalibrationSet:
    """Up to ``count`` images from ``folder`` (first by name) or from the bundled photos."""
    if count < 1:
        raise ExportError(f"calibration count must be at least 1, got {count}")
    if folder is None:
        images = calibration_images()
        chosen = images[:count]
        return CalibrationSet(
            f"scikit-image bundled photos disjoint from the parity inputs "
            f"({len(images)} available: {len(CALIBRATION_PHOTOS)} photos and their quadrants)",
            [f"skimage.data.{n}" for n, _ in chosen],
            np.stack([record.resize_rgb(img) for _, img in chosen]),
        )
    files = image_files(folder)[:count]
    rgb = [read_rgb(f, record) for f in files]
    return CalibrationSet(f"folder {Path(folder).resolve()}", [f.name for f in files], np.stack(rgb))
