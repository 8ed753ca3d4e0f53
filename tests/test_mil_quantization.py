"""The interpreter's quantization ops (export.targets.coreml.mil): quantize, dequantize and
the constexpr weight decompression of a W8A8 program, op by op against values worked
out by hand (rounding half to even, saturation, zero points, per-channel axes, fp16
rounding of the division), then against coremltools' own reference implementations
on random tensors, then inside a saved program."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from export.targets.coreml.mil import Program, ProgramError, constexpr, ops

RNG = np.random.default_rng(0)


def _np(t) -> np.ndarray:
    return t.numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


def test_quantize_int8_rounds_half_to_even_and_saturates():
    x = np.array([-70.0, -1.25, -0.75, 0.25, 0.75, 1.25, 63.5, 64.0], np.float32)
    # x / 0.5 = -140, -2.5, -1.5, 0.5, 1.5, 2.5, 127, 128: halves go to the even neighbour,
    # then -140 and 128 saturate to the int8 range
    q = ops.quantize(x, np.float32(0.5), "int8")
    assert q.dtype == torch.int8
    np.testing.assert_array_equal(_np(q), [-128, -2, -2, 0, 2, 2, 127, 127])


def test_quantize_uint8_adds_the_zero_point_before_saturating():
    x = np.array([-40.0, -0.125, 0.0, 0.375, 31.75, 40.0], np.float32)
    # x / 0.25 = -160, -0.5, 0, 1.5, 127, 160 -> rounded -160, 0, 0, 2, 127, 160 -> + 128 -> clip 0..255
    q = ops.quantize(x, np.float32(0.25), "uint8", zero_point=np.uint8(128))
    assert q.dtype == torch.uint8
    np.testing.assert_array_equal(_np(q), [0, 128, 128, 130, 255, 255])


def test_quantize_per_channel_along_an_axis():
    x = np.array([[[1.0, -0.75], [0.5, -2.0], [5.0, 3.0]]], np.float32)  # (1, 3, 2), channels on axis 1
    scale = np.array([0.5, 0.25, 2.0], np.float32)
    zero_point = np.array([0, -10, 5], np.int8)
    # channel 0: 2, -1.5 -> 2, -2; channel 1: 2, -8 -> -8, -18; channel 2: 2.5, 1.5 -> 2, 2 -> 7, 7
    q = ops.quantize(x, scale, "int8", zero_point=zero_point, axis=np.int32(1))
    np.testing.assert_array_equal(_np(q), [[[2, -2], [-8, -18], [7, 7]]])
    q_last = ops.quantize(x.transpose(0, 2, 1), scale, "int8", zero_point=zero_point, axis=np.int32(-1))
    np.testing.assert_array_equal(_np(q_last), _np(q).transpose(0, 2, 1))


def test_fp16_quantize_rounds_the_division_to_fp16_first():
    # 0.25 / fp16(0.1) = 0.25 / 0.0999755859375 = 2.50061...; in fp16 (spacing 2^-9 near 2.5)
    # that is 2.5, which rounds half to even to 2; computed in float32 it rounds to 3
    assert float(np.float16(0.1)) == 0.0999755859375
    q16 = ops.quantize(np.array([0.25], np.float16), np.float16(0.1), "int8")
    q32 = ops.quantize(np.array([0.25], np.float32), np.float32(np.float16(0.1)), "int8")
    assert _np(q16).tolist() == [2] and _np(q32).tolist() == [3]


def test_dequantize_per_tensor_per_channel_and_fp16():
    np.testing.assert_array_equal(
        _np(ops.dequantize(np.array([-128, -1, 0, 127], np.int8), np.float32(0.5))), [-64.0, -0.5, 0.0, 63.5]
    )
    np.testing.assert_array_equal(
        _np(ops.dequantize(np.array([0, 128, 255], np.uint8), np.float32(0.25), np.uint8(128))), [-32.0, 0.0, 31.75]
    )
    q = np.array([[10, -10], [3, 4]], np.int8)  # channels on axis 0
    out = ops.dequantize(q, np.array([0.5, 2.0], np.float32), np.array([2, -1], np.int8), axis=np.int32(0))
    np.testing.assert_array_equal(_np(out), [[4.0, -6.0], [8.0, 10.0]])  # (10-2)*.5, (-10-2)*.5, (3+1)*2, (4+1)*2
    # 127 * fp16(0.1) = 12.6969 in float32; the fp16 neighbours are 12.6953125 and 12.703125
    out16 = ops.dequantize(np.array([127], np.int8), np.float16(0.1))
    assert out16.dtype == torch.float16 and _np(out16).tolist() == [12.6953125]


def test_quantization_parameters_must_match_their_axis():
    with pytest.raises(ProgramError, match="vectors with an axis"):
        ops.quantize(np.ones((2, 3), np.float32), np.ones(3, np.float32), "int8")
    with pytest.raises(ProgramError, match="output_dtype 'int16'"):
        ops.quantize(np.ones(3, np.float32), np.float32(1.0), "int16")


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("per_channel", [False, True])
def test_quantize_and_dequantize_equal_coremltools_reference(dtype, per_channel):
    """Bit for bit against coremltools' own value inference of the iOS 17 ops."""
    from coremltools.converters.mil.mil import types
    from coremltools.optimize import _utils as reference

    x = (RNG.standard_normal((2, 4, 5, 3)) * 6).astype(dtype)
    if per_channel:
        scale = (RNG.uniform(0.01, 0.1, 4)).astype(dtype)
        zero_point = RNG.integers(-20, 20, 4).astype(np.int8)
        axis, shaped = 1, (1, 4, 1, 1)
    else:
        scale, zero_point, axis, shaped = dtype(0.047), np.int8(-3), None, ()
    q = ops.quantize(x, scale, "int8", zero_point=zero_point, axis=axis)
    expected_q = reference.quantize_by_scale_and_zp(x, scale.reshape(shaped), zero_point.reshape(shaped), types.int8)
    np.testing.assert_array_equal(_np(q), expected_q)
    out = ops.dequantize(q, scale, zero_point=zero_point, axis=axis)
    expected = reference.dequantize_by_scale_and_zp(expected_q, scale, zero_point, axis)
    assert _np(out).dtype == expected.dtype
    np.testing.assert_array_equal(_np(out), expected)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("output_dtype,zero_point", [("int8", None), ("int8", -7), ("uint8", 131)])
