"""W8A8 Core ML programs (int8 weights and activations), calibrated on Linux.

First on a small hand-made network, piece by piece: bias correction against the mean
shift it must cancel, the scales coremltools' own passes write against our measured
ranges, and the program against the float network within the int8 tolerance. Then the
real export of the tiny model: audit, parity, the audit rule that keeps quantize and
dequantize inside w8a8, and the accuracy on held-out digits of the digits checkpoint."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmarks.digits import digits_split, write_image_folder
from export import parity
from export.audit import audit
from export.cli import main as cli_main
from export.spec import Artifact
from export.targets.coreml import convert, w8a8
from export.targets.coreml import target as coreml
from export.targets.coreml.mil import ops

from .helpers import DIGITS_CHECKPOINT, export_report

pytestmark = pytest.mark.skipif(sys.platform == "darwin", reason="Linux path: on macOS load() uses MLModel.predict")
SIZE, CLASSES = 16, 5


class SmallNet(torch.nn.Module):
    """Convs (dense, depthwise, strided), a residual add, GELU, a mean and a 1x1 classifier."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.stem = torch.nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.dw = torch.nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.pw = torch.nn.Conv2d(16, 16, 1)
        self.head = torch.nn.Conv2d(16, CLASSES, 1)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = x + self.pw(F.gelu(self.dw(x)))
        return self.head(x.mean((2, 3), keepdim=True)).flatten(1)


def _images(count: int, seed: int) -> np.ndarray:
    """Smooth random images (a low-resolution pattern upsampled), NCHW float32."""
    g = torch.Generator().manual_seed(seed)
    small = torch.rand(count, 3, 4, 4, generator=g) * 2 - 1
    return F.interpolate(small, size=(SIZE, SIZE), mode="bilinear", align_corners=False).numpy()


def _program(traced, precision: str, passes):
    ctx = SimpleNamespace(spec=SimpleNamespace(height=SIZE, width=SIZE), labels=[f"c{i}" for i in range(CLASSES)])
    mlmodel = convert.program(ctx, traced, "tensor", precision, w8a8.MINIMUM_TARGET, passes)
    return (*w8a8.interpreted(mlmodel, CLASSES), mlmodel)


@pytest.fixture(scope="module")
def small_w8a8():
    """The hand-made net through our W8A8 route: (net, corrected net, ranges, program, calibration)."""
    net = SmallNet().eval()
    calibration = _images(24, seed=1)
    corrected = w8a8.bias_corrected(net, calibration)
    traced = convert.trace(corrected, torch.from_numpy(calibration[:1]))
    with convert.quiet("test"):
        float_program, renamed, _ = _program(traced, "fp16", convert.pipeline())
        ranges = w8a8.activation_ranges(
            float_program, calibration, "image", "logits", renamed, w8a8.EXPORT_RECIPE.ranges
        )
        passes = convert.pipeline()
        w8a8.add_passes(passes, ranges)
        program, _, mlmodel = _program(traced, "w8a8", passes)
    return net, corrected, ranges, program, calibration, mlmodel


def test_bias_correction_cancels_the_mean_shift_of_int8_weights(small_w8a8):
    """Per conv and output channel: the mean over the calibration images of
    conv(x, W_q) + corrected bias equals that of conv(x, W) + bias, x being the conv's
    input in the float net (captured here with hooks, independently of the code)."""
    net, corrected, _, _, calibration, _ = small_w8a8
    inputs = {}
    hooks = [
        m.register_forward_hook(lambda mod, i, o, name=name: inputs.__setitem__(name, i[0]))
        for name, m in net.named_modules()
        if isinstance(m, torch.nn.Conv2d)
    ]
    with torch.no_grad():
        net(torch.from_numpy(calibration))
    for hook in hooks:
        hook.remove()
    fixed = dict(corrected.named_modules())
    for name, conv in net.named_modules():
        if not isinstance(conv, torch.nn.Conv2d):
            continue
        args = (conv.stride, conv.padding, conv.dilation, conv.groups)
        with torch.no_grad():
            float_mean = F.conv2d(inputs[name], conv.weight, conv.bias, *args).mean((0, 2, 3))
            int8_mean = F.conv2d(inputs[name], w8a8.quantized_weight(conv.weight), fixed[name].bias, *args).mean(
                (0, 2, 3)
            )
        assert not torch.equal(fixed[name].bias, conv.bias), name  # there was something to correct
        torch.testing.assert_close(int8_mean, float_mean, rtol=0, atol=1e-5)


def test_program_has_int8_weights_our_bias_corrected_model_assumed(small_w8a8):
    """Every conv weight of the program is int8 (a constexpr), equal to the values bias
    correction assumed coremltools would write."""
    from export.targets.coreml.mil import main_block

    _, corrected, _, program, _, _ = small_w8a8
    made_by = {op.outputs[0].name: op.type for op in main_block(program.spec)[1].operations}
    expected = {
        tuple(m.weight.shape): w8a8.quantized_weight(m.weight).numpy()
        for m in corrected.modules()
        if isinstance(m, torch.nn.Conv2d)
    }
    convs = [step for step in program._steps if step.op.type == "conv"]
    assert len(convs) == len(expected) == 4
    for step in convs:
        assert made_by[step.op.inputs["weight"].arguments[0].name] == "constexpr_affine_dequantize"
        weight = step.static["weight"].astype(np.float32)
        np.testing.assert_array_equal(weight, expected[weight.shape])


