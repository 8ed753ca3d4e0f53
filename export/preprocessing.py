"""The export's preprocessing record (``casvit.preprocess.Preprocessing``): where its
values come from (official defaults, the checkpoint's training ``args``, CLI
overrides) and how one artifact's input convention extends it."""

from __future__ import annotations

import argparse

from casvit.checkpoint import CheckpointError, read_checkpoint
from casvit.preprocess import INTERPOLATIONS, Preprocessing, from_training_args, official_default

from .errors import ExportError
from .inputs import CONVENTIONS


def _three_floats(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in str(text).replace(" ", "").split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three comma-separated numbers (R,G,B), got {text!r}")
    return values


def _crop_pct(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"crop_pct must be a number in (0, 1], got {text!r}")
    return value


def add_arguments(group) -> None:
    """The record's CLI overrides (defaults: the checkpoint's training args, else the official transform)."""
    group.add_argument(
        "--crop-pct",
        type=_crop_pct,
        default=None,
        help="center crop fraction: resize the shorter side to size/crop_pct, crop size "
        "(default: checkpoint args, else 0.875; inputs >= 384 are resized whole)",
    )
    group.add_argument(
        "--interpolation",
        choices=INTERPOLATIONS,
        default=None,
        help="resize filter (Pillow), default bicubic as in the official evaluation",
    )
    group.add_argument(
        "--mean",
        type=_three_floats,
        default=None,
        help="per-channel mean R,G,B of RGB/255 (default: ImageNet, or 0.5 when the "
        "checkpoint args say imagenet_default_mean_and_std=False)",
    )
    group.add_argument("--std", type=_three_floats, default=None, help="per-channel std R,G,B (see --mean)")


def training_args(checkpoint) -> object | None:
    """The ``args`` entry of an official training checkpoint, or None."""
    if checkpoint is None:
        return None
    try:
        args = read_checkpoint(checkpoint).get("args")
    except CheckpointError as e:
        raise ExportError(str(e)) from None
    return args if isinstance(args, (argparse.Namespace, dict)) else None


def record_for(spec) -> tuple[Preprocessing, str]:
    """The spec's record and where its values came from."""
    args = training_args(spec.checkpoint)
    if args is not None:
        record, source = from_training_args(args, spec.height, spec.width), "checkpoint args"
    else:
        record, source = official_default(spec.height, spec.width), "official CAS-ViT evaluation defaults"
    o = spec.options
    overrides = {k: o.get(k) for k in ("crop_pct", "interpolation", "mean", "std") if o.get(k) is not None}
    if overrides:
        try:
            record = record.with_overrides(**overrides)
        except ValueError as e:
            raise ExportError(f"preprocessing: {e}") from None
        source += " + command line (" + ", ".join(f"--{k.replace('_', '-')}" for k in overrides) + ")"
    return record, source


def convention_of(embed_normalization: bool, input_range: float) -> str:
    return "normalized" if not embed_normalization else ("byte" if input_range == 255.0 else "unit")


def artifact_record(record: Preprocessing, convention: str) -> dict:
    """The record plus what one artifact's input holds: RGB in [0, 1] or [0, 255] with the
    normalization inside the model, or the normalized values."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown input convention {convention!r}")
    return {
        **record.to_dict(),
        "input_convention": convention,
        "normalization_embedded": convention != "normalized",
        "input_range": [0.0, 255.0 if convention == "byte" else 1.0],
    }
