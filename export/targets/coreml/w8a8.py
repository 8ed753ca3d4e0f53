"""W8A8 programs (int8 weights and int8 activations) calibrated on Linux.

coremltools' ``linear_quantize_activations`` measures activation ranges by running the
model in the Core ML runtime (macOS only). Its graph passes take those ranges as a
dictionary ({MIL value name: {"rmin", "rmax"}}), so here the reference interpreter
(``mil``) measures them on the calibration images over the fp16 program, and the same
passes (``compression::insert_prefix_quantize_dequantize_pair``,
``compression::insert_suffix_quantize_dequantize_pair``,
``common::dequantize_quantize_pair_elimination``), then ``linear_quantize_weights``,
run inside the conversion of the W8A8 program. Choices, measured on the seeded xs model
and the digits checkpoint (docs/notes-issue24.md): affine int8 activations (a zero point),
min/max ranges (a histogram search did not pay), the adds left in fp16 (the residual
stream is not rounded to int8 after every block), every conv weight int8 per output
channel with its bias corrected for the rounding of its weights."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from ...inputs import to_convention
from .convert import INPUT_NAME, LOGITS_NAME, PROBABILITIES_NAME, pipeline, trace
from .convert import program as convert_program
from .mil import Program
from .outputs import expose_logits

ACTIVATION_MODE = "linear"  # affine int8 (a zero point per tensor)
WEIGHT_MODE = "linear_symmetric"  # int8 per output channel, no zero point
# Every conv weight (coremltools' default threshold, 2048 elements, keeps the small ones
# in fp16); coremltools never compresses a constant of fewer than 10 elements.
WEIGHT_THRESHOLD, SMALLEST_COMPRESSED = 0, 10
FLOAT_OPS = ("add",)  # op types the activation passes leave alone
MINIMUM_TARGET = "iOS17"  # quantize/dequantize are iOS 17 ops
CALIBRATION_BATCH = 16
# What the report says about a W8A8 package.
DESCRIPTION = {
    "activations": f"int8 per tensor ({ACTIVATION_MODE}: with a zero point) at the inputs and outputs of the "
    "convolutions, ranges = min/max over the calibration images (reference interpreter, fp16 program); "
    f"{', '.join(FLOAT_OPS)} ops, GELU, the gate products and the means in fp16",
    "weights": f"int8 per output channel ({WEIGHT_MODE}), every conv; biases corrected for the weight rounding",
    "passes": [
        "compression::insert_prefix_quantize_dequantize_pair",
        "compression::insert_suffix_quantize_dequantize_pair",
        "common::dequantize_quantize_pair_elimination",
        "compression::linear_quantize_weights",
    ],
}


def quantized_weight(weight: torch.Tensor) -> torch.Tensor:
    """The float32 values coremltools' ``linear_quantize_weights`` gives a conv weight of an
    fp16 program: the weight rounded to fp16, then int8 per output channel (its own code)."""
    from coremltools.converters.mil.mil import types
    from coremltools.optimize import _utils

    w16 = weight.detach().to(torch.float16).numpy()
    blocks = [1] + [0] * (w16.ndim - 1)  # one scale per output channel (axis 0 of a conv weight)
    data, scale, zero_point = _utils.compute_qparams_by_dtype(w16, types.int8, WEIGHT_MODE.upper(), blocks)
    return torch.from_numpy(_utils.dequantize_by_scale_and_zp(data, scale, zero_point).astype(np.float32))


@torch.no_grad()
def bias_corrected(module: torch.nn.Module, calibration: np.ndarray) -> torch.nn.Module:
    """A copy of ``module`` whose conv biases are corrected for the int8 rounding of the
    conv weights: rounding ``W`` to ``W_q`` shifts a conv's output by ``conv(x, W_q - W)``,
    whose mean over the calibration images (``calibration``, in the module's input
    convention) is a constant per output channel, taken off the bias (bias correction,
    Nagel et al., "Data-Free Quantization", 2019; hand-written: coremltools has none)."""
    module = copy.deepcopy(module).eval()
    shifts: dict[torch.nn.Conv2d, list] = {}

    def record(conv, inputs, _output):
        delta = quantized_weight(conv.weight) - conv.weight
        shift = torch.nn.functional.conv2d(
            inputs[0], delta, None, conv.stride, conv.padding, conv.dilation, conv.groups
        )
        total, count = shifts.get(conv, (0.0, 0))
        shifts[conv] = (total + shift.sum((0, 2, 3)), count + shift[:, 0].numel())

    convs = [m for m in module.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.numel() >= SMALLEST_COMPRESSED]
    hooks = [conv.register_forward_hook(record) for conv in convs]
    try:
        for i in range(0, len(calibration), CALIBRATION_BATCH):
            module(torch.from_numpy(calibration[i : i + CALIBRATION_BATCH]))
    finally:
        for hook in hooks:
            hook.remove()
    for conv, (total, count) in shifts.items():
        mean = total / count
        if conv.bias is None:
            conv.bias = torch.nn.Parameter(-mean)
        else:
            conv.bias -= mean
    return module


def activation_ranges(program, calibration: np.ndarray, input_name: str, output: str, renamed: dict) -> dict:
    """(min, max) of every float value of ``program`` over the calibration images, by the
    value's name in the converted program (``renamed``: names the export changed since)."""
    ranges: dict[str, tuple[float, float]] = {}

    def observe(name: str, value: torch.Tensor) -> None:
        if not value.is_floating_point():
            return
        low, high = (float(v) for v in torch.aminmax(value))
        name = renamed.get(name, name)
        if name in ranges:
            low, high = min(low, ranges[name][0]), max(high, ranges[name][1])
        ranges[name] = (low, high)

    for i in range(0, len(calibration), CALIBRATION_BATCH):
        program.run({input_name: calibration[i : i + CALIBRATION_BATCH]}, [output], observe=observe)
    return ranges