def test_scales_are_coremltools_formula_on_our_ranges(small_w8a8):
    """Each quantize op's scale and zero point are what coremltools computes from the range
    our interpreter measured for the value it quantizes (found through the name
    coremltools used during its passes, e.g. ``input.3`` for ``input_3``)."""
    from coremltools.converters.mil.mil import types
    from coremltools.optimize import _utils

    _, _, ranges, program, _, _ = small_w8a8
    producers = {out.name: step for step in program._steps for out in step.op.outputs}

    def quantized_value(name: str) -> str:
        """The value a (fused) quantize reads, behind any quantize/dequantize before it."""
        while name in producers and producers[name].op.type in ("quantize", "dequantize"):
            name = producers[name].dynamic["input"].name
        return name

    quantizers = [s for s in program._steps if s.op.type == "quantize" or s.fn is ops.fake_quantize]
    assert len(quantizers) >= 6
    checked = set()
    for step in quantizers:
        source = quantized_value(step.dynamic["input"].name)
        low, high = ranges[source]
        _, scale, zero_point = _utils.quantize_weight_by_dtype(
            np.array([low, high], np.float16), 0, types.int8, w8a8.EXPORT_RECIPE.activation_mode.upper()
        )
        assert step.static["scale"] == scale.astype(np.float16), source
        assert step.static["zero_point"] == zero_point.astype(np.int8), source
        checked.add(source)
    # looked up through coremltools' renaming: a leading digit gets "var_", the trace's "." becomes "_"
    assert any(name.startswith("var_") for name in checked) and any(name.startswith("input_") for name in checked)


def test_small_w8a8_program_matches_the_float_net_within_int8_tolerance(small_w8a8):
    net, _, _, program, _, _ = small_w8a8
    held_out = _images(32, seed=2)
    with torch.no_grad():
        reference = net(torch.from_numpy(held_out)).numpy()
    out = program.run({"image": held_out}, ["logits"])["logits"]
    result = parity.check(reference, out, "w8a8")
    assert result["tolerance"] == parity.tolerance_for("int8").__dict__
    assert result["passed"], result["misses"]
    assert result["metrics"]["min_centered_cosine"] >= 0.95, result["metrics"]  # the signal survives int8


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    """The tiny model at 64x64 to fp16 and W8A8 (docs/coreml.md's W8A8 command)."""
    out = tmp_path_factory.mktemp("w8a8")
    args = ["--target", "coreml", "--variant", "tiny", "--res", "64", "--coreml-precision", "fp16,w8a8"]
    assert cli_main([*args, "--out", str(out)]) == 0
    return json.loads((out / "report.json").read_text()), out


@pytest.mark.slow
def test_tiny_w8a8_export_passes_audit_and_int8_parity(tiny_export):
    report, out = tiny_export
    assert [a["name"] for a in report["artifacts"]] == ["coreml-fp16", "coreml-w8a8"]
    entry = report["artifacts"][1]
    assert entry["precision"] == "w8a8" and entry["status"] == "promoted"
    assert entry["audit"]["passed"] and entry["parity"]["passed"]
    assert entry["parity"]["tolerance"] == parity.tolerance_for("int8").__dict__
    census = entry["audit"]["census"]
    assert census["quantize"] > 50 and census["dequantize"] >= census["quantize"]
    assert census["constexpr_affine_dequantize"] == census["conv"]  # every conv weight is int8
    d = entry["details"]
    assert (
        d["deployment_target"] == "iOS 17 / macOS 14"
        and report["artifacts"][0]["details"]["deployment_target"] == "iOS 16 / macOS 13"
    )
    assert d["calibration"]["count"] == 20 and "scikit-image" in d["calibration"]["source"]
    assert d["quantization"] == w8a8.DESCRIPTION
    assert report["network_attempts"] == 0


@pytest.mark.slow
def test_quantize_outside_w8a8_fails_the_audit(tiny_export):
    report, out = tiny_export
    package = out / report["artifacts"][1]["file"]
    census = coreml.census(Artifact("coreml-fp16", "coreml", "fp16", package, "byte"))
    assert "quantize" not in census and census["quantize_outside_w8a8"] > 0
    assert audit("coreml", census).denied == ["dequantize_outside_w8a8", "quantize_outside_w8a8"]
    assert audit("coreml", coreml.census(Artifact("coreml-w8a8", "coreml", "w8a8", package, "byte"))).passed


@pytest.mark.slow
def test_digits_w8a8_keeps_eager_top1_within_one_image(tmp_path):
    """The quality target: the digits checkpoint, 60 held-out digits to calibrate and the
    other 300 measured by the export's own accuracy check."""
    folder = tmp_path / "digits"
    split = digits_split(64)
    write_image_folder(folder, split["test_rgb"], split["test_y"])
    report = export_report(
        targets=("coreml",),
        variant="tiny",
        res=(64, 64),
        checkpoint=DIGITS_CHECKPOINT,
        labels=folder / "labels.txt",
        out_dir=tmp_path / "out",
        coreml_precision="w8a8",
        val_dir=folder,
        calib_from_val=60,
    )
    (entry,) = report["artifacts"]
    d = entry["accuracy"]["details"]
    assert report["passed"] and entry["accuracy"]["passed"]
    assert d["images"] == 300 and report["accuracy"]["calibration_images"] == 60
    assert d["images_lost"] <= 1 and d["agreement"] >= 99.0, d
    assert entry["details"]["calibration"]["images"] == report["accuracy"]["calibration_files"]
