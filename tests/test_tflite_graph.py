"""The graph rewrites that make quantized TFLite models one XNNPACK partition
(export/targets/tflite/graph.py), each on a small Keras model converted by the TFLite
converter: the partition count before and after (-m export.targets.tflite.partitions,
LiteRT 2.3.0 of the venv) and the outputs against the unrewritten model."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow", reason="tensorflow (onnx2tf's) is not installed")
pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed")

from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: E402
from ai_edge_litert.tools import flatbuffer_utils  # noqa: E402

from export.targets.tflite.graph import (  # noqa: E402
    census,
    float_depthwise_weights,
    float_islands,
    wide_input_normalization,
)
from export.targets.tflite.partitions import summary  # noqa: E402

SHAPE = (1, 8, 8, 128)  # 3x3x128 depthwise weights: over the 1024 elements the converter quantizes


def _convert(layers, calibration=None) -> bytes:
    """A Keras model of ``layers`` on SHAPE, dynamic-range or (with ``calibration``) full-integer."""
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([tf.keras.Input(SHAPE[1:], batch_size=1), *layers])
    if calibration is not None:
        return _full_integer_converter(model, calibration).convert()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    return converter.convert()


def _rewrite(body: bytes, rewrite) -> tuple[bytes, int]:
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(body))
    count = rewrite(model)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), count


def _run(path, x: np.ndarray, delegate: bool = True) -> np.ndarray:
    resolver = OpResolverType.AUTO if delegate else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = Interpreter(model_path=str(path), num_threads=1, experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def _full_integer_converter(keras_model, calibration: np.ndarray):
    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.representative_dataset = lambda: ([c[None]] for c in calibration)
    return converter


def _full_integer_and_rewritten(tmp_path, keras_model, rewrite):
    """(before.tflite, after.tflite, rewrite's count): ``keras_model`` in full int8
    (calibrated on 8 inputs) and that model after ``rewrite``."""
    before, after = tmp_path / "before.tflite", tmp_path / "after.tflite"
    before.write_bytes(_full_integer_converter(keras_model, _inputs(8)).convert())
    rewritten, count = _rewrite(before.read_bytes(), rewrite)
    after.write_bytes(rewritten)
    return before, after, count


def _assert_no_worse_than_before(keras_model, before, after) -> None:
    """The rewritten model (delegated) is within 1.5x of the original's error against Keras."""
    x = _inputs(1)
    exact = keras_model(x).numpy()
    error_before = np.abs(_run(before, x, delegate=False) - exact).max()
    assert np.abs(_run(after, x) - exact).max() <= 1.5 * error_before


def _inputs(count: int) -> np.ndarray:
    return np.random.default_rng(0).normal(0, 1.5, (count, *SHAPE[1:])).astype(np.float32)


def test_float_gelu_makes_a_full_integer_model_one_partition_with_the_same_outputs(tmp_path):
    calibration = _inputs(8)
    body = _convert(
        [
            tf.keras.layers.Conv2D(32, 1),
            tf.keras.layers.Activation(tf.nn.gelu),
            tf.keras.layers.Conv2D(16, 1),
            tf.keras.layers.Activation(tf.nn.gelu),
            tf.keras.layers.Conv2D(8, 1),
        ],
        calibration,
    )
    before, after = tmp_path / "before.tflite", tmp_path / "after.tflite"
    before.write_bytes(body)
    rewritten, count = _rewrite(body, float_islands)  # no ADD here: the GELUs alone
    after.write_bytes(rewritten)
    assert count == 2
    assert summary(str(before)) == {"partitions": 3, "outside": {"GELU": 2}}
    assert summary(str(after)) == {"partitions": 1, "outside": {}}
    ops = census(flatbuffer_utils.convert_bytearray_to_object(bytearray(rewritten)))
    assert ops["GELU"] == 2 and ops["DEQUANTIZE"] == ops["QUANTIZE"] == 3  # + the model's own input/output pair
    # LiteRT's int8 GELU is a table of quantize(gelu(dequantize(q))): the float GELU between the same
    # scales gives the same int8 values up to the rounding of ties, so the outputs agree to about 1 step.
    x = _inputs(1)
    reference, output = _run(before, x, delegate=False), _run(after, x)
    step = float(np.abs(reference).max()) / 127
    assert np.abs(output - reference).max() <= 2 * step


def test_float_depthwise_weights_makes_a_dynamic_range_model_one_partition(tmp_path):
    body = _convert(
        [
            tf.keras.layers.DepthwiseConv2D(3, padding="same"),
            tf.keras.layers.Conv2D(64, 1),
            tf.keras.layers.DepthwiseConv2D(3, padding="same"),
        ]
    )
    before, after = tmp_path / "before.tflite", tmp_path / "after.tflite"
    before.write_bytes(body)
    rewritten, count = _rewrite(body, float_depthwise_weights)
    after.write_bytes(rewritten)
    assert count == 1  # the second depthwise (3x3x64) is under the converter's 1024-element threshold
    assert summary(str(before))["outside"] == {"DEPTHWISE_CONV_2D": 1}
    assert summary(str(after)) == {"partitions": 1, "outside": {}}
    # Same weights: the float layer computes what the hybrid kernel approximates (it also quantizes the input).
    x = _inputs(1)
    reference, output = _run(before, x, delegate=False), _run(after, x)
    assert np.abs(output - reference).max() <= 0.02 * np.abs(reference).max()


def test_in_float_keeps_a_chain_in_float_with_one_dequantize_per_entering_tensor(tmp_path):
    """x * sigmoid(x) with LOGISTIC and MUL chosen: x enters once (one DEQUANTIZE for two
    users), the sigmoid stays float, only the product goes back to int8."""
    from export.targets.tflite.graph import in_float

    inputs = tf.keras.Input(SHAPE[1:], batch_size=1)
    x = tf.keras.layers.Conv2D(16, 1)(inputs)
    y = tf.keras.layers.Conv2D(8, 1)(tf.keras.layers.Multiply()([x, tf.keras.layers.Activation("sigmoid")(x)]))
    tf.keras.utils.set_random_seed(0)
    keras_model = tf.keras.Model(inputs, y)
    before, after, count = _full_integer_and_rewritten(
        tmp_path,
        keras_model,
        lambda m: in_float(m, lambda names, graph, op: names[op.opcodeIndex] in ("LOGISTIC", "MUL")),
    )
    assert count == 2
    ops = census(flatbuffer_utils.read_model(str(after)))
    assert ops["DEQUANTIZE"] == 2 and ops["QUANTIZE"] == 2  # + the model's own input/output pair
    assert summary(str(after)) == {"partitions": 1, "outside": {}}
    _assert_no_worse_than_before(keras_model, before, after)


def _residual_model():
    """conv -> residual add at 8x8, stride-2 conv -> residual add at 4x4, conv."""
    inputs = tf.keras.Input(SHAPE[1:], batch_size=1)
    x = tf.keras.layers.Conv2D(32, 1)(inputs)
    x = tf.keras.layers.Add()([x, tf.keras.layers.Conv2D(32, 1)(x)])
    x = tf.keras.layers.Conv2D(32, 2, strides=2)(x)
    x = tf.keras.layers.Add()([x, tf.keras.layers.Conv2D(32, 1)(x)])
    return tf.keras.Model(inputs, tf.keras.layers.Conv2D(8, 1)(x))


def test_residual_adds_below_the_highest_resolution_run_in_float(tmp_path):
    """Only the 4x4 skip connection goes to float (one DEQUANTIZE for the branch, the
    stream's own int8 input, one QUANTIZE for the next conv); still one partition."""
    tf.keras.utils.set_random_seed(0)
    keras_model = _residual_model()
    before, after, count = _full_integer_and_rewritten(tmp_path, keras_model, float_islands)
    assert count == 1
    interpreter = Interpreter(model_path=str(after))
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    adds = [
        (tuple(tensors[op["outputs"][0]]["shape"][1:3]), tensors[op["outputs"][0]]["dtype"])
        for op in interpreter._get_ops_details()
        if op["op_name"] == "ADD"
    ]
    assert sorted(adds, key=str) == sorted([((8, 8), np.int8), ((4, 4), np.float32)], key=str)
    assert summary(str(after)) == {"partitions": 1, "outside": {}}
    _assert_no_worse_than_before(keras_model, before, after)


def test_histogram_ranges_clip_an_outlier_and_stay_inside_min_max():
    """On a calibrated model whose first conv sees one extreme calibration pixel, the
    HistogramObserver range of that conv's output is narrower than its min/max (the
    outlier's width is not spent on the other half million values); every range holds
    zero and lies within the calibrated min/max."""
    from export.targets.tflite.ranges import histogram_ranges, ranged_tensors

    tf.keras.utils.set_random_seed(0)
    shape = (64, 64, 8)
    model = tf.keras.Sequential(
        [
            tf.keras.Input(shape, batch_size=1),
            tf.keras.layers.Conv2D(16, 1),
            tf.keras.layers.Activation(tf.nn.gelu),
            tf.keras.layers.Conv2D(8, 1),
        ]
    )
    calibration = np.random.default_rng(0).normal(0, 0.05, (8, *shape)).astype(np.float32)
    calibration[0, 0, 0, :] = 1.0
    converter = _full_integer_converter(model, calibration)
    converter._experimental_calibrate_only = True
    calibrated = converter.convert()
    ranges = histogram_ranges(calibrated, calibration)
    graph = flatbuffer_utils.convert_bytearray_to_object(bytearray(calibrated))
    assert sorted(ranges) == sorted(ranged_tensors(graph)) and ranges
    widths = []
    for index, (low, high) in ranges.items():
        q = graph.subgraphs[0].tensors[index].quantization
        lo, hi = min(float(q.min[0]), 0.0), max(float(q.max[0]), 0.0)
        step = (hi - lo) / 255
        assert low <= 0.0 <= high and lo - step <= low and high <= hi + step, index
        widths.append((high - low) / (hi - lo))
    assert min(widths) < 0.9, widths


def _normalized_rgb_model():
    """Per-channel scale and shift of a 3-channel image (a 1x1 depthwise conv), then a
    padded stride-2 3x3 conv, as a CAS-ViT .tflite begins."""
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input((12, 10, 3), batch_size=1)
    x = tf.keras.layers.DepthwiseConv2D(1, bias_initializer="random_normal")(inputs)
    return tf.keras.Model(inputs, tf.keras.layers.Conv2D(8, 3, strides=2, padding="same")(x))


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_wide_input_normalization_gives_bit_identical_outputs(tmp_path, precision):
    keras_model = _normalized_rgb_model()
    x = np.random.default_rng(1).uniform(0, 1, (4, 12, 10, 3)).astype(np.float32)
    if precision == "int8":
        converter = _full_integer_converter(keras_model, x)
    else:
        converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
        if precision == "fp16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
    before, after = tmp_path / "before.tflite", tmp_path / "after.tflite"
    before.write_bytes(converter.convert())
    rewritten, count = _rewrite(before.read_bytes(), wide_input_normalization)
    after.write_bytes(rewritten)
    assert count == 1
    interpreter = Interpreter(model_path=str(after))
    depthwise = next(o for o in interpreter._get_ops_details() if o["op_name"] == "DEPTHWISE_CONV_2D")
    assert list(interpreter._get_tensor_details(depthwise["inputs"][0], 0)["shape"]) == [1, 12, 1, 30]
    assert summary(str(after)) == {"partitions": 1, "outside": {}}
    for sample in x:
        np.testing.assert_array_equal(_run(after, sample[None]), _run(before, sample[None]))


def test_wide_input_normalization_leaves_other_depthwise_convs_alone():
    body = _convert([tf.keras.layers.DepthwiseConv2D(1), tf.keras.layers.DepthwiseConv2D(3, padding="same")])
    assert _rewrite(body, wide_input_normalization)[1] == 0  # 128 channels, not 3


def test_float_islands_run_the_gate_products_in_float_and_leave_the_rest_int8(tmp_path):
    """A spatial gate (x * sigmoid(1-channel conv)) and a channel gate (x * sigmoid(conv of
    the mean)): both gate MULs go to float, their LOGISTICs stay int8 (a table, the same
    bits on every CPU); the product of two activations that are no gate stays int8; one
    partition, error no worse."""
    inputs = tf.keras.Input(SHAPE[1:], batch_size=1)
    x = tf.keras.layers.Conv2D(16, 1)(inputs)
    x = tf.keras.layers.Multiply()([x, tf.keras.layers.Conv2D(1, 1, activation="sigmoid")(x)])
    pooled = tf.keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    x = tf.keras.layers.Multiply()([x, tf.keras.layers.Conv2D(16, 1, activation="sigmoid")(pooled)])
    x = tf.keras.layers.Multiply()([x, tf.keras.layers.Conv2D(16, 1)(inputs)])
    tf.keras.utils.set_random_seed(0)
    keras_model = tf.keras.Model(inputs, tf.keras.layers.Conv2D(8, 1)(x))
    before, after, count = _full_integer_and_rewritten(tmp_path, keras_model, float_islands)
    assert count == 2
    interpreter = Interpreter(model_path=str(after))
    sigmoid_types = [
        str(interpreter._get_tensor_details(o["inputs"][0], 0)["dtype"].__name__)
        for o in interpreter._get_ops_details()
        if o["op_name"] == "LOGISTIC"
    ]
    assert sigmoid_types == ["int8", "int8"]
    multiply_types = sorted(
        str(interpreter._get_tensor_details(o["inputs"][0], 0)["dtype"].__name__)
        for o in interpreter._get_ops_details()
        if o["op_name"] == "MUL"
    )
    assert multiply_types == ["float32", "float32", "int8"]
    assert summary(str(after)) == {"partitions": 1, "outside": {}}
    _assert_no_worse_than_before(keras_model, before, after)
