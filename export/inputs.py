"""Parity and calibration inputs: real photos from scikit-image plus seeded noise,
all as RGB uint8 so every input convention derives from the same pixels."""

from __future__ import annotations

import numpy as np

from casvit.preprocess import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
# Real RGB photos bundled with scikit-image that are NOT parity inputs (``cat`` is
# the same image as ``chelsea``, so it is left out): int8 calibration must not
# see the images its parity is measured on.
CALIBRATION_PHOTOS = ("hubble_deep_field", "immunohistochemistry", "retina", "colorwheel")
CONVENTIONS = ("normalized", "unit", "byte")


def photo(name: str) -> np.ndarray:
    import skimage.data

    return getattr(skimage.data, name)()


def calibration_images() -> list[tuple[str, np.ndarray]]:
    """The calibration photos whole, then their four quadrants: 20 real images."""
    out = []
    for name in CALIBRATION_PHOTOS:
        full = photo(name)
        out.append((name, full))
    for name in CALIBRATION_PHOTOS:
        full = photo(name)
        h, w = full.shape[0] // 2, full.shape[1] // 2
        for i, (y, x) in enumerate(((0, 0), (0, w), (h, 0), (h, w))):
            out.append((f"{name}[quadrant {i}]", np.ascontiguousarray(full[y : y + h, x : x + w])))
    return out


def parity_images(record: Preprocessing, noise: int = 2, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Names and an (N, H, W, 3) uint8 batch: the bundled photos through the
    preprocessing record, then ``noise`` seeded uniform-noise images."""
    rgb = [record.resize_rgb(photo(n)) for n in PHOTOS]
    rng = np.random.default_rng(seed)
    rgb += [rng.integers(0, 256, (record.height, record.width, 3), dtype=np.uint8) for _ in range(noise)]
    return list(PHOTOS) + [f"noise{i}" for i in range(noise)], np.stack(rgb)


def photo_mask(names: list[str]) -> np.ndarray:
    """Which of :func:`parity_images`' inputs are photos (the rest are seeded noise)."""
    return np.array([name in PHOTOS for name in names])


def to_convention(rgb: np.ndarray, convention: str, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 in the given input convention."""
    x = rgb.astype(np.float32).transpose(0, 3, 1, 2)
    if convention == "byte":
        return np.ascontiguousarray(x)
    x = x / np.float32(255.0)
    if convention == "unit":
        return np.ascontiguousarray(x)
    if convention == "normalized":
        m = np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
        s = np.asarray(std, np.float32).reshape(1, 3, 1, 1)
        return np.ascontiguousarray((x - m) / s, dtype=np.float32)
    raise ValueError(f"unknown input convention {convention!r}; expected one of {CONVENTIONS}")
