"""NumPy implementations of the MIL ops the audit allows. Hand-written: no library
executes a Core ML program off macOS. Each op computes in float32 (float64 for
float64 inputs); the caller rounds every output to the dtype the program declares,
so an fp16 program rounds after every op as the device does."""

from __future__ import annotations

import numpy as np
from scipy.special import erf

from .errors import ProgramError
from .values import CAST_DTYPES


def _f(x) -> np.ndarray:
    """Compute dtype of a float operand."""
    x = np.asarray(x)
    return x.astype(np.float64 if x.dtype == np.float64 else np.float32, copy=False)


def _scalar(x):
    return np.asarray(x).item()


def conv(x, weight, bias=None, strides=(1, 1), pad_type="valid", pad=(0, 0, 0, 0), dilations=(1, 1), groups=1):
    """2-D convolution, NCHW input (any batch), (Cout, Cin/groups, kh, kw) weight, in float32.

    Vectorized on NumPy's own routines: a 1x1 convolution is one matmul, a
    depthwise one a multiply-add per kernel tap, any other an im2col view
    (``sliding_window_view``) contracted with the weight by one BLAS product per group."""
    x, weight = _f(x), _f(weight)
    if x.ndim != 4 or weight.ndim != 4:
        raise ProgramError("conv: the reference interpreter supports 2-D convolution only")
    groups, (sh, sw), (dh, dw) = int(_scalar(groups)), (int(s) for s in strides), (int(d) for d in dilations)
    cout, cin_g, kh, kw = weight.shape
    top, bottom, left, right = _conv_padding(x.shape[2:], (kh, kw), (sh, sw), (dh, dw), str(_scalar(pad_type)), pad)
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right))) if top or bottom or left or right else x
    if cin_g == 1 and cout == groups == x.shape[1]:
        out = _depthwise(xp, weight, (sh, sw), (dh, dw))
    elif kh == kw == 1:
        out = _pointwise(xp[:, :, ::sh, ::sw], weight, groups)
    else:
        out = _im2col(xp, weight, (sh, sw), (dh, dw), groups)
    if bias is not None:
        out += _f(bias).reshape(1, cout, 1, 1)
    return out


