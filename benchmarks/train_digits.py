"""Train CAS-ViT on scikit-learn's digits: ``python -m benchmarks.train_digits``.

Reproducible: fixed split (see :mod:`benchmarks.digits`), fixed seed for weights,
shuffling and augmentation, fixed thread count. Writes an official-format
checkpoint ``{"model": state_dict, "meta": {...}}`` that
``python -m export --checkpoint`` loads.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from casvit import VARIANTS, create_model
from casvit.checkpoint import with_record
from export.fsutil import atomic_write
from export.inputs import to_convention

from .digits import LABELS, NUM_CLASSES, digits_split

SHIFT = 4  # random translation, pixels at 64x64


def augment(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random translation by up to SHIFT pixels (zero fill), per image."""
    n, h, w, _ = rgb.shape
    padded = np.pad(rgb, ((0, 0), (SHIFT, SHIFT), (SHIFT, SHIFT), (0, 0)))
    dy, dx = rng.integers(0, 2 * SHIFT + 1, (2, n))
    return np.stack([padded[i, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])


@torch.no_grad()
def evaluate(model: torch.nn.Module, rgb: np.ndarray, labels: np.ndarray, batch: int = 128) -> float:
    """Top-1 accuracy of the eval model on RGB uint8 images (normalized convention)."""
    model.eval()
    x = to_convention(rgb, "normalized")
    pred = np.concatenate(
        [model(torch.from_numpy(x[i : i + batch])).argmax(1).numpy() for i in range(0, len(x), batch)]
    )
    return float(np.mean(pred == labels))


def train(
    variant: str = "xs",
    epochs: int = 12,
    seed: int = 0,
    size: int = 64,
    batch: int = 64,
    lr: float = 2e-3,
    threads: int = 1,
    limit: int | None = None,
    log=print,
) -> tuple[dict, dict]:
    """Train and return (checkpoint dict, meta). ``limit`` trims the train split (smoke runs)."""
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    data = digits_split(size)
    train_rgb, train_y = data["train_rgb"][:limit], data["train_y"][:limit]
    model = create_model(variant, num_classes=NUM_CLASSES)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    steps = epochs * math.ceil(len(train_y) / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(train_y))
        total = 0.0
        for i in range(0, len(order), batch):
            idx = order[i : i + batch]
            x = torch.from_numpy(to_convention(augment(train_rgb[idx], rng), "normalized"))
            y = torch.from_numpy(train_y[idx])
            out, dist = model(x)
            loss = (F.cross_entropy(out, y) + F.cross_entropy(dist, y)) / 2
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        log(f"epoch {epoch + 1}/{epochs}: loss {total / len(order):.4f} ({time.perf_counter() - start:.0f}s)")
    seconds = time.perf_counter() - start
    meta = {
        "dataset": "sklearn.datasets.load_digits",
        "variant": variant,
        "num_classes": NUM_CLASSES,
        "seed": seed,
        "epochs": epochs,
        "batch": batch,
        "lr": lr,
        "threads": threads,
        "train_images": int(len(train_y)),
        "test_images": int(len(data["test_y"])),
        "train_seconds": round(seconds, 1),
        "train_top1": evaluate(model, data["train_rgb"][:limit], train_y),
        "test_top1": evaluate(model, data["test_rgb"], data["test_y"]),
        "input_convention": "normalized",
    }
    checkpoint = with_record(model.state_dict(), LABELS, size, **meta)
    return checkpoint, checkpoint["meta"]


def save_checkpoint(checkpoint: dict, path: Path) -> None:
    buf = io.BytesIO()
    torch.save(checkpoint, buf)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, buf.getvalue())


def default_checkpoint(variant: str, out_dir: Path = Path("out/digits")) -> Path:
    return out_dir / f"casvit_{variant}_digits.pth"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.train_digits",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--variant", default="xs", choices=list(VARIANTS))
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--res", type=int, default=64, help="square input size, a multiple of 32")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (fixed for reproducibility; 1 is also immune to OpenMP stalls on a busy machine)",
    )
    p.add_argument("--limit", type=int, default=None, help="use only the first N training images (smoke runs)")
    p.add_argument("--out", type=Path, default=None, help="checkpoint path [out/digits/casvit_VARIANT_digits.pth]")
    args = p.parse_args(argv)
    if args.res % 32:
        p.error("--res must be a multiple of 32")
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    checkpoint, meta = train(
        args.variant, args.epochs, args.seed, args.res, threads=args.threads, limit=args.limit, log=log
    )
    out = args.out or default_checkpoint(args.variant)
    save_checkpoint(checkpoint, out)
    print(json.dumps({**meta, "checkpoint": str(out)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