@pytest.mark.parametrize("per_channel", [False, True])
def test_fused_quantize_dequantize_is_the_pair_bit_for_bit(dtype, output_dtype, zero_point, per_channel):
    """The interpreter runs a quantize read only by its dequantize as ``fake_quantize``."""
    x = (RNG.standard_normal((3, 4, 6, 5)) * 8).astype(dtype)
    x.flat[:4] = [1e4, -1e4, 0.0, 0.4]  # saturating both ways, and zero
    zp_dtype = np.uint8 if output_dtype == "uint8" else np.int8
    if per_channel:
        scale, axis = RNG.uniform(0.02, 0.09, 4).astype(dtype), 1
        zp = None if zero_point is None else np.full(4, zero_point, zp_dtype)
    else:
        scale, axis = dtype(0.0531), None
        zp = None if zero_point is None else zp_dtype(zero_point)
    pair = ops.dequantize(ops.quantize(x, scale, output_dtype, zp, axis), scale, zp, axis)
    fused = ops.fake_quantize(x, scale, output_dtype, zp, axis)
    assert fused.dtype == pair.dtype
    np.testing.assert_array_equal(_np(fused), _np(pair))


def test_constexpr_weights_by_hand():
    q = np.array([[-128, 5], [127, -1]], np.int8)
    # iOS 16 form: (q - zero_point) * scale along axis 0
    out = constexpr.affine_dequantize(q, np.array([0, 1], np.int8), np.array([0.5, 0.25], np.float16), np.int32(0))
    assert out.dtype == np.float16
    np.testing.assert_array_equal(out, [[-64.0, 2.5], [31.5, -0.5]])
    # iOS 18 form: one scale (and offset) per block of 2 columns
    data = np.array([[1, 2, 3, 4]], np.int8)
    out = constexpr.blockwise_shift_scale(data, np.array([[2.0, 0.5]], np.float16), np.array([[1, -1]], np.int8))
    np.testing.assert_array_equal(out, [[0.0, 2.0, 2.0, 2.5]])  # (1-1)*2, (2-1)*2, (3+1)*.5, (4+1)*.5