def _conv_padding(size, kernel, strides, dilations, pad_type: str, pad) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) for MIL's pad types."""
    if pad_type == "custom":
        return tuple(int(p) for p in pad)
    if pad_type == "valid":
        return 0, 0, 0, 0
    if pad_type not in ("same", "same_lower"):
        raise ProgramError(f"conv: pad_type {pad_type!r} is not supported")
    total = [max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0) for n, k, s, d in zip(size, kernel, strides, dilations)]
    first = [t - t // 2 if pad_type == "same_lower" else t // 2 for t in total]
    return first[0], total[0] - first[0], first[1], total[1] - first[1]


def _out_size(xp: np.ndarray, kernel, strides, dilations) -> tuple[int, int]:
    return tuple((n - (k - 1) * d - 1) // s + 1 for n, k, s, d in zip(xp.shape[2:], kernel, strides, dilations))


def _pointwise(x: np.ndarray, weight: np.ndarray, groups: int) -> np.ndarray:
    n, c, h, w = x.shape
    cout = weight.shape[0]
    w_g = weight.reshape(groups, cout // groups, c // groups)
    out = np.matmul(w_g, x.reshape(n, groups, c // groups, h * w))
    return out.reshape(n, cout, h, w)


def _depthwise(xp: np.ndarray, weight: np.ndarray, strides, dilations) -> np.ndarray:
    """One multiply-add per kernel tap over the whole batch (no copy of the strided taps)."""
    (kh, kw), (sh, sw), (dh, dw) = weight.shape[2:], strides, dilations
    ho, wo = _out_size(xp, (kh, kw), strides, dilations)
    out = np.zeros((xp.shape[0], xp.shape[1], ho, wo), xp.dtype)
    scratch = np.empty_like(out)
    for i in range(kh):
        for j in range(kw):
            tap = xp[:, :, i * dh : i * dh + sh * (ho - 1) + 1 : sh, j * dw : j * dw + sw * (wo - 1) + 1 : sw]
            np.multiply(tap, weight[None, :, 0, i, j, None, None], out=scratch)
            out += scratch
    return out


def _im2col(xp: np.ndarray, weight: np.ndarray, strides, dilations, groups: int) -> np.ndarray:
    """Every output pixel's receptive field as a view, contracted over (channel, kh, kw)."""
    from numpy.lib.stride_tricks import sliding_window_view

    (cout, cin_g, kh, kw), (sh, sw), (dh, dw) = weight.shape, strides, dilations
    n = xp.shape[0]
    ho, wo = _out_size(xp, (kh, kw), strides, dilations)
    span = ((kh - 1) * dh + 1, (kw - 1) * dw + 1)
    windows = sliding_window_view(xp, span, axis=(2, 3))[
        :, :, : (ho - 1) * sh + 1 : sh, : (wo - 1) * sw + 1 : sw, ::dh, ::dw
    ]
    windows = windows.reshape(n, groups, cin_g, ho, wo, kh, kw)
    w_g = weight.reshape(groups, cout // groups, cin_g, kh, kw)
    out = np.stack([np.tensordot(windows[:, g], w_g[g], axes=([1, 4, 5], [1, 2, 3])) for g in range(groups)], axis=1)
    return np.ascontiguousarray(out.transpose(0, 1, 4, 2, 3)).reshape(n, cout, ho, wo)


def gelu(x, mode="EXACT"):
    """GELU in the input's compute dtype (NumPy promotes to float64 on a float64
    scalar constant, so the constants are cast first); EXACT works in place."""
    x, mode = _f(x), str(_scalar(mode))
    c = x.dtype.type
    if mode == "EXACT":
        out = np.multiply(x, c(1.0 / np.sqrt(2.0)))
        erf(out, out=out)
        out += c(1.0)
        out *= x
        out *= c(0.5)
        return out
    if mode == "TANH_APPROXIMATION":
        return c(0.5) * x * (c(1.0) + np.tanh(c(np.sqrt(2.0 / np.pi)) * (x + c(0.044715) * x**3)))
    if mode == "SIGMOID_APPROXIMATION":
        return x / (c(1.0) + np.exp(c(-1.702) * x))
    raise ProgramError(f"gelu: mode {mode!r} is not supported")


def sigmoid(x):
    x = _f(x)
    return np.exp(-np.logaddexp(0, -x)).astype(x.dtype)  # 1 / (1 + e^-x) without overflow warnings


def reduce_mean(x, axes=None, keep_dims=False):
    x = _f(x)
    axes = tuple(int(a) for a in np.atleast_1d(axes)) if axes is not None else None
    return x.mean(axis=axes, keepdims=bool(_scalar(keep_dims)), dtype=x.dtype)


def split(x, axis, num_splits=None, split_sizes=None):
    axis = int(_scalar(axis))
    if split_sizes is not None:
        return np.split(x, np.cumsum(np.asarray(split_sizes))[:-1], axis=axis)
    return np.split(x, int(_scalar(num_splits)), axis=axis)


def reshape(x, shape):
    return np.reshape(x, tuple(int(s) for s in shape))


def cast(x, dtype):
    name = str(_scalar(dtype))
    if name not in CAST_DTYPES:
        raise ProgramError(f"cast: dtype {name!r} is not supported")
    return np.asarray(x).astype(CAST_DTYPES[name])


def classify(probabilities, classes):
    """Core ML's classifier op: the top label and a label -> score dictionary of the
    scores it is given (the softmax probabilities the export puts in front of it)."""
    scores = np.asarray(probabilities, np.float64).reshape(-1)
    labels = [np.asarray(c).item() for c in classes]
    if len(labels) != scores.size:
        raise ProgramError(f"classify: {len(labels)} class labels for {scores.size} scores")
    return labels[int(np.argmax(scores))], dict(zip(labels, scores.tolist()))


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


def affine_dequantize(quantized_data, zero_point, scale, axis):
    """Linear-quantized weight (iOS 16 form): (q - zero_point) * scale along ``axis``."""
    q = np.asarray(quantized_data)
    axis = int(_scalar(axis))
    shape = [1] * q.ndim
    zp, sc = np.asarray(zero_point), np.asarray(scale)
    if zp.ndim:
        shape[axis] = -1
    zp = zp.astype(np.float32).reshape(shape if zp.ndim else ())
    sc = sc.astype(np.float32).reshape(shape if sc.ndim else ())
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


def binary(fn):
    def op(x, y):
        return fn(_f(x), _f(y))

    return op


def lut_to_dense(**args):
    """Both forms of constexpr_lut_to_dense: iOS 16 has a ``shape`` attribute, iOS 18 does not."""
    return lut_to_dense_ios16(**args) if "shape" in args else lut_to_dense_ios18(**args)


def relu(x):
    return np.maximum(_f(x), 0)


def softmax(x, axis=-1):
    """MIL softmax: exp(x - max) / sum along ``axis`` (max subtracted for stability)."""
    x, axis = _f(x), int(_scalar(axis))
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


# op type -> implementation ("const" is resolved by the loader).
OPS = {
    "conv": conv,
    "add": binary(np.add),
    "mul": binary(np.multiply),
    "sigmoid": sigmoid,
    "relu": relu,
    "gelu": gelu,
    "reduce_mean": reduce_mean,
    "split": split,
    "reshape": reshape,
    "cast": cast,
    "classify": classify,
    "constexpr_lut_to_dense": lut_to_dense,
    "constexpr_affine_dequantize": affine_dequantize,
    "constexpr_blockwise_shift_scale": blockwise_shift_scale,
    "softmax": softmax,
}
SUPPORTED_OPS = frozenset({"const", *OPS})
