"""Compile-time (``constexpr_*``) MIL ops: compressed weights decompressed once, when a
program is loaded, in NumPy. Each computes in float32 and returns the dtype of its
scale or lookup table, as coremltools' own ``decompress`` does."""

from __future__ import annotations

import numpy as np

from .errors import ProgramError


def _scalar(x):
    return np.asarray(x).item()


def lut_to_dense_ios16(lut, indices, shape):
    """Palettized weight (iOS 16 form): n-bit indices packed little-endian into bytes."""
    shape = tuple(int(s) for s in shape)
    nbits = int(np.log2(lut.size))
    if 2**nbits != lut.size:
        raise ProgramError("constexpr_lut_to_dense: the lookup table size is not a power of two")
    count = int(np.prod(shape))
    bits = np.unpackbits(np.asarray(indices, np.uint8), bitorder="little")[: count * nbits].reshape(count, nbits)
    index = (bits.astype(np.int64) << np.arange(nbits)).sum(axis=1)
    return np.asarray(lut)[index].reshape(shape)


def lut_to_dense_ios18(indices, lut, vector_axis=None):
    """Palettized weight (iOS 18 form): one table per block, ``lut`` = [*blocks, palette, 1]."""
    indices, lut = np.asarray(indices), np.asarray(lut)
    if vector_axis is not None or lut.shape[-1] != 1 or lut.ndim != indices.ndim + 2:
        raise ProgramError("constexpr_lut_to_dense: vector palettization is not supported")
    block = [d // b for d, b in zip(indices.shape, lut.shape[:-2])]
    coords = np.ix_(*(np.arange(d) // s for d, s in zip(indices.shape, block)))
    tables = lut[..., 0]
    return tables[(*coords, indices.astype(np.int64))]


def lut_to_dense(**args):
    """Both forms of constexpr_lut_to_dense: iOS 16 has a ``shape`` attribute, iOS 18 does not."""
    return lut_to_dense_ios16(**args) if "shape" in args else lut_to_dense_ios18(**args)


def affine_dequantize(quantized_data, zero_point, scale, axis):
    """Linear-quantized weight (iOS 16 form): (q - zero_point) * scale along ``axis``
    (each of zero point and scale a scalar or a vector)."""
    q = np.asarray(quantized_data)
    shape = [1] * q.ndim
    shape[int(_scalar(axis))] = -1
    zp, sc = (np.asarray(p).astype(np.float32) for p in (zero_point, scale))
    zp, sc = (p.reshape(shape) if p.ndim else p for p in (zp, sc))
    return ((q.astype(np.float32) - zp) * sc).astype(np.asarray(scale).dtype)


def blockwise_shift_scale(data, scale, offset=None):
    """Linear-quantized weight (iOS 18 form): (data - offset) * scale, one scale per block."""
    data, scale = np.asarray(data), np.asarray(scale)
    out = data.astype(np.float32)
    if offset is not None:
        out = out - _expand_blocks(np.asarray(offset, np.float32), data.shape)
    return (out * _expand_blocks(scale.astype(np.float32), data.shape)).astype(scale.dtype)


def _expand_blocks(params: np.ndarray, shape) -> np.ndarray:
    for axis, (d, p) in enumerate(zip(shape, params.shape)):
        if p != d:
            params = np.repeat(params, d // p, axis=axis)
    return params


# op type -> implementation, called once per op when the program is loaded.
CONSTEXPR_OPS = {
    "constexpr_lut_to_dense": lut_to_dense,
    "constexpr_affine_dequantize": affine_dequantize,
    "constexpr_blockwise_shift_scale": blockwise_shift_scale,
}
