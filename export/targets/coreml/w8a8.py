"""W8A8 programs (int8 weights and int8 activations) calibrated on Linux.

coremltools' ``linear_quantize_activations`` measures activation ranges by running the
model in the Core ML runtime (macOS only). Its graph passes take those ranges as a
dictionary ({MIL value name: {"rmin", "rmax"}}), so here the reference interpreter
(``mil``) measures them on the calibration images over the fp16 program, and the same
passes (``compression::insert_prefix_quantize_dequantize_pair``,
``compression::insert_suffix_quantize_dequantize_pair``,
``common::dequantize_quantize_pair_elimination``), then ``linear_quantize_weights``,
run inside the conversion of the W8A8 program. Choices (``Recipe``), measured by
``benchmarks.w8a8_ablation`` on the seeded xs model and the digits checkpoint: affine
int8 activations (a zero point), the adds left in fp16 (the residual stream is not
rounded to int8 after every block), every conv weight int8 per output channel with its
bias corrected for the rounding of its weights, and ranges from a histogram search
(torch.ao's ``HistogramObserver``, as the TFLite int8 path) instead of min/max."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...inputs import to_convention
from .convert import INPUT_NAME, LOGITS_NAME, PROBABILITIES_NAME, pipeline, trace
from .convert import program as convert_program
from .mil import Program
from .outputs import expose_logits

WEIGHT_MODE = "linear_symmetric"  # int8 per output channel, no zero point
# Every conv weight (coremltools' default threshold, 2048 elements, keeps the small ones
# in fp16); coremltools never compresses a constant of fewer than 10 elements.
WEIGHT_THRESHOLD, SMALLEST_COMPRESSED = 0, 10
MINIMUM_TARGET = "iOS17"  # quantize/dequantize are iOS 17 ops
CALIBRATION_BATCH = 16


@dataclass(frozen=True)
class Recipe:
    """How a W8A8 program is made. The export uses the defaults; ``benchmarks.w8a8_ablation``
    measures the alternatives."""

    activation_mode: str = "linear"  # affine int8 (a zero point per tensor); or "linear_symmetric"
    float_ops: tuple[str, ...] = ("add",)  # op types the activation passes leave alone
    ranges: str = "histogram"  # torch.ao's HistogramObserver per value (``activation_ranges``), or "minmax"
    bias_correction: bool = True


EXPORT_RECIPE = Recipe()
# What the report says about a W8A8 package.
DESCRIPTION = {
    "activations": f"int8 per tensor ({EXPORT_RECIPE.activation_mode}: with a zero point) at the inputs and "
    "outputs of the convolutions; ranges from torch.ao's HistogramObserver over the calibration images "
    "(min/max for the normalized input and the logits), measured by the reference interpreter on the fp16 "
    f"program; {', '.join(EXPORT_RECIPE.float_ops)} ops, GELU, the gate products and the means in fp16",
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


def ends(program) -> set[str]:
    """The values whose range stays min/max under the histogram statistic, as in the TFLite
    int8 path: the first conv's input (the normalized image) and the last conv's output
    (the logits: clipping the largest would change the top-1)."""
    convs = [step.op for step in program._steps if step.op.type == "conv"]
    return {convs[0].inputs["x"].arguments[0].name, convs[-1].outputs[0].name}


def activation_ranges(
    program, calibration: np.ndarray, input_name: str, output: str, renamed: dict, statistic: str = "minmax"
) -> dict:
    """(min, max) of every float value of ``program`` over the calibration images, by the
    value's name in the converted program (``renamed``: names the export changed since);
    ``statistic="histogram"``: the range torch.ao's ``HistogramObserver`` picks (its search
    trades clipping against rounding) for every value but the ``ends``."""
    from torch.ao.quantization.observer import HistogramObserver

    ranges: dict[str, tuple[float, float]] = {}
    observers: dict[str, HistogramObserver] = {}
    kept = ends(program) if statistic == "histogram" else set()

    def observe(name: str, value: torch.Tensor) -> None:
        if not value.is_floating_point():
            return
        if statistic == "histogram" and name not in kept:
            name = renamed.get(name, name)
            observers.setdefault(name, HistogramObserver(dtype=torch.qint8, quant_min=-128, quant_max=127))
            observers[name](value.float().contiguous())
            return
        name = renamed.get(name, name)
        low, high = (float(v) for v in torch.aminmax(value))
        if name in ranges:
            low, high = min(low, ranges[name][0]), max(high, ranges[name][1])
        ranges[name] = (low, high)

    for i in range(0, len(calibration), CALIBRATION_BATCH):
        program.run({input_name: calibration[i : i + CALIBRATION_BATCH]}, [output], observe=observe)
    for name, observer in observers.items():
        scale, zero_point = (float(v) for v in observer.calculate_qparams())
        ranges[name] = ((-128 - zero_point) * scale, (127 - zero_point) * scale)
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


def add_passes(pipeline, ranges: dict, recipe: Recipe = EXPORT_RECIPE) -> None:
    """Append the activation quantization passes with ``ranges`` and int8 weight
    quantization to a coremltools ``PassPipeline``."""
    import coremltools.optimize.coreml as cto

    stats = _ConvertedNames(
        {name: {"rmin": np.float32(lo), "rmax": np.float32(hi)} for name, (lo, hi) in ranges.items()}
    )
    activations = cto.OptimizationConfig(
        global_config=cto.OpLinearQuantizerConfig(mode=recipe.activation_mode, dtype="int8"),
        op_type_configs={op: None for op in recipe.float_ops},
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


def interpreted(mlmodel, num_classes: int) -> tuple[Program, dict[str, str]]:
    """A converted (unsaved) classifier as the export saves it, in the reference interpreter:
    the program with its ``logits`` output, and the values renamed for it (new -> converted name)."""
    spec = mlmodel.get_spec()
    renamed = expose_logits(spec, num_classes, LOGITS_NAME, PROBABILITIES_NAME)
    return Program(spec, Path(mlmodel.weights_dir)), renamed


def program(
    ctx,
    module: torch.nn.Module,
    convention: str,
    example: torch.Tensor,
    kind: str,
    target: str,
    calib,
    recipe: Recipe = EXPORT_RECIPE,
    sizes=(),
):
    """The W8A8 program of ``module`` (an unloaded MLModel): conv biases corrected on the
    calibration images ``calib``, activation ranges measured by the reference interpreter
    over the fp16 program of that model, then coremltools' activation and weight
    quantization passes in a second conversion. Both programs take the input ``sizes``
    (``convert.program``); the calibration images are at the first."""
    p = ctx.preprocessing
    x = to_convention(calib.rgb, convention, p.mean, p.std)
    traced = trace(bias_corrected(module, x) if recipe.bias_correction else module, example)
    float_program, renamed = interpreted(
        convert_program(ctx, traced, kind, "fp16", target, pipeline(), sizes), len(ctx.labels)
    )
    ranges = activation_ranges(float_program, x, INPUT_NAME, LOGITS_NAME, renamed, recipe.ranges)
    passes = pipeline()
    add_passes(passes, ranges, recipe)
    return convert_program(ctx, traced, kind, "w8a8", target, passes, sizes)
