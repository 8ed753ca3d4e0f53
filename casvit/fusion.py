"""BatchNorm folding primitives used by the layers' ``reparameterize()``/``fuse()``.

A BatchNorm in eval mode is the per-channel affine map ``x * scale + shift``;
torch's ``fuse_conv_bn_eval`` folds it into the conv *before* it, and
:func:`fold_bn_into_next_conv` (written here, torch has none) into the 1x1 conv
*after* it."""

from __future__ import annotations

import torch
from torch import nn


def bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scale, shift)`` with ``bn.eval()(x) == x * scale + shift`` per channel."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale
    return scale, shift


def fold_bn_into_next_conv(bn: nn.BatchNorm2d, conv: nn.Conv2d) -> nn.Conv2d:
    """A conv equal to ``conv(bn(x))``. Exact only for 1x1 convs without padding
    (torch fuses BN only into the conv before it, so this one is written here)."""
    if conv.kernel_size != (1, 1) or conv.groups != 1 or conv.padding != (0, 0):
        raise ValueError("a BatchNorm folds exactly only into a following ungrouped 1x1 conv")
    scale, shift = bn_affine(bn)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, 1, bias=True)
    w = conv.weight.detach()
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros(conv.out_channels)
    with torch.no_grad():
        fused.weight.copy_(w * scale.view(1, -1, 1, 1))
        fused.bias.copy_(bias + (w.flatten(1) @ shift))
    return fused
