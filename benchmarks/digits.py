"""scikit-learn's handwritten digits as RGB images the toolchain can eat.

The 8x8 grayscale digits (values 0..16) become RGB uint8 images upsampled with
a plain Pillow bilinear resize of the whole image (no crop: the digits fill
their 8x8 frame; this is how the dataset is made, not the evaluation transform)
to a multiple of 32: CAS-ViT has an output stride of 32, so 64x64 leaves a 2x2
map in the last stage (32x32 would leave one pixel) while keeping training cheap.
Every runtime then sees the same pixels through ``export.inputs.to_convention``.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from casvit.preprocess import resize

SPLIT_SEED = 0
TEST_FRACTION = 0.2
NUM_CLASSES = 10


def to_rgb(images: np.ndarray, size: int) -> np.ndarray:
    """(N, 8, 8) digits in 0..16 -> (N, size, size, 3) uint8 RGB."""
    gray = np.clip(np.rint(images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return np.stack([np.asarray(resize(Image.fromarray(np.repeat(g[:, :, None], 3, axis=2), "RGB"), size, size))
                     for g in gray])


def digits_split(size: int = 64) -> dict[str, np.ndarray]:
    """Stratified train/test split (fixed seed) as RGB uint8 batches and int64 labels."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        data.images, data.target, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=data.target)
    return {"train_rgb": to_rgb(x_train, size), "train_y": y_train.astype(np.int64),
            "test_rgb": to_rgb(x_test, size), "test_y": y_test.astype(np.int64)}