def test_constexpr_weights_equal_coremltools_decompress():
    from coremltools.converters.mil.mil.ops.defs.iOS16.constexpr_ops import constexpr_affine_dequantize
    from coremltools.converters.mil.mil.ops.defs.iOS18.compression import constexpr_blockwise_shift_scale

    q = RNG.integers(-128, 128, (6, 4, 3, 3), dtype=np.int8)
    zp, scale = RNG.integers(-5, 5, 6).astype(np.int8), RNG.uniform(1e-3, 1e-1, 6).astype(np.float16)
    np.testing.assert_array_equal(
        constexpr.affine_dequantize(q, zp, scale, np.int32(0)), constexpr_affine_dequantize.decompress(q, zp, scale, 0)
    )
    block_scale = RNG.uniform(1e-3, 1e-1, (6, 2, 1, 1)).astype(np.float16)
    offset = RNG.integers(-5, 5, (6, 2, 1, 1)).astype(np.int8)
    np.testing.assert_array_equal(
        constexpr.blockwise_shift_scale(q, block_scale, offset),
        constexpr_blockwise_shift_scale.decompress(q, block_scale, offset),
    )


def test_fp16_program_with_quantize_dequantize_and_int8_weights(tmp_path):
    """A saved iOS 17 program: fp16 input, quantize/dequantize (per tensor), a conv with
    constexpr int8 weights, quantize/dequantize of its output (per channel), against the
    same chain written out in NumPy with the semantics checked above."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    wq = RNG.integers(-127, 128, (4, 3, 1, 1), dtype=np.int8)
    # power-of-two input and weight scales: every product and sum of the conv is exact in
    # float32, whatever the summation order; the output scales are not
    w_scale = np.array([2**-6, 2**-5, 2**-7, 2**-4], np.float16)
    a_scale, o_scale = np.float16(2**-4), np.array([0.02, 0.04, 0.01, 0.05], np.float16)

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3, 4, 4))], opset_version=ct.target.iOS17)
    def prog(x):
        h = mb.cast(x=x, dtype="fp16")
        h = mb.dequantize(input=mb.quantize(input=h, scale=a_scale, output_dtype="int8"), scale=a_scale)
        w = mb.constexpr_affine_dequantize(quantized_data=wq, zero_point=np.int8(0), scale=w_scale, axis=0)
        h = mb.conv(x=h, weight=w)
        zp = np.zeros(4, np.uint8) + 128
        h = mb.quantize(input=h, scale=o_scale, zero_point=zp, axis=1, output_dtype="uint8")
        return mb.cast(x=mb.dequantize(input=h, scale=o_scale, zero_point=zp, axis=1), dtype="fp32", name="out")

    mlmodel = ct.convert(
        prog,
        convert_to="mlprogram",
        pass_pipeline=ct.PassPipeline.EMPTY,
        minimum_deployment_target=ct.target.iOS17,
        skip_model_load=True,
    )
    path = tmp_path / "w8a8.mlpackage"
    mlmodel.save(str(path))
    program = Program.load(path)
    x = (RNG.standard_normal((3, 3, 4, 4)) * 3).astype(np.float32)  # a batch of 3 in a batch-1 program
    out = program.run({"x": x})["out"]

    h = x.astype(np.float16)
    h = np.clip(np.round(h / a_scale), -128, 127).astype(np.float32) * np.float32(a_scale)
    w = wq.astype(np.float32) * w_scale.astype(np.float32).reshape(4, 1, 1, 1)
    conv = np.einsum("oc,nchw->nohw", w[:, :, 0, 0], h).astype(np.float16)
    s = o_scale.reshape(1, 4, 1, 1)
    q = np.clip(np.round(conv / s) + 128, 0, 255)  # fp16 division, as in the program
    expected = ((q - 128).astype(np.float32) * s.astype(np.float32)).astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(out, expected)
    assert len(np.unique(out[:, 0])) > 3  # the chain is not degenerate
