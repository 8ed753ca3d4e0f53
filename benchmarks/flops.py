"""Compute per image and the machine's float32 peak.

MACs are counted by hand with forward hooks on every ``nn.Conv2d`` of the deploy
model (no FLOP-counting library is installed): output elements x input channels
per group x kernel area. Elementwise ops, sigmoid, GELU and pooling are not
counted, as in the published figures.
"""

from __future__ import annotations

import time

import torch

from casvit import create_model, deploy

# CAS-ViT paper (arXiv 2408.03703), Table 1, ImageNet-1K classifiers at 224x224.
PUBLISHED_GMACS = {"xs": 0.56, "s": 0.93, "m": 1.89, "t": 3.6}


@torch.no_grad()
def conv_macs(model: torch.nn.Module, height: int, width: int) -> int:
    """Multiply-accumulates of every Conv2d for one (1, 3, H, W) input."""
    total = 0

    def hook(conv: torch.nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        kh, kw = conv.kernel_size
        total += output[0].numel() * (conv.in_channels // conv.groups) * kh * kw

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    try:
        model.eval()(torch.zeros(1, 3, height, width))
    finally:
        for h in handles:
            h.remove()
    return total


def variant_gmacs(variant: str, height: int, width: int, num_classes: int = 1000) -> float:
    """GMACs of the deploy form of ``variant`` (weights do not matter)."""
    return conv_macs(deploy(create_model(variant, num_classes=num_classes).eval()), height, width) / 1e9


def _best_gflops(run, n: int, repeats: int) -> float:
    run()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter_ns()
        run()
        best = min(best, time.perf_counter_ns() - start)
    return 2 * n**3 / best


def matmul_peak_gflops(threads: int = 1, n: int = 2048, repeats: int = 5) -> dict[str, float]:
    """Best float32 GFLOP/s of an n x n x n matrix multiply on ``threads`` threads, in
    torch and in ONNX Runtime (MLAS), and the better of the two as ``best``. Both are
    measured because their GEMM kernels differ per CPU (on AMD, torch's stays on
    AVX2 while MLAS uses AVX-512), and the peak should be what the machine can do."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    a, b = torch.randn(n, n), torch.randn(n, n)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out = {"torch": _best_gflops(lambda: a @ b, n, repeats)}
    finally:
        torch.set_num_threads(previous)
    spec = [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in "abc"]
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul", spec[:2], spec[2:])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    session = ort.InferenceSession(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString(),
        opts,
        providers=["CPUExecutionProvider"],
    )
    feed = {"a": np.ascontiguousarray(a.numpy()), "b": np.ascontiguousarray(b.numpy())}
    out["onnxruntime"] = _best_gflops(lambda: session.run(None, feed), n, repeats)
    out["best"] = max(out.values())
    return {k: round(v, 2) for k, v in out.items()}
