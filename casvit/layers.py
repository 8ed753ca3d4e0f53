"""CAS-ViT building blocks, named as in the official implementation so that
official state dicts load with ``strict=True``.

Each layer holding a BatchNorm knows how to fold it for inference, as timm's
layers do: ``reparameterize()`` folds in place, ``fuse()`` returns the module to
use instead. Both expect eval mode and are meant for a copy (see ``casvit.deploy``)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .fusion import fold_bn_into_next_conv


class Stem(nn.Sequential):
    """Two stride-2 3x3 convs with BN + ReLU: output stride 4 (``patch_embed``)."""

    def __init__(self, in_chs: int, out_chs: int):
        super().__init__(
            nn.Conv2d(in_chs, out_chs // 2, 3, stride=2, padding=1),
            nn.BatchNorm2d(out_chs // 2),
            nn.ReLU(),
            nn.Conv2d(out_chs // 2, out_chs, 3, stride=2, padding=1),
            nn.BatchNorm2d(out_chs),
            nn.ReLU(),
        )

    def fuse(self) -> nn.Sequential:
        """Conv -> ReLU -> conv -> ReLU, each BN folded into the conv before it."""
        return nn.Sequential(fuse_conv_bn_eval(self[0], self[1]), self[2], fuse_conv_bn_eval(self[3], self[4]), self[5])


class Downsample(nn.Module):
    """Stride-2 3x3 conv with bias, then BN (official ``Embedding``)."""

    def __init__(self, in_chs: int, out_chs: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chs, out_chs, 3, stride=2, padding=1)
        self.norm = nn.BatchNorm2d(out_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))

    def fuse(self) -> nn.Conv2d:
        """The one conv equal to ``norm(proj(x))``."""
        return fuse_conv_bn_eval(self.proj, self.norm)


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

    def reparameterize(self) -> None:
        """Fold the BN into the 1x1 conv before it."""
        self.network[0], self.network[1] = fuse_conv_bn_eval(self.network[0], self.network[1]), nn.Identity()


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

    def reparameterize(self) -> None:
        """Fold the BN into the depthwise conv before it."""
        self.block[0], self.block[1] = fuse_conv_bn_eval(self.block[0], self.block[1]), nn.Identity()


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

    def reparameterize(self) -> None:
        """Fold ``norm1`` into the attention's qkv conv and ``norm2`` into the MLP's
        first conv (both 1x1); the sub-layers fold their own BNs."""
        self.attn.qkv = fold_bn_into_next_conv(self.norm1, self.attn.qkv)
        self.mlp.fc1 = fold_bn_into_next_conv(self.norm2, self.mlp.fc1)
        self.norm1 = self.norm2 = nn.Identity()
