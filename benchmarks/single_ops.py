"""Single-op LiteRT models, float32 against full int8 (int8 input and output, so no
conversion is timed), at the size of CAS-ViT-xs's first stage (56x56x48):

    .venv/bin/python -m benchmarks.single_ops [--threads 1] [--repeats 300]

Shows which XNNPACK kernels int8 speeds up on this CPU and which it does not:
the ratio between the two columns bounds what full int8 can gain over float32
for a graph made of these ops."""

from __future__ import annotations

import argparse
import sys

import numpy as np

SIZE, CHANNELS = 56, 48


def _ops():
    """name -> (function of the inputs, input shapes)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    depthwise = tf.constant(rng.normal(size=(3, 3, CHANNELS, 1)).astype(np.float32))
    square = tf.constant(rng.normal(size=(1, 1, CHANNELS, CHANNELS)).astype(np.float32))
    expand = tf.constant(rng.normal(size=(1, 1, CHANNELS, 4 * CHANNELS)).astype(np.float32))
    x = (1, SIZE, SIZE, CHANNELS)
    return {
        "depthwise 3x3": (lambda a: tf.nn.depthwise_conv2d(a, depthwise, [1, 1, 1, 1], "SAME"), [x]),
        "conv 1x1 48->48": (lambda a: tf.nn.conv2d(a, square, 1, "SAME"), [x]),
        "conv 1x1 48->192": (lambda a: tf.nn.conv2d(a, expand, 1, "SAME"), [x]),
        "add": (lambda a, b: a + b, [x, x]),
        "multiply": (lambda a, b: a * b, [x, x]),
        "multiply by a channel vector": (lambda a, b: a * b, [x, (1, 1, 1, CHANNELS)]),
        "multiply by a spatial map": (lambda a, b: a * b, [x, (1, SIZE, SIZE, 1)]),
        "sigmoid": (lambda a: tf.sigmoid(a), [x]),
    }


def convert(function, shapes, int8: bool) -> bytes:
    import tensorflow as tf

    signature = [tf.TensorSpec(s, tf.float32) for s in shapes]
    concrete = tf.function(function, input_signature=signature).get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    if int8:
        rng = np.random.default_rng(1)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [rng.normal(size=s).astype(np.float32) for s in shapes] for _ in range(8)
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = converter.inference_output_type = tf.int8
    return converter.convert()


def invoker(model: bytes, threads: int):
    """A zero-argument call running ``model`` once on fixed random inputs."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model, num_threads=threads)
    interpreter.allocate_tensors()
    rng = np.random.default_rng(2)
    for detail in interpreter.get_input_details():
        values = rng.normal(size=detail["shape"]) * (50 if detail["dtype"] == np.int8 else 1)
        interpreter.set_tensor(detail["index"], values.astype(detail["dtype"]))
    return interpreter.invoke


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.single_ops",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=300)
    args = p.parse_args(argv)
    from .latency import interleaved

    runners = {
        (name, int8): invoker(convert(function, shapes, int8), args.threads)
        for name, (function, shapes) in _ops().items()
        for int8 in (False, True)
    }
    samples = interleaved(runners, args.repeats, warmup=20, log=lambda _: None)
    us = {key: float(np.median(values)) / 1e3 for key, values in samples.items()}
    print(f"| op ({SIZE}x{SIZE}x{CHANNELS}) | float32 us | int8 us | float32 / int8 |")
    print("|---|---:|---:|---:|")
    for name in _ops():
        f32, i8 = us[name, False], us[name, True]
        print(f"| {name} | {f32:.1f} | {i8:.1f} | {f32 / i8:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
