"""Calibration images for int8 quantization: a user folder of JPEG/PNG files or,
by default, the real photos bundled with scikit-image. Every image goes through
the export's preprocessing record (``Preprocessing.resize_rgb``), exactly like
the parity inputs."""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from casvit.preprocess import Preprocessing

from .errors import ExportError, first_line
from .inputs import CALIBRATION_PHOTOS, calibration_images

# The file types torchvision's ImageFolder takes (IMG_EXTENSIONS).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
DEFAULT_COUNT = 100


@dataclass
class CalibrationSet:
    """``rgb`` is an (N, H, W, 3) uint8 batch; ``names`` says where each image came from."""

    source: str
    names: list[str]
    rgb: np.ndarray
    converted: dict[str, int] = field(default_factory=dict)  # stored mode -> images converted to RGB

    def describe(self) -> dict:
        return {
            "source": self.source,
            "count": len(self.names),
            "images": self.names,
            "converted_to_rgb": self.converted,
        }


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
def _open_image(path: Path, what: str = "calibration image"):
    """The image at ``path`` opened with Pillow (header only), refused with a one-line
    ExportError when it cannot be read or is over Pillow's decompression-bomb limit
    (``Image.MAX_IMAGE_PIXELS``; Pillow only warns up to twice that, here it is an error too)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                yield image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ExportError(
            f"{what} {path} is over Pillow's decompression-bomb limit of "
            f"{Image.MAX_IMAGE_PIXELS} pixels; downscale it or remove it"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ExportError(f"{what} {path} cannot be read: {first_line(e)}") from None


def read_rgb(path: Path, record: Preprocessing, what: str = "calibration image") -> tuple[np.ndarray, str]:
    """One image file as the record's (height, width, 3) uint8 pixels, and the mode it
    was stored in. Any mode is converted the way torchvision's ImageFolder loader does,
    ``Image.convert("RGB")`` (grayscale, palette, RGBA, CMYK, 16-bit)."""
    with _open_image(path, what) as image:
        try:
            image.load()  # decode now so a truncated file fails here, not later
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # Pillow's note on palette transparency: convert() drops alpha
                rgb = image if image.mode == "RGB" else image.convert("RGB")
        except (OSError, SyntaxError, ValueError) as e:
            raise ExportError(f"{what} {path} cannot be read: {first_line(e)}") from None
        return record.resize_rgb(rgb), image.mode


def converted_modes(modes: list[str]) -> dict[str, int]:
    """How many images of each stored mode other than RGB were converted to RGB."""
    return {mode: modes.count(mode) for mode in sorted(set(modes)) if mode != "RGB"}


def check_calibration_folder(folder: Path, count: int = DEFAULT_COUNT) -> None:
    """Before any conversion: the folder has images, and the ``count`` that will be
    used open within Pillow's limits (headers only; decoding comes later)."""
    if count < 1:
        raise ExportError(f"calibration count must be at least 1, got {count}")
    for path in image_files(folder)[:count]:
        with _open_image(path):
            pass


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
    rgb, modes = zip(*(read_rgb(f, record) for f in files))
    return CalibrationSet(
        f"folder {Path(folder).resolve()}", [f.name for f in files], np.stack(rgb), converted_modes(list(modes))
    )
