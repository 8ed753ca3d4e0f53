"""The reference interpreter (export.targets.coreml.mil), proven on its own: each op against
PyTorch or NumPy on random tensors, weight decompression against coremltools, fp16
rounding after every op, and refusal of ops it does not implement."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from export.targets.coreml.mil import Program, ProgramError, UnsupportedOpError, constexpr, ops

RNG = np.random.default_rng(0)


def randn(*shape) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize(
    "cin,cout,k,stride,pad,dilation,groups",
    [
        (3, 8, 3, 2, (1, 1, 1, 1), 1, 1),  # stem conv
        (16, 16, 3, 1, (1, 1, 1, 1), 1, 16),  # depthwise
        (16, 48, 1, 1, (0, 0, 0, 0), 1, 1),  # pointwise
        (8, 12, 3, 1, (2, 0, 1, 1), 2, 4),  # grouped, dilated, asymmetric padding
    ],
)
def test_conv_matches_torch(cin, cout, k, stride, pad, dilation, groups):
    x, w, b = randn(2, cin, 11, 9), randn(cout, cin // groups, k, k), randn(cout)
    out = ops.conv(
        x, w, b, strides=(stride, stride), pad_type="custom", pad=pad, dilations=(dilation, dilation), groups=groups
    )
    t = F.pad(torch.from_numpy(x), (pad[2], pad[3], pad[0], pad[1]))
    ref = F.conv2d(t, torch.from_numpy(w), torch.from_numpy(b), stride=stride, dilation=dilation, groups=groups)
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-5, atol=1e-5)


def test_conv_same_padding_matches_torch():
    x, w = randn(1, 4, 10, 10), randn(6, 4, 3, 3)
    ref = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding="same")
    np.testing.assert_allclose(ops.conv(x, w, pad_type="same"), ref.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "name,fn",
    [
        ("relu", torch.relu),
        ("sigmoid", torch.sigmoid),
    ],
)
def test_unary_matches_torch(name, fn):
    x = randn(2, 5, 7, 3) * 6
    np.testing.assert_allclose(ops.OPS[name](x), fn(torch.from_numpy(x)).numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("mode,approximate", [("EXACT", "none"), ("TANH_APPROXIMATION", "tanh")])
def test_gelu_matches_torch(mode, approximate):
    x = randn(4, 64) * 4
    ref = F.gelu(torch.from_numpy(x), approximate=approximate).numpy()
    np.testing.assert_allclose(ops.gelu(x, mode=mode), ref, rtol=1e-5, atol=1e-6)


def test_elementwise_broadcast_and_reductions_match_torch():
    x, y = randn(2, 6, 5, 5), randn(1, 6, 1, 1)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    np.testing.assert_allclose(ops.OPS["add"](x, y), (tx + ty).numpy(), rtol=1e-6)
    np.testing.assert_allclose(ops.OPS["mul"](x, y), (tx * ty).numpy(), rtol=1e-6)
    np.testing.assert_allclose(
        ops.reduce_mean(x, axes=np.array([2, 3]), keep_dims=True),
        tx.mean((2, 3), keepdim=True).numpy(),
        rtol=1e-5,
        atol=1e-7,
    )
    for got, want in zip(ops.split(x, axis=1, num_splits=3), tx.chunk(3, dim=1)):
        np.testing.assert_array_equal(got, want.numpy())
    for got, want in zip(ops.split(x, axis=1, split_sizes=np.array([2, 4])), tx.split([2, 4], dim=1)):
        np.testing.assert_array_equal(got, want.numpy())
    np.testing.assert_array_equal(ops.reshape(x, np.array([2, -1])), tx.flatten(1).numpy())


def test_classify_returns_top_label_and_raw_scores():
    label, scores = ops.classify(
        np.array([[0.5, 2.0, -1.0]], np.float32), [np.array("a"), np.array("b"), np.array("c")]
    )
    assert label == "b" and scores == {"a": 0.5, "b": 2.0, "c": -1.0}


def test_weight_decompression_matches_coremltools():
    from coremltools.converters.mil.mil.ops.defs.iOS16.constexpr_ops import (
        constexpr_affine_dequantize,
        constexpr_lut_to_dense,
    )
    from coremltools.converters.mil.mil.ops.defs.iOS18.compression import (
        constexpr_blockwise_shift_scale,
    )
    from coremltools.converters.mil.mil.ops.defs.iOS18.compression import (
        constexpr_lut_to_dense as lut18,
    )

    shape = np.array([6, 4, 3, 3], np.uint32)
    for nbits in (6, 8):
        lut = randn(2**nbits).astype(np.float16)
        packed = RNG.integers(0, 256, int(np.prod(shape)) * nbits // 8, dtype=np.uint8)
        np.testing.assert_array_equal(
            constexpr.lut_to_dense_ios16(lut, packed, shape), constexpr_lut_to_dense.decompress(lut, packed, shape)
        )
    q, zp, scale = (
        RNG.integers(-128, 128, (6, 4, 3, 3), dtype=np.int8),
        np.zeros(6, np.int8),
        randn(6).astype(np.float16),
    )
    np.testing.assert_array_equal(
        constexpr.affine_dequantize(q, zp, scale, 0), constexpr_affine_dequantize.decompress(q, zp, scale, 0)
    )
    indices, lut = RNG.integers(0, 64, (6, 4, 3, 3), dtype=np.uint8), randn(2, 1, 1, 1, 64, 1).astype(np.float16)
    np.testing.assert_array_equal(constexpr.lut_to_dense_ios18(indices, lut), lut18.decompress(indices, lut, None))
    block_scale = randn(6, 2, 1, 1).astype(np.float16)
    np.testing.assert_allclose(
        constexpr.blockwise_shift_scale(q, block_scale),
        constexpr_blockwise_shift_scale.decompress(q, block_scale, None),
        rtol=1e-3,
    )


def _save_program(tmp_path, build, name: str):
    """A hand-built MIL program saved as an .mlpackage by coremltools (no graph passes)."""
    import coremltools as ct

    mlmodel = ct.convert(
        build,
        convert_to="mlprogram",
        pass_pipeline=ct.PassPipeline.EMPTY,
        minimum_deployment_target=ct.target.iOS16,
        compute_precision=ct.precision.FLOAT32,
        skip_model_load=True,
    )
    path = tmp_path / f"{name}.mlpackage"
    mlmodel.save(str(path))
    return path


def test_fp16_program_rounds_after_every_op(tmp_path):
    from coremltools.converters.mil import Builder as mb

    weight = randn(1, 8, 1, 1) * 3

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 8, 4, 4))])
    def prog(x):
        h = mb.cast(x=x, dtype="fp16")
        h = mb.mul(x=h, y=weight.astype(np.float16))
        h = mb.add(x=h, y=np.float16(1 / 3))
        h = mb.sigmoid(x=h)
        return mb.cast(x=h, dtype="fp32", name="out")

    program = Program.load(_save_program(tmp_path, prog, "fp16_chain"))
    x = randn(1, 8, 4, 4) * 10
    out = program.run({"x": x})["out"]
    # the same chain in NumPy, rounding to fp16 after each op as the device does
    h = (x.astype(np.float16).astype(np.float32) * weight.astype(np.float16)).astype(np.float16)
    h = (h.astype(np.float32) + np.float32(np.float16(1 / 3))).astype(np.float16)
    expected = (1 / (1 + np.exp(-h.astype(np.float64)))).astype(np.float16).astype(np.float32)
    np.testing.assert_allclose(out, expected, rtol=0, atol=float(np.finfo(np.float16).eps) / 2)
    unrounded = 1 / (1 + np.exp(-(x * weight + 1 / 3)))
    assert out.dtype == np.float32 and np.abs(out - unrounded).max() > 1e-4  # rounding is really applied


def test_program_conv_reads_weights_from_blob(tmp_path):
    from coremltools.converters.mil import Builder as mb

    w, b = randn(16, 8, 3, 3), randn(16)  # large enough to be stored in weight.bin

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 8, 10, 10))])
    def prog(x):
        return mb.relu(
            x=mb.conv(x=x, weight=w, bias=b, pad_type="custom", pad=[1, 1, 1, 1], strides=[2, 2]), name="out"
        )

    out = Program.load(_save_program(tmp_path, prog, "conv")).run({"x": (x := randn(1, 8, 10, 10))})["out"]
    ref = torch.relu(F.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), stride=2, padding=1))
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-5, atol=1e-5)


def test_unknown_op_is_refused_by_name(tmp_path):
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 10))])
    def prog(x):
        return mb.exp(x=mb.relu(x=x), name="out")

    with pytest.raises(UnsupportedOpError, match=r"does not support MIL op\(s\) exp \(supported: add, "):
        Program.load(_save_program(tmp_path, prog, "exp"))


def test_not_a_package_is_a_clear_error(tmp_path):
    with pytest.raises(ProgramError, match="not an .mlpackage"):
        Program.load(tmp_path)


def test_interpreter_supports_exactly_the_audit_allow_list():
    from export import targets
    from export.targets.coreml.mil import SUPPORTED_OPS

    coreml = targets.get("coreml")
    assert coreml.allow is SUPPORTED_OPS  # derived, not repeated
    assert not [op for op in SUPPORTED_OPS if coreml.denies(op)]


def _round16(t: torch.Tensor) -> torch.Tensor:
    return t.half().float()


def _conv_stack_program(tmp_path, precision: str):
    """Every conv path of the interpreter (im2col, depthwise, pointwise, grouped), GELU and
    a batch-keeping reshape, saved as an fp32 or fp16 ML Program; returns it and its weights."""
    from coremltools.converters.mil import Builder as mb

    w = {
        "stem": randn(8, 3, 3, 3) * 0.5,
        "dw": randn(8, 1, 3, 3) * 0.5,
        "pw": randn(12, 8, 1, 1) * 0.5,
        "group": randn(12, 3, 3, 3) * 0.5,
        "bias": randn(8),
    }
    cast = (lambda v: v.astype(np.float16)) if precision == "fp16" else (lambda v: v)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3, 16, 16))])
    def prog(x):
        h = mb.cast(x=x, dtype="fp16") if precision == "fp16" else x
        h = mb.conv(
            x=h, weight=cast(w["stem"]), bias=cast(w["bias"]), strides=[2, 2], pad_type="custom", pad=[1, 1, 1, 1]
        )
        h = mb.gelu(x=h, mode="EXACT")
        h = mb.conv(x=h, weight=cast(w["dw"]), groups=8, pad_type="same")
        h = mb.conv(x=h, weight=cast(w["pw"]))
        h = mb.conv(x=h, weight=cast(w["group"]), groups=4, pad_type="valid", dilations=[2, 2])
        h = mb.reshape(x=h, shape=[1, 12, 16])
        return mb.cast(x=mb.relu(x=h), dtype="fp32", name="out") if precision == "fp16" else mb.relu(x=h, name="out")

    return Program.load(_save_program(tmp_path, prog, f"conv_stack_{precision}")), w


def _conv_stack_reference(x: np.ndarray, w: dict, precision: str) -> np.ndarray:
    """The same program as plain PyTorch ops, rounding to fp16 after each op for fp16."""
    r = _round16 if precision == "fp16" else (lambda t: t)
    t = {k: r(torch.from_numpy(v)) for k, v in w.items()}
    h = r(torch.from_numpy(x))
    h = r(F.conv2d(h, t["stem"], t["bias"], stride=2, padding=1))
    h = r(F.gelu(h))
    h = r(F.conv2d(h, t["dw"], groups=8, padding=1))
    h = r(F.conv2d(h, t["pw"]))
    h = r(F.conv2d(h, t["group"], groups=4, dilation=2))
    return torch.relu(h.reshape(len(x), 12, 16)).numpy()


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_batched_program_matches_torch_and_per_sample_runs(tmp_path, precision):
    program, w = _conv_stack_program(tmp_path, precision)
    x = randn(5, 3, 16, 16)
    batched = program.run({"x": x}, ["out"])["out"]
    per_sample = np.concatenate([program.run({"x": x[i : i + 1]})["out"] for i in range(len(x))])
    np.testing.assert_array_equal(batched, per_sample)  # batching changes nothing
    reference = _conv_stack_reference(x, w, precision)
    if precision == "fp32":
        np.testing.assert_allclose(batched, reference, rtol=1e-5, atol=1e-5)
    else:  # a different summation order may flip an fp16 rounding: allow 2 fp16 ulps
        eps = float(np.finfo(np.float16).eps)
        np.testing.assert_allclose(batched, reference, rtol=2 * eps, atol=2 * eps)
        unrounded = _conv_stack_reference(x, w, "fp32")
        assert np.abs(batched - unrounded).max() > 4 * eps  # rounding is applied


def test_batch_refuses_ops_across_samples(tmp_path):
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 4, 2, 2))])
    def prog(x):
        return mb.reduce_mean(x=x, axes=[0, 1], keep_dims=True, name="out")

    program = Program.load(_save_program(tmp_path, prog, "reduce_batch"))
    x = randn(1, 4, 2, 2)
    np.testing.assert_allclose(program.run({"x": x})["out"], x.mean((0, 1), keepdims=True), rtol=1e-6)
    with pytest.raises(ProgramError, match="axis 0 .the batch. cannot run batched"):
        program.run({"x": randn(3, 4, 2, 2)})


def test_unknown_output_is_refused(tmp_path):
    program, _ = _conv_stack_program(tmp_path, "fp32")
    with pytest.raises(ProgramError, match="unknown output.s. nope"):
        program.run({"x": randn(1, 3, 16, 16)}, ["nope"])
