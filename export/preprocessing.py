"""The export's preprocessing record (``casvit.preprocess.Preprocessing``): where its
values come from (official defaults, the checkpoint's training ``args``, CLI
overrides) and how one artifact's input convention extends it."""

from __future__ import annotations

import argparse
import math

from casvit.preprocess import Preprocessing, from_training_args, official_default

from .errors import ExportError
from .inputs import CONVENTIONS


def _training_values(args, overridden: set[str]) -> dict:
    """``crop_pct`` and ``imagenet_default_mean_and_std`` of a checkpoint's training ``args``
    (an ``argparse.Namespace`` or dict), each checked unless the command line overrides
    what it sets: an unusable value is an ExportError naming it and the option to give."""
    values = vars(args) if isinstance(args, argparse.Namespace) else args if isinstance(args, dict) else {}
    out = {}
    crop = values.get("crop_pct")
    if crop is not None and "crop_pct" not in overridden:
        ok = isinstance(crop, (int, float)) and not isinstance(crop, bool) and math.isfinite(crop) and 0 < crop <= 1
        if not ok:
            raise ExportError(
                f"the checkpoint's training args give crop_pct {crop!r}, not a number in (0, 1]; give --crop-pct"
            )
        out["crop_pct"] = float(crop)
    imagenet = values.get("imagenet_default_mean_and_std")
    if imagenet is not None and not {"mean", "std"} <= overridden:
        if not isinstance(imagenet, bool):
            raise ExportError(
                f"the checkpoint's training args give imagenet_default_mean_and_std {imagenet!r}, not True or "
                "False; give --mean and --std"
            )
        out["imagenet_default_mean_and_std"] = imagenet
    return out


def record_for(spec, training_args=None) -> tuple[Preprocessing, str]:
    """The spec's record and where its values came from: the official evaluation
    transform, the checkpoint's training ``args`` over it, the command line over both."""
    o = spec.preprocessing
    overrides = {k: getattr(o, k) for k in ("crop_pct", "interpolation", "mean", "std") if getattr(o, k) is not None}
    if training_args is not None:
        values = _training_values(training_args, set(overrides))
        record, source = from_training_args(values, spec.height, spec.width), "checkpoint args"
    else:
        record, source = official_default(spec.height, spec.width), "official CAS-ViT evaluation defaults"
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
