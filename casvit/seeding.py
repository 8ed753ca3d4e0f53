"""Seeded non-trivial BatchNorm statistics for random-weight models: freshly built
models have mean 0 / var 1 everywhere, which would make BN folding a no-op and
hide folding bugs in tests and random-weight exports."""

from __future__ import annotations

import torch


@torch.no_grad()
def randomize_batchnorm(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            m.weight.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.copy_(torch.randn(n, generator=g) * 0.2)
    return model
