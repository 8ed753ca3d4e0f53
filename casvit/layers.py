"""CAS-ViT building blocks, named as in the official implementation so that
official state dicts load with ``strict=True``."""
from __future__ import annotations

import torch
from torch import nn


def stem(in_chs: int, out_chs: int) -> nn.Sequential:
    """Two stride-2 3x3 convs with BN + ReLU: output stride 4 (``patch_embed``)."""
    return nn.Sequential(
        nn.Conv2d(in_chs, out_chs // 2, 3, stride=2, padding=1),
        nn.BatchNorm2d(out_chs // 2),
        nn.ReLU(),
        nn.Conv2d(out_chs // 2, out_chs, 3, stride=2, padding=1),
        nn.BatchNorm2d(out_chs),
        nn.ReLU(),
    )


class Downsample(nn.Module):
    """Stride-2 3x3 conv with bias, then BN (official ``Embedding``)."""

    def __init__(self, in_chs: int, out_chs: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chs, out_chs, 3, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(out_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))


class LocalIntegration(nn.Module):
    """1x1 conv -> BN -> depthwise 3x3 conv -> GELU -> 1x1 conv."""

    def __init__(self, dim: int):
        super().__init__()
        self.network = nn.Sequential(
            nn.Conv2d(dim, dim, 1),
            nn.BatchNorm2d(dim),
            nn.Conv2d(dim, dim, 3, padding=1, groups=dim),
            nn.GELU(),
            nn.Conv2d(dim, dim, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)


class SpatialOperation(nn.Module):
    """Spatial gate: ``x * sigmoid(conv1x1(relu(bn(dwconv3x3(x)))))`` (one map for all channels)."""

    def __init__(self, dim: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, 3, padding=1, groups=dim),
            nn.BatchNorm2d(dim),
            nn.ReLU(),
            nn.Conv2d(dim, 1, 1, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.block(x)


class ChannelOperation(nn.Module):
    """Channel gate: ``x * sigmoid(conv1x1(global_avg_pool(x)))``."""

    def __init__(self, dim: int):
        super().__init__()
        self.block = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(dim, dim, 1, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.block(x)


class CASAtt(nn.Module):
    """Convolutional additive self-attention, a drop-in token mixer for NCHW maps.

    ``q, k, v = split(qkv(x))``; q and k each pass a spatial then a channel
    gate; ``out = proj(dwc(q + k) * v)``. Only convs, sigmoid, ReLU, pooling
    and elementwise ops: no softmax, no matmul, linear in the number of
    tokens, and any spatial size works (odd ones too).

    Example::

        >>> import torch
        >>> from casvit import CASAtt
        >>> mixer = CASAtt(64)
        >>> mixer(torch.randn(2, 64, 13, 17)).shape
        torch.Size([2, 64, 13, 17])
    """

    def __init__(self, dim: int, qkv_bias: bool = False):
        super().__init__()
        self.qkv = nn.Conv2d(dim, 3 * dim, 1, bias=qkv_bias)
        self.oper_q = nn.Sequential(SpatialOperation(dim), ChannelOperation(dim))
        self.oper_k = nn.Sequential(SpatialOperation(dim), ChannelOperation(dim))
        self.dwc = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.proj = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=1)
        return self.proj(self.dwc(self.oper_q(q) + self.oper_k(k)) * v)


class Mlp(nn.Module):
    """1x1 conv expand -> GELU -> 1x1 conv project."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class AdditiveBlock(nn.Module):
    """Local integration, CASAtt and MLP, each with a residual."""

    def __init__(self, dim: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.local_perception = LocalIntegration(dim)
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = CASAtt(dim)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.local_perception(x)
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))
