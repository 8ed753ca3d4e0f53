"""The runtimes the benchmarks time artifacts in, with a thread count. This module
imports only NumPy (each runtime on use): a benchmark process measuring the memory
of one runtime must not load torch or the converters."""
from __future__ import annotations

from typing import Callable

import numpy as np

from .base import BenchRuntime


def quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    """float32 -> a LiteRT tensor's dtype, using its (scale, zero_point) for int8/uint8."""
    dtype = np.dtype(detail["dtype"])
    if dtype == np.float32:
        return x.astype(np.float32)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    """A LiteRT output tensor -> float32, using its (scale, zero_point) when integer."""
    if np.dtype(detail["dtype"]) == np.float32:
        return y.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)


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
