"""Golden data: the parity inputs and the eager reference logits of an export,
written into the output set so any runtime (an ARM64 check, a phone's
instrumented test, an iOS unit test) can verify an artifact without PyTorch.

``parity_inputs.npz`` (NumPy ``.npz``, no pickled objects) holds:

- ``names``: (N,) unicode, where each input came from (photo name or ``noiseK``);
- ``rgb``: (N, H, W, 3) uint8, the preprocessed pixels every input derives from;
- ``mean``, ``std``: (3,) float32, the per-channel normalization of the export;
- ``logits``: (N, C) float32, eager PyTorch (the eval model) on the normalized input.

An artifact's own input is derived from ``rgb`` by its input convention (the
report's ``input_convention``): ``byte`` = rgb as float32, ``unit`` = rgb / 255,
``normalized`` = (rgb / 255 - mean) / std; NCHW or NHWC as the format takes it.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .fsutil import atomic_write

FILE_NAME = "parity_inputs.npz"


def file_name_at(resolution: str) -> str:
    """The golden file of a further input size (``"96x96"``) of a model that accepts several."""
    return f"parity_inputs_{resolution}.npz"


KEYS = ("names", "rgb", "mean", "std", "logits")


def write(path: Path, names: list[str], rgb: np.ndarray, mean, std, logits: np.ndarray) -> None:
    buffer = io.BytesIO()
    np.savez(
        buffer,
        names=np.asarray(names, dtype=np.str_),
        rgb=np.asarray(rgb, np.uint8),
        mean=np.asarray(mean, np.float32),
        std=np.asarray(std, np.float32),
        logits=np.asarray(logits, np.float32),
    )
    atomic_write(path, buffer.getvalue())


def read(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a golden file; a missing key or a shape mismatch is a ValueError."""
    with np.load(path, allow_pickle=False) as data:
        missing = [k for k in KEYS if k not in data.files]
        if missing:
            raise ValueError(f"{path}: not a golden-data file (missing {', '.join(missing)})")
        out = {k: data[k] for k in KEYS}
    n = len(out["names"])
    if out["rgb"].ndim != 4 or out["rgb"].shape[0] != n or out["logits"].shape[0] != n:
        raise ValueError(f"{path}: names, rgb and logits disagree on the number of inputs")
    return out
