"""Interleaved LiteRT latency of a few .tflite files, e.g. one model before and
after a graph change, with each file's XNNPACK partitions:

    python -m benchmarks.tflite_ab NAME=model.tflite NAME=model.tflite ... [--threads 1]

Prints one line per file: median ms, its ratio to the first file, partitions and
the ops left outside XNNPACK (``export.targets.tflite.partitions``)."""

from __future__ import annotations

import argparse

import numpy as np

from export.targets.tflite.partitions import summary

from .latency import interleaved


def _invoker(path: str, threads: int):
    """A zero-argument call running ``path`` once on a fixed random input."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=threads)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    x = np.random.default_rng(0).random(detail["shape"]).astype(detail["dtype"])
    interpreter.set_tensor(detail["index"], x)
    return interpreter.invoke


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tflite_ab", description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="NAME=path.tflite")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args(argv)
    models = dict(m.split("=", 1) for m in args.models)
    samples = interleaved(
        {k: _invoker(p, args.threads) for k, p in models.items()}, args.repeats, warmup=3, log=lambda _: None
    )
    medians = {k: float(np.median(v)) / 1e6 for k, v in samples.items()}
    first = medians[next(iter(models))]
    for name, path in models.items():
        split = summary(path)
        print(
            f"{name:24s} {medians[name]:8.2f} ms  x{medians[name] / first:.3f}  partitions {split['partitions']}"
            f"  outside {split['outside'] or '-'}"
        )


if __name__ == "__main__":
    main()
