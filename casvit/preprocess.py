"""Image preprocessing shared by every runtime: the single definition the
parity harness, calibration and the Android core module follow.

Steps: RGB uint8 image -> centered crop with the target aspect ratio
(:func:`center_crop_box`) -> Pillow bilinear resize to (W, H) -> float32 in
[0, 1] -> ``(x - mean) / std`` unless the model embeds normalization.
"""
from __future__ import annotations

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def center_crop_box(width: int, height: int, out_width: int, out_height: int) -> tuple[int, int, int, int]:
    """Largest centered box (left, top, right, bottom) of the image with aspect
    ``out_width:out_height``, in integer pixels (integer arithmetic only)."""
    if width * out_height > height * out_width:  # image wider than target
        crop_w, crop_h = (height * out_width) // out_height, height
    else:
        crop_w, crop_h = width, (width * out_height) // out_width
    left, top = (width - crop_w) // 2, (height - crop_h) // 2
    return left, top, left + crop_w, top + crop_h


def resize_rgb(image, height: int, width: int) -> np.ndarray:
    """Center-crop and bilinearly resize an RGB image (PIL image or HxWx3 uint8 array)
    to an ``(height, width, 3)`` uint8 array."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 RGB array, got shape {image.shape} dtype {image.dtype}")
        image = Image.fromarray(image, "RGB")
    if image.mode != "RGB":
        raise ValueError(f"expected an RGB image, got mode {image.mode!r} (grayscale/alpha/palette images are not accepted)")
    box = center_crop_box(image.width, image.height, width, height)
    return np.asarray(image.crop(box).resize((width, height), Image.BILINEAR), dtype=np.uint8)


def to_model_input(rgb: np.ndarray, normalize: bool = True, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> np.ndarray:
    """HxWx3 uint8 -> 3xHxW float32 in [0, 1], normalized with mean/std when asked."""
    x = rgb.astype(np.float32).transpose(2, 0, 1) / np.float32(255.0)
    if normalize:
        x = (x - np.asarray(mean, np.float32).reshape(3, 1, 1)) / np.asarray(std, np.float32).reshape(3, 1, 1)
    return x.astype(np.float32)


def preprocess(image, height: int, width: int, normalize: bool = True) -> np.ndarray:
    """Image -> 3xHxW float32 model input (see the module docstring)."""
    return to_model_input(resize_rgb(image, height, width), normalize)
