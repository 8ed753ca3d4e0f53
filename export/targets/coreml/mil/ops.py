"""The MIL ops the audit allows, on torch tensors (CPU kernels; torch is a core
dependency). Hand-written: no library executes a Core ML program off macOS.

Every op computes in float32 (float64 for float64 inputs) and the caller rounds its
output to the dtype the program declares, so an fp16 program rounds after every op
as the device does. fp16 elementwise ops run on torch's Half kernels, which compute
in float32 and round once (``tests/test_mil_interpreter.py`` checks them bit for bit
against that rule); convolutions, reductions and softmax convert to float32 first.
4-D activations are kept channels-last, the layout whose CPU convolutions are fastest."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .constexpr import CONSTEXPR_OPS
from .errors import ProgramError

# cast's dtype strings.
CAST_DTYPES = {
    "fp16": torch.float16,
    "fp32": torch.float32,
    "int32": torch.int32,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
# Output range and dtype of quantize, by its ``output_dtype``.
QUANTIZED = {"int8": (-128, 127, torch.int8), "uint8": (0, 255, torch.uint8)}


def tensor(x) -> torch.Tensor:
    """A torch view of a NumPy value (constants and feeds); tensors pass through."""
    if isinstance(x, torch.Tensor):
        return x
    x = np.asarray(x)
    return torch.from_numpy(x if x.flags.c_contiguous else x.copy())


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """float64 for float64 operands, float32 for every other."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _float(x) -> torch.Tensor:
    """A float operand in its compute dtype."""
    x = tensor(x)
    return x.to(_compute_dtype(x))


def _scalar(x):
    return x.item() if isinstance(x, torch.Tensor) else np.asarray(x).item()


def _ints(values) -> tuple[int, ...]:
    return tuple(int(v) for v in np.asarray(values).reshape(-1))


def conv(x, weight, bias=None, strides=(1, 1), pad_type="valid", pad=(0, 0, 0, 0), dilations=(1, 1), groups=1):
    """2-D convolution, NCHW input (any batch), (Cout, Cin/groups, kh, kw) weight, in float32
    (torch's CPU kernel, on a channels-last copy of the input)."""
    x = _float(x)
    w = tensor(weight).to(x.dtype)
    if x.dim() != 4 or w.dim() != 4:
        raise ProgramError("conv: the reference interpreter supports 2-D convolution only")
    strides, dilations, groups = _ints(strides), _ints(dilations), int(_scalar(groups))
    top, bottom, left, right = _conv_padding(
        x.shape[2:], w.shape[2:], strides, dilations, str(_scalar(pad_type)), _ints(pad)
    )
    padding = (top, left)
    if (top, left) != (bottom, right):
        x, padding = F.pad(x, (left, right, top, bottom)), (0, 0)
    x = x.contiguous(memory_format=torch.channels_last)
    b = None if bias is None else tensor(bias).to(x.dtype)
    return F.conv2d(x, w, b, strides, padding, dilations, groups)


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


def gelu(x, mode="EXACT"):
    """GELU in float32 (torch's exact and tanh forms; the sigmoid form written out)."""
    x, mode = tensor(x), str(_scalar(mode))
    if mode == "EXACT":
        return F.gelu(x)
    if mode == "TANH_APPROXIMATION":
        return F.gelu(x, approximate="tanh")
    if mode == "SIGMOID_APPROXIMATION":
        return x * torch.sigmoid(x * 1.702)
    raise ProgramError(f"gelu: mode {mode!r} is not supported")


def reduce_mean(x, axes=None, keep_dims=False):
    x = tensor(x)
    dims = _ints(axes) if axes is not None else tuple(range(x.dim()))
    return torch.mean(x, dim=dims, keepdim=bool(_scalar(keep_dims)), dtype=_compute_dtype(x))


def split(x, axis, num_splits=None, split_sizes=None):
    x, axis = tensor(x), int(_scalar(axis))
    if split_sizes is not None:
        return list(torch.split(x, list(_ints(split_sizes)), dim=axis))
    return list(torch.tensor_split(x, int(_scalar(num_splits)), dim=axis))


def reshape(x, shape):
    return tensor(x).reshape(_ints(shape))


def cast(x, dtype):
    name = str(_scalar(dtype))
    if name not in CAST_DTYPES:
        raise ProgramError(f"cast: dtype {name!r} is not supported")
    return tensor(x).to(CAST_DTYPES[name])


