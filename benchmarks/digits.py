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
LABELS = tuple(str(c) for c in range(NUM_CLASSES))  # the class folder names of write_image_folder


def to_rgb(images: np.ndarray, size: int) -> np.ndarray:
    """(N, 8, 8) digits in 0..16 -> (N, size, size, 3) uint8 RGB."""
    gray = np.clip(np.rint(images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    return np.stack(
        [np.asarray(resize(Image.fromarray(np.repeat(g[:, :, None], 3, axis=2), "RGB"), size, size)) for g in gray]
    )


def digits_split(size: int = 64) -> dict[str, np.ndarray]:
    """Stratified train/test split (fixed seed) as RGB uint8 batches and int64 labels."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        data.images, data.target, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=data.target
    )
    return {
        "train_rgb": to_rgb(x_train, size),
        "train_y": y_train.astype(np.int64),
        "test_rgb": to_rgb(x_test, size),
        "test_y": y_test.astype(np.int64),
    }


def write_image_folder(folder, rgb: np.ndarray, labels: np.ndarray) -> None:
    """An ImageFolder layout (``folder/<digit>/<index>.png``) plus ``folder/labels.txt``
    (0..9, one per line) for ``python -m export --val-dir folder --labels folder/labels.txt``.
    The labels file sits beside the class folders: a file, so it is not taken for a class."""
    from pathlib import Path

    from PIL import Image

    folder = Path(folder)
    for index, (image, label) in enumerate(zip(rgb, labels)):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, "RGB").save(folder / str(label) / f"{index:04d}.png")
    (folder / "labels.txt").write_text("".join(f"{c}\n" for c in LABELS))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.digits",
        description="write the digits (held-out by default) as an ImageFolder for --val-dir",
    )
    parser.add_argument("folder")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (multiple of 32)")
    parser.add_argument("--split", default="test", choices=["test", "train"], help="which part of the split")
    args = parser.parse_args()
    split = digits_split(args.size)
    write_image_folder(args.folder, split[f"{args.split}_rgb"], split[f"{args.split}_y"])
    print(f"{len(split[f'{args.split}_y'])} images in {NUM_CLASSES} class folders under {args.folder}")
