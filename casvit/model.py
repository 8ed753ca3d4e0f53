"""CAS-ViT classifier / backbone and the registry of variants."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .layers import AdditiveBlock, Downsample, Stem

STRIDE = 32
BACKBONE_OUT_INDICES = (0, 2, 4, 6)


@dataclass(frozen=True)
class VariantConfig:
    layers: tuple[int, int, int, int]
    embed_dims: tuple[int, int, int, int]
    mlp_ratio: float = 4.0
    note: str = field(default="", compare=False)


# Official depths/widths (arXiv 2408.03703). "tiny" is the small configuration
# of the reference fixture: for tests and CI only, not a published model.
VARIANTS: dict[str, VariantConfig] = {
    "xs": VariantConfig((2, 2, 4, 2), (48, 56, 112, 220)),
    "s": VariantConfig((3, 3, 6, 3), (48, 64, 128, 256)),
    "m": VariantConfig((3, 3, 6, 3), (64, 96, 192, 384)),
    "t": VariantConfig((3, 3, 6, 3), (96, 128, 256, 512)),
    "tiny": VariantConfig((1, 1, 2, 1), (16, 24, 32, 48), note="test-only configuration"),
}


def check_input_size(x: torch.Tensor) -> None:
    """Reject NCHW inputs whose height or width is not a multiple of 32."""
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected an NCHW RGB batch of shape (N, 3, H, W), got {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % STRIDE or w % STRIDE:
        raise ValueError(f"input size {h}x{w} is not supported: height and width must be multiples of {STRIDE}")


class CASViT(nn.Module):
    """CAS-ViT (official name ``RCViT``).

    Classifier mode: ``patch_embed -> network -> norm -> mean(H, W) -> head``
    (+ ``dist_head``; eval output is the mean of both heads, train output the
    pair). Backbone mode: the four stage maps (strides 4/8/16/32), each after
    its own BatchNorm ``norm0/norm2/norm4/norm6``.
    """

    def __init__(
        self,
        layers=(2, 2, 4, 2),
        embed_dims=(48, 56, 112, 220),
        mlp_ratio: float = 4.0,
        num_classes: int = 1000,
        distillation: bool = True,
        backbone: bool = False,
    ):
        super().__init__()
        if len(layers) != 4 or len(embed_dims) != 4:
            raise ValueError("layers and embed_dims need four entries, one per stage")
        self.layers, self.embed_dims = tuple(layers), tuple(embed_dims)
        self.num_classes = 0 if backbone else num_classes
        self.distillation = distillation and not backbone
        self.backbone = backbone

        self.patch_embed = Stem(3, embed_dims[0])
        network: list[nn.Module] = []
        for i, (depth, dim) in enumerate(zip(layers, embed_dims)):
            network.append(nn.Sequential(*[AdditiveBlock(dim, mlp_ratio) for _ in range(depth)]))
            if i < 3:
                network.append(Downsample(dim, embed_dims[i + 1]))
        self.network = nn.ModuleList(network)

        if backbone:
            for stage, idx in enumerate(BACKBONE_OUT_INDICES):
                self.add_module(f"norm{idx}", nn.BatchNorm2d(embed_dims[stage]))
        else:
            if num_classes < 1:
                raise ValueError("a classifier needs num_classes >= 1 (use backbone=True for features)")
            self.norm = nn.BatchNorm2d(embed_dims[-1])
            self.head = nn.Linear(embed_dims[-1], num_classes)
            self.dist_head = nn.Linear(embed_dims[-1], num_classes) if distillation else None
            self.apply(_init_linear)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        check_input_size(x)
        x = self.patch_embed(x)
        outs = []
        for idx, block in enumerate(self.network):
            x = block(x)
            if self.backbone and idx in BACKBONE_OUT_INDICES:
                outs.append(getattr(self, f"norm{idx}")(x))
        return outs if self.backbone else x

    def forward(self, x: torch.Tensor):
        x = self.forward_features(x)
        if self.backbone:
            return x
        pooled = self.norm(x).flatten(2).mean(-1)
        if self.dist_head is None:
            return self.head(pooled)
        out, dist = self.head(pooled), self.dist_head(pooled)
        return (out, dist) if self.training else (out + dist) / 2


def _init_linear(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        nn.init.zeros_(m.bias)


def create_model(
    variant: str = "xs",
    *,
    layers=None,
    embed_dims=None,
    mlp_ratio: float | None = None,
    num_classes: int = 1000,
    distillation: bool = True,
    backbone: bool = False,
) -> CASViT:
    """Build a registered variant; ``layers``/``embed_dims``/``mlp_ratio`` override it
    (use ``variant="custom"`` with both given for a configuration of your own)."""
    if variant == "custom":
        if layers is None or embed_dims is None:
            raise ValueError("variant 'custom' needs both layers and embed_dims")
        cfg = VariantConfig(tuple(layers), tuple(embed_dims))
    elif variant in VARIANTS:
        cfg = VARIANTS[variant]
    else:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)} or 'custom'")
    return CASViT(
        layers=layers or cfg.layers,
        embed_dims=embed_dims or cfg.embed_dims,
        mlp_ratio=mlp_ratio or cfg.mlp_ratio,
        num_classes=num_classes,
        distillation=distillation,
        backbone=backbone,
    )


def variant_of(layers, embed_dims) -> str:
    """The registered name of a (layers, embed_dims) pair, or ``"custom"``."""
    for name, cfg in VARIANTS.items():
        if tuple(layers) == cfg.layers and tuple(embed_dims) == cfg.embed_dims:
            return name
    return "custom"