def classify(probabilities, classes):
    """Core ML's classifier op: the top label and a label -> score dictionary of the
    scores it is given (the softmax probabilities the export puts in front of it)."""
    scores = tensor(probabilities).double().reshape(-1).numpy()
    labels = [np.asarray(c).item() for c in classes]
    if len(labels) != scores.size:
        raise ProgramError(f"classify: {len(labels)} class labels for {scores.size} scores")
    return labels[int(np.argmax(scores))], dict(zip(labels, scores.tolist()))


def softmax(x, axis=-1):
    """MIL softmax: exp(x - max) / sum along ``axis``, in float32."""
    return torch.softmax(_float(x), dim=int(_scalar(axis)))


def _along(param, like: torch.Tensor, axis):
    """A quantization scale or zero point in ``like``'s dtype, ready to broadcast against
    it: a scalar as a Python float (torch's fast scalar kernels; the same float32
    arithmetic), a vector shaped along ``axis`` (per channel)."""
    param = tensor(param)
    if param.dim() == 0:
        return float(param)
    if param.dim() != 1 or axis is None:
        raise ProgramError("quantize/dequantize: scale and zero point must be scalars, or vectors with an axis")
    shape = [1] * like.dim()
    shape[int(_scalar(axis)) % like.dim()] = -1
    return param.reshape(shape).to(like.dtype)


def _range(output_dtype) -> tuple[int, int, torch.dtype]:
    name = str(_scalar(output_dtype))
    if name not in QUANTIZED:
        raise ProgramError(f"quantize: output_dtype {name!r} is not supported")
    return QUANTIZED[name]


def _rounded_quotient(x: torch.Tensor, scale, axis) -> torch.Tensor:
    """round(x / scale), the division in x's dtype (an fp16 program rounds it to fp16),
    rounding half to even."""
    return torch.round(x / _along(scale, x, axis))


def quantize(input, scale, output_dtype, zero_point=None, axis=None):
    """MIL quantize: clip(round(input / scale) + zero_point) to int8 or uint8.

    As coremltools' own implementation (``optimize._utils.quantize_by_scale_and_zp``):
    the division in the input's dtype (an fp16 program rounds it to fp16), rounding
    half to even, the zero point added before saturating to the output range."""
    x = tensor(input)
    low, high, dtype = _range(output_dtype)
    q = _rounded_quotient(x, scale, axis)
    if zero_point is not None:
        q += _along(zero_point, x, axis)
    return q.clamp_(low, high).to(dtype)


def dequantize(input, scale, zero_point=None, axis=None):
    """MIL dequantize: (input - zero_point) * scale, in the scale's dtype (exact up to the
    one rounding of the product: |input - zero_point| <= 255 is exact in fp16)."""
    q = tensor(input)
    x = q.to(tensor(scale).dtype)
    if zero_point is not None:
        x -= _along(zero_point, x, axis)
    return x.mul_(_along(scale, x, axis))


def fake_quantize(input, scale, output_dtype, zero_point=None, axis=None):
    """dequantize(quantize(input)) with the same parameters, in one pass and without the
    integer tensor: clip(round(input / scale), low - zero_point, high - zero_point) * scale.
    Bit for bit the two ops: the integers involved are exact in fp16 and float32, and the
    one product is rounded once, as dequantize rounds it."""
    x = tensor(input)
    low, high, _ = _range(output_dtype)
    q = _rounded_quotient(x, scale, axis)
    zp = 0.0 if zero_point is None else _along(zero_point, x, axis)
    if isinstance(zp, float):
        q.clamp_(low - zp, high - zp)
    else:
        torch.clamp(q, low - zp, high - zp, out=q)
    return q.mul_(_along(scale, x, axis))


def _binary(fn):
    def op(x, y):
        return fn(tensor(x), tensor(y))

    return op


# op type -> implementation ("const" is resolved by the loader, constexpr ops are folded there).
OPS = {
    "conv": conv,
    "add": _binary(torch.add),
    "mul": _binary(torch.mul),
    "sigmoid": lambda x: torch.sigmoid(tensor(x)),
    "relu": lambda x: torch.relu(tensor(x)),
    "gelu": gelu,
    "reduce_mean": reduce_mean,
    "split": split,
    "reshape": reshape,
    "cast": cast,
    "classify": classify,
    "softmax": softmax,
    "quantize": quantize,
    "dequantize": dequantize,
}
SUPPORTED_OPS = frozenset({"const", *OPS, *CONSTEXPR_OPS})
