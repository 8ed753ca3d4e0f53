"""The preprocessing record: how an image becomes a CAS-ViT input, in one place.

In the spirit of timm's ``pretrained_cfg``, :class:`Preprocessing` holds the
input size, ``crop_pct``, crop mode, interpolation, mean and std. Its defaults
reproduce the official CAS-ViT evaluation transform (``build_transform`` in
CAS-ViT's ``classification/data/datasets.py``):

- size < 384 (``crop_mode="center"``): ``Resize(int(size / crop_pct), BICUBIC)``
  on the shorter side, then ``CenterCrop(size)``; ``crop_pct`` defaults to 224/256;
- size >= 384 (``crop_mode="squash"``): bicubic resize of the whole image to
  size x size, no crop;
- ImageNet mean/std, or 0.5/0.5 when the training ``args`` say
  ``imagenet_default_mean_and_std=False``.

Non-square inputs (``H x W``): the image is scaled, keeping its aspect ratio, to
the smallest size covering ``int(H / crop_pct) x int(W / crop_pct)`` (the longer
side truncated to an integer, as torchvision does), then center-cropped to
``H x W``. For a square input this is exactly ``Resize(int) + CenterCrop``.
``squash`` is chosen when both H and W are >= 384.

The resize and crop follow torchvision's ``Resize(int)`` and ``CenterCrop`` on
PIL images exactly (written here because torchvision is not a dependency):
``Image.resize`` with the Pillow filter, new short side = the requested size,
new long side = ``int(size * long / short)``; crop offsets
``int(round((h - th) / 2.0))`` (Python's round, half to even).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)
DEFAULT_CROP_PCT = 224 / 256
SQUASH_FROM = 384  # official: inputs this large are resized whole, without a crop
INTERPOLATIONS = ("bicubic", "bilinear")
CROP_MODES = ("center", "squash")
SCHEMA = "casvit-preprocessing/1"


@dataclass(frozen=True)
class Preprocessing:
    """How an RGB image becomes the model input (see the module docstring)."""

    height: int
    width: int
    crop_pct: float = DEFAULT_CROP_PCT
    crop_mode: str = "center"
    interpolation: str = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self):
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"input size must be positive, got {self.height}x{self.width}")
        if not 0.0 < self.crop_pct <= 1.0:
            raise ValueError(f"crop_pct must be in (0, 1], got {self.crop_pct}")
        if self.crop_mode not in CROP_MODES:
            raise ValueError(f"crop_mode must be one of {', '.join(CROP_MODES)}, got {self.crop_mode!r}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            raise ValueError("mean and std need 3 values each, std positive")
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    @property
    def resize_size(self) -> tuple[int, int]:
        """(height, width) the image is scaled to cover before the center crop."""
        if self.crop_mode == "squash":
            return self.height, self.width
        return int(self.height / self.crop_pct), int(self.width / self.crop_pct)

    def scaled_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of an image of this size after the resize step."""
        cover_h, cover_w = self.resize_size
        if self.crop_mode == "squash":
            return cover_w, cover_h
        if width * cover_h >= height * cover_w:  # the height is the binding side
            return int(cover_h * width / height), cover_h
        return cover_w, int(cover_w * height / width)

    def crop_box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of the center crop in the scaled image (torchvision's rounding)."""
        left, top = int(round((width - self.width) / 2.0)), int(round((height - self.height) / 2.0))
        return left, top, left + self.width, top + self.height

    def resize_rgb(self, image) -> np.ndarray:
        """An RGB image (PIL image or HxWx3 uint8 array) -> (height, width, 3) uint8 model pixels."""
        image = _as_rgb_image(image)
        scaled = resize(image, *self.scaled_size(image.width, image.height), self.interpolation)
        if self.crop_mode == "center":
            scaled = scaled.crop(self.crop_box(scaled.width, scaled.height))
        return np.asarray(scaled, dtype=np.uint8)

    def normalize(self, rgb: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 -> 3xHxW float32 ``(rgb / 255 - mean) / std``."""
        x = rgb.astype(np.float32).transpose(2, 0, 1) / np.float32(255.0)
        mean = np.asarray(self.mean, np.float32).reshape(3, 1, 1)
        std = np.asarray(self.std, np.float32).reshape(3, 1, 1)
        return ((x - mean) / std).astype(np.float32)

    def __call__(self, image) -> np.ndarray:
        """Image -> 3xHxW float32 normalized model input."""
        return self.normalize(self.resize_rgb(image))

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}}

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        fields = {k: data[k] for k in ("height", "width", "crop_pct", "crop_mode", "interpolation", "mean", "std")}
        return cls(**{**fields, "mean": tuple(fields["mean"]), "std": tuple(fields["std"])})

    def with_overrides(
        self, crop_pct: float | None = None, interpolation: str | None = None, mean=None, std=None
    ) -> Preprocessing:
        """A copy with the given (non-None) values replaced; a crop_pct turns on the center crop."""
        changes = {
            k: v
            for k, v in dict(
                crop_pct=crop_pct,
                interpolation=interpolation,
                mean=None if mean is None else tuple(mean),
                std=None if std is None else tuple(std),
            ).items()
            if v is not None
        }
        if crop_pct is not None:
            changes["crop_mode"] = "center"
        return replace(self, **changes)


def official_default(
    height: int, width: int, imagenet_mean_std: bool = True, crop_pct: float | None = None
) -> Preprocessing:
    """The official evaluation transform for an input size (see the module docstring)."""
    squash = min(height, width) >= SQUASH_FROM
    return Preprocessing(
        height,
        width,
        crop_pct=DEFAULT_CROP_PCT if crop_pct is None else float(crop_pct),
        crop_mode="squash" if squash else "center",
        mean=IMAGENET_MEAN if imagenet_mean_std else INCEPTION_MEAN,
        std=IMAGENET_STD if imagenet_mean_std else INCEPTION_STD,
    )


def from_training_args(args, height: int, width: int) -> Preprocessing:
    """The record an official training run implies: its ``args`` (an ``argparse.Namespace``
    or dict) give ``crop_pct`` and ``imagenet_default_mean_and_std``; missing ones take the
    official defaults. The export size wins over ``args.input_size``."""
    values = vars(args) if not isinstance(args, dict) else args
    return official_default(
        height, width, bool(values.get("imagenet_default_mean_and_std", True)), values.get("crop_pct")
    )


def resize(image, width: int, height: int, interpolation: str = "bilinear"):
    """Pillow resize of a PIL image to (width, height) with the named filter."""
    from PIL import Image

    filters = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}
    return image.resize((width, height), filters[interpolation])


def _as_rgb_image(image):
    from PIL import Image

    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 RGB array, got shape {image.shape} dtype {image.dtype}")
        return Image.fromarray(image, "RGB")
    if image.mode != "RGB":
        raise ValueError(
            f"expected an RGB image, got mode {image.mode!r} (grayscale/alpha/palette images are not accepted)"
        )
    return image
