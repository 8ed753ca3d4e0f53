"""LiteRT tensor input/output conversion: float32 to a tensor's dtype and back, with
its (scale, zero_point) where the tensor is integer. Used by the TFLite target's
runtime, the benchmarks and the peer tools; ``export/verify_arm/runner.py`` keeps a
copy because it runs where the project is not installed (a test holds the two equal)."""

from __future__ import annotations

import numpy as np


def quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    """float32 -> a LiteRT tensor's dtype, using its (scale, zero_point) for int8/uint8."""
    dtype = np.dtype(detail["dtype"])
    if dtype == np.float32:
        return x.astype(np.float32)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    """A LiteRT output tensor -> float32, using its (scale, zero_point) when integer."""
    if np.dtype(detail["dtype"]) == np.float32:
        return y.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)
