"""ONNX Runtime as the benchmarks time it, with a thread count, and as the checks run
it (one thread). Imports only NumPy (onnxruntime on use): a benchmark process
measuring one runtime's memory must not load torch or the converters."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..base import BenchRuntime

INPUT_NAME = "image"


def onnxruntime_runner(path: str, threads: int, x: np.ndarray) -> Callable[[], object]:
    runner = session(path, threads)
    feed = {runner.get_inputs()[0].name: x}
    return lambda: runner.run(None, feed)


def session(model, threads: int = 1):
    """An ONNX Runtime session (CPU, ``threads`` intra-op threads) of a model file path or serialized bytes."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(
        model if isinstance(model, bytes) else str(model), opts, providers=["CPUExecutionProvider"]
    )


def run_outputs(session, x: np.ndarray, names: list[str] | None = None) -> list[np.ndarray]:
    """The named outputs (default: all) for the batch ``x``; a model with a fixed batch
    runs in slices of it, the tail padded with zeros."""
    x = np.ascontiguousarray(x, np.float32)
    dim = session.get_inputs()[0].shape[0]
    if not isinstance(dim, int):
        return session.run(names, {INPUT_NAME: x})
    n = len(x)
    padded = np.concatenate([x, np.zeros((-n % dim, *x.shape[1:]), np.float32)])
    slices = [session.run(names, {INPUT_NAME: padded[i : i + dim]}) for i in range(0, len(padded), dim)]
    return [np.concatenate(parts)[:n] for parts in zip(*slices)]


ONNXRUNTIME = BenchRuntime("onnxruntime", "onnxruntime", onnxruntime_runner)
