"""The deploy form: every BatchNorm folded, both heads merged into one 1x1 conv,
optional input normalization in front. Only conv, ReLU, GELU, sigmoid, pooling
and elementwise ops remain."""

from __future__ import annotations

import copy

import torch
from torch import nn

from .fusion import bn_affine, fold_bn_into_next_conv
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


def fold_batchnorms(module: nn.Module) -> None:
    """Fold every BatchNorm the layers know how to fold, in place (call on a copy).

    Walks the tree as ``timm.utils.model.reparameterize_model`` does (timm is not a
    dependency, so these few lines are written here): a child with ``fuse()`` is
    replaced by what it returns, one with ``reparameterize()`` folds itself; then
    its own children are visited."""
    for name, child in module.named_children():
        if hasattr(child, "fuse"):
            child = child.fuse()
            setattr(module, name, child)
        elif hasattr(child, "reparameterize"):
            child.reparameterize()
        fold_batchnorms(child)


def _merged_classifier(model: CASViT) -> nn.Conv2d:
    """norm -> mean -> (head + dist_head) / 2 as one 1x1 conv on the pooled map.
    The BN is affine per channel, so it commutes with the spatial mean."""
    scale, shift = bn_affine(model.norm)
    heads = [model.head] + ([model.dist_head] if model.dist_head is not None else [])
    w = sum(h.weight for h in heads) / len(heads)
    b = sum(h.bias for h in heads) / len(heads)
    conv = nn.Conv2d(w.shape[1], w.shape[0], 1, bias=True)
    with torch.no_grad():
        conv.weight.copy_((w * scale).view(*w.shape, 1, 1))
        conv.bias.copy_(b + w @ shift)
    return conv


@torch.no_grad()
def deploy(
    model: CASViT, normalize_input: bool = False, input_range: float = 1.0, mean=IMAGENET_MEAN, std=IMAGENET_STD
) -> DeployCASViT:
    """A new eval-only module computing ``model.eval()(x)`` with no BatchNorm and no Linear.

    With ``normalize_input`` the module takes RGB in ``[0, input_range]`` (1 or 255)
    and applies ``mean``/``std`` (ImageNet by default) itself. ``model`` is left untouched.
    """
    if model.backbone:
        raise ValueError("deploy() builds a classifier; this model is in backbone mode")
    if input_range not in (1.0, 255.0):
        raise ValueError("input_range must be 1 or 255")
    src = copy.deepcopy(model).eval()
    fold_batchnorms(src)
    normalize = InputNormalization(mean, std, input_range) if normalize_input else nn.Identity()
    out = DeployCASViT(normalize, src.patch_embed, src.network, _merged_classifier(src)).eval()
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


__all__ = ["deploy", "DeployCASViT", "InputNormalization", "fold_batchnorms", "fold_bn_into_next_conv", "op_census"]
