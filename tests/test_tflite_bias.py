"""Bias correction of the int8 model (export/targets/tflite/bias.py) on a small Keras model
quantized by the TFLite converter: with float activations, each layer's int8 weights
and corrected bias give the float layer's mean output over the calibration images
to within half a bias step; TensorFlow's own convolutions are the reference (its SAME
padding included)."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow", reason="tensorflow (onnx2tf's) is not installed")
pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed")

from ai_edge_litert.tools import flatbuffer_utils  # noqa: E402

from export.targets.tflite.bias import correct_biases  # noqa: E402
from export.targets.tflite.graph import op_names  # noqa: E402

SHAPE = (8, 8, 16)  # stride 2 over an even size: TFLite's SAME padding puts the extra row/column after


def _model():
    tf.keras.utils.set_random_seed(0)
    inputs = tf.keras.Input(SHAPE, batch_size=1)
    layers = [
        tf.keras.layers.Conv2D(24, 3, strides=2, padding="same", bias_initializer="random_normal"),
        tf.keras.layers.DepthwiseConv2D(3, padding="same", bias_initializer="random_normal"),
        tf.keras.layers.Conv2D(8, 1, bias_initializer="random_normal"),
        tf.keras.layers.GlobalAveragePooling2D(),
        tf.keras.layers.Dense(10, bias_initializer="random_normal"),
    ]  # a zero bias would be dropped
    x = inputs
    for layer in layers:
        x = layer(x)
    return tf.keras.Model(inputs, x), [layers[0], layers[1], layers[2], layers[4]]


def _quantized(keras_model, calibration):
    """(calibrated float model, int8 model) as export.targets.tflite.quant makes them (min/max ranges)."""
    from tensorflow.lite.python.convert import mlir_quantize

    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.representative_dataset = lambda: ([c[None]] for c in calibration)
    converter._experimental_calibrate_only = True
    calibrated = converter.convert()
    return calibrated, mlir_quantize(calibrated, False, input_data_type=tf.float32, output_data_type=tf.float32)


def _int8_layers(body: bytes) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """Per weighted op in graph order: kind, real weights (TensorFlow's layout), real bias, bias step."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(body))
    graph, names = model.subgraphs[0], op_names(model)
    out = []
    for op in graph.operators:
        kind = names[op.opcodeIndex]
        if kind not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        w, b = graph.tensors[int(op.inputs[1])], graph.tensors[int(op.inputs[2])]
        q = np.frombuffer(bytes(model.buffers[w.buffer].data), np.int8).reshape(w.shape).astype(np.float64)
        scale = np.asarray(w.quantization.scale, np.float64)
        axis = w.quantization.quantizedDimension
        real = q * scale.reshape([-1 if i == axis else 1 for i in range(q.ndim)])
        real = real.T if kind == "FULLY_CONNECTED" else real.transpose(1, 2, 3, 0)  # -> (I, O) / (kh, kw, I, O)
        step = np.asarray(b.quantization.scale, np.float64)
        bias = np.frombuffer(bytes(model.buffers[b.buffer].data), np.int32) * step
        out.append((kind, real, bias, step))
    return out


def _layer(kind: str, layer, x: np.ndarray, weights: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """``layer``'s op (its strides and padding) with the given weights and bias, in float64."""
    x = tf.constant(x, tf.float64)
    if kind == "FULLY_CONNECTED":
        y = tf.matmul(x, weights)
    elif kind == "DEPTHWISE_CONV_2D":
        y = tf.nn.depthwise_conv2d(x, weights, (1, *layer.strides, 1), layer.padding.upper())
    else:
        y = tf.nn.conv2d(x, weights, layer.strides, layer.padding.upper())
    return (y + bias).numpy()


def test_each_bias_takes_back_the_mean_error_of_its_int8_weights():
    keras_model, layers = _model()
    calibration = np.random.default_rng(0).normal(0.5, 1.0, (8, *SHAPE)).astype(np.float32)
    calibrated, quantized = _quantized(keras_model, calibration)
    corrected, count = correct_biases(quantized, calibrated, calibration)
    assert count == len(layers) == 4
    before, after = _int8_layers(quantized), _int8_layers(corrected)
    inputs = tf.keras.Model(keras_model.inputs, [layer.input for layer in layers])(calibration)
    for layer, x, (kind, weights, bias, step), (_, same_weights, new_bias, _) in zip(layers, inputs, before, after):
        assert np.array_equal(weights, same_weights)
        x = x.numpy().astype(np.float64)
        exact = _layer(kind, layer, x, *(np.asarray(v, np.float64) for v in layer.get_weights()))
        axes = tuple(range(exact.ndim - 1))
        error_before = (_layer(kind, layer, x, weights, bias) - exact).mean(axes)
        error_after = (_layer(kind, layer, x, weights, new_bias) - exact).mean(axes)
        assert np.all(np.abs(error_after) <= 0.5 * step * (1 + 1e-6) + 1e-6), (kind, error_after / step)
        assert np.abs(error_before / step).max() > 2, kind  # there was an error to correct
