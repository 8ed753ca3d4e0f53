"""The LiteRT interpreter as the benchmarks time it, with a thread count. Imports
only NumPy (LiteRT on use): a benchmark process measuring one runtime's memory must
not load torch or the converters."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ...litert_io import quantize
from ..base import BenchRuntime


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


LITERT = BenchRuntime("litert", "ai_edge_litert.interpreter", litert_runner)
