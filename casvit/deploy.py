"""The deploy form: every BatchNorm folded, both heads merged into one 1x1 conv,
optional input normalization in front. Only conv, ReLU, GELU, sigmoid, pooling
and elementwise ops remain."""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from .layers import AdditiveBlock, Downsample, SpatialOperation
from .model import CASViT, check_input_size
from .preprocess import IMAGENET_MEAN, IMAGENET_STD


class InputNormalization(nn.Module):
    """``(x / input_range - mean) / std`` per channel, as one Mul and one Add."""

    def __init__(self, mean=IMAGENET_MEAN, std=IMAGENET_STD, input_range: float = 1.0):
        super().__init__()
        mean, std = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
        self.register_buffer("scale", 1.0 / (input_range * std))
        self.register_buffer("shift", -mean / std)
        self.input_range = input_range

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.shift


class DeployCASViT(nn.Module):
    """Inference-only CAS-ViT classifier produced by :func:`deploy`."""

    def __init__(self, normalize: nn.Module, patch_embed: nn.Module, network: nn.ModuleList, classifier: nn.Conv2d):
        super().__init__()
        self.normalize = normalize
        self.patch_embed = patch_embed
        self.network = network
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input_size(x)
        x = self.patch_embed(self.normalize(x))
        for block in self.network:
            x = block(x)
        return self.classifier(x.mean((2, 3), keepdim=True)).flatten(1)


def fold_bn_into_next_conv(bn: nn.BatchNorm2d, conv: nn.Conv2d) -> nn.Conv2d:
    """A conv equal to ``conv(bn(x))``. Exact only for 1x1 convs without padding
    (torch fuses BN only into the conv before it, so this one is written here)."""
    if conv.kernel_size != (1, 1) or conv.groups != 1 or conv.padding != (0, 0):
        raise ValueError("a BatchNorm folds exactly only into a following ungrouped 1x1 conv")
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, 1, bias=True)
    w = conv.weight.detach()
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros(conv.out_channels)
    with torch.no_grad():
        fused.weight.copy_(w * scale.view(1, -1, 1, 1))
        fused.bias.copy_(bias + (w.flatten(1) @ shift))
    return fused


def _fold_block(block: AdditiveBlock) -> None:
    lp = block.local_perception.network
    lp[0], lp[1] = fuse_conv_bn_eval(lp[0], lp[1]), nn.Identity()
    block.attn.qkv = fold_bn_into_next_conv(block.norm1, block.attn.qkv)
    block.mlp.fc1 = fold_bn_into_next_conv(block.norm2, block.mlp.fc1)
    block.norm1 = block.norm2 = nn.Identity()
    for oper in (block.attn.oper_q[0], block.attn.oper_k[0]):
        assert isinstance(oper, SpatialOperation)
        oper.block[0], oper.block[1] = fuse_conv_bn_eval(oper.block[0], oper.block[1]), nn.Identity()


def _merged_classifier(model: CASViT) -> nn.Conv2d:
    """norm -> mean -> (head + dist_head) / 2 as one 1x1 conv on the pooled map.
    The BN is affine per channel, so it commutes with the spatial mean."""
    bn = model.norm
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale
    heads = [model.head] + ([model.dist_head] if model.dist_head is not None else [])
    w = sum(h.weight for h in heads) / len(heads)
    b = sum(h.bias for h in heads) / len(heads)
    conv = nn.Conv2d(w.shape[1], w.shape[0], 1, bias=True)
    with torch.no_grad():
        conv.weight.copy_((w * scale).view(*w.shape, 1, 1))
        conv.bias.copy_(b + w @ shift)
    return conv


@torch.no_grad()
def deploy(model: CASViT, normalize_input: bool = False, input_range: float = 1.0,
           mean=IMAGENET_MEAN, std=IMAGENET_STD) -> DeployCASViT:
    """A new eval-only module computing ``model.eval()(x)`` with no BatchNorm and no Linear.

    With ``normalize_input`` the module takes RGB in ``[0, input_range]`` (1 or 255)
    and applies ``mean``/``std`` (ImageNet by default) itself. ``model`` is left untouched.
    """
    if model.backbone:
        raise ValueError("deploy() builds a classifier; this model is in backbone mode")
    if input_range not in (1.0, 255.0):
        raise ValueError("input_range must be 1 or 255")
    src = copy.deepcopy(model).eval()
    stem = src.patch_embed
    patch_embed = nn.Sequential(fuse_conv_bn_eval(stem[0], stem[1]), stem[2], fuse_conv_bn_eval(stem[3], stem[4]), stem[5])
    for i, stage in enumerate(src.network):
        if isinstance(stage, Downsample):
            src.network[i] = fuse_conv_bn_eval(stage.proj, stage.norm)
        else:
            for block in stage:
                _fold_block(block)
    normalize = InputNormalization(mean, std, input_range) if normalize_input else nn.Identity()
    out = DeployCASViT(normalize, patch_embed, src.network, _merged_classifier(src)).eval()
    for p in out.parameters():
        p.requires_grad_(False)
    return out


def op_census(module: nn.Module) -> dict[str, int]:
    """Count of leaf module types (what a deployed model is built from)."""
    counts: dict[str, int] = {}
    for m in module.modules():
        if not list(m.children()):
            counts[type(m).__name__] = counts.get(type(m).__name__, 0) + 1
    return counts


__all__ = ["deploy", "DeployCASViT", "InputNormalization", "fold_bn_into_next_conv", "op_census"]
