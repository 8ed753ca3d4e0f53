"""The runtimes the benchmarks time artifacts in, with a thread count. This module
imports only NumPy (each runtime on use): a benchmark process measuring the memory
of one runtime must not load torch or the converters."""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..verify_arm.runner import quantize  # the LiteRT I/O quantization of the self-contained ARM64 runner
from .base import BenchRuntime


def onnxruntime_runner(path: str, threads: int, x: np.ndarray) -> Callable[[], object]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x}
    return lambda: session.run(None, feed)


def litert_runner(path: str, threads: int, x: np.ndarray) -> Callable[[], object]:
    """LiteRT Interpreter (XNNPACK by default); NCHW input is transposed for an NHWC model."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=path, num_threads=threads)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    data = x.transpose(0, 2, 3, 1) if inp["shape"][-1] == 3 and inp["shape"][1] != 3 else x
    data = np.ascontiguousarray(quantize(data, inp).reshape(inp["shape"]))
    index = inp["index"]

    def run():
        interp.set_tensor(index, data)
        interp.invoke()

    return run


ONNXRUNTIME = BenchRuntime("onnxruntime", "onnxruntime", onnxruntime_runner)
LITERT = BenchRuntime("litert", "ai_edge_litert.interpreter", litert_runner)