class _ConvertedNames(dict):
    """Activation statistics keyed by the names of the saved program. The passes run before
    coremltools' last naming pass (``mil_backend::sanitize_name_strings``) and ask with the
    names before it (e.g. ``input.17_cast_fp16`` for ``input_17_cast_fp16``): a name not
    found is looked up as that pass writes it."""

    def __missing__(self, key: str):
        from coremltools.converters.mil.mil.passes.defs.preprocess import NameSanitizer

        sanitized = NameSanitizer(prefix="var_").sanitize_name(key)  # the prefix that pass gives values
        if sanitized == key:
            raise KeyError(key)
        return self[sanitized]


def add_passes(pipeline, ranges: dict) -> None:
    """Append the activation quantization passes with ``ranges`` and int8 weight
    quantization to a coremltools ``PassPipeline``."""
    import coremltools.optimize.coreml as cto

    stats = _ConvertedNames(
        {name: {"rmin": np.float32(lo), "rmax": np.float32(hi)} for name, (lo, hi) in ranges.items()}
    )
    activations = cto.OptimizationConfig(
        global_config=cto.OpLinearQuantizerConfig(mode=ACTIVATION_MODE, dtype="int8"),
        op_type_configs={op: None for op in FLOAT_OPS},
    )
    for name in (
        "compression::insert_prefix_quantize_dequantize_pair",
        "compression::insert_suffix_quantize_dequantize_pair",
    ):
        pipeline.append_pass(name)
        pipeline.set_options(name, {"config": activations, "activation_stats": stats})
    pipeline.append_pass("common::dequantize_quantize_pair_elimination")
    weights = "compression::linear_quantize_weights"
    pipeline.append_pass(weights)
    pipeline.set_options(
        weights,
        {
            "config": cto.OptimizationConfig(
                global_config=cto.OpLinearQuantizerConfig(
                    mode=WEIGHT_MODE, dtype="int8", weight_threshold=WEIGHT_THRESHOLD
                )
            )
        },
    )


def program(ctx, module: torch.nn.Module, convention: str, example: torch.Tensor, kind: str, target: str, calib):
    """The W8A8 program of ``module`` (an unloaded MLModel): conv biases corrected on the
    calibration images ``calib``, activation ranges measured by the reference interpreter
    over the fp16 program of that model, then coremltools' activation and weight
    quantization passes in a second conversion."""
    p = ctx.preprocessing
    x = to_convention(calib.rgb, convention, p.mean, p.std)
    traced = trace(bias_corrected(module, x), example)
    float_model = convert_program(ctx, traced, kind, "fp16", target, pipeline())
    spec = float_model.get_spec()
    renamed = expose_logits(spec, len(ctx.labels), LOGITS_NAME, PROBABILITIES_NAME)
    ranges = activation_ranges(Program(spec, Path(float_model.weights_dir)), x, INPUT_NAME, LOGITS_NAME, renamed)
    passes = pipeline()
    add_passes(passes, ranges)
    return convert_program(ctx, traced, kind, "w8a8", target, passes)
