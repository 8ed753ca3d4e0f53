"""ONNX Runtime as the benchmarks time it, with a thread count. Imports only NumPy
(onnxruntime on use): a benchmark process measuring one runtime's memory must not
load torch or the converters."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..base import BenchRuntime


def onnxruntime_runner(path: str, threads: int, x: np.ndarray) -> Callable[[], object]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x}
    return lambda: session.run(None, feed)


ONNXRUNTIME = BenchRuntime("onnxruntime", "onnxruntime", onnxruntime_runner)
