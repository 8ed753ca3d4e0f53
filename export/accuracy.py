"""Accuracy on the user's labelled images, in the export run itself: eager PyTorch
first, then every artifact that passed its audit (parity misses too, so the
report says what they cost), each in its own runtime (the target's ``load``),
through the same pixels and input convention as parity.

The gate: an artifact fails when its top-1 falls more than ``P`` percentage points
below eager's (``--max-top1-drop``; defaults in ``DEFAULT_MAX_DROP``), except that
losing a single image always passes ("within one image"): one image whose two best
scores are closer than the runtime's rounding may flip in any precision, fp32
included, and on a small set one image is worth more than the whole budget.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from casvit.preprocess import IMAGENET_MEAN, IMAGENET_STD

from . import targets
from .context import log
from .inputs import to_convention
from .labelled_images import ValidationSet, load_validation
from .parity import topk

# Points of top-1 an artifact may lose against eager, by precision family.
DEFAULT_MAX_DROP = {"fp32": 0.0, "fp16": 0.1, "quantized": 1.0}
PROGRESS_SECONDS = 10.0  # a progress line at least this often
CHUNK_SECONDS = 4.0  # aim for runner calls this long, so progress stays within PROGRESS_SECONDS


@dataclass
class CheckResult:
    """One per-artifact check's verdict, as the report records it."""

    name: str
    passed: bool
    summary: str
    details: dict = field(default_factory=dict)


def max_drop_for(precision: str, override: float | None) -> float:
    if override is not None:
        return float(override)
    return DEFAULT_MAX_DROP.get(precision, DEFAULT_MAX_DROP["quantized"])


def scores(logits: np.ndarray, targets: np.ndarray, classes: list[int], eager: np.ndarray | None = None) -> dict:
    """top-1/top-5 (%), correct count, agreement with eager's top-1 (%) and accuracy per class (%)."""
    k = min(5, logits.shape[1])
    top = topk(logits, k)
    hit1 = top[:, 0] == targets
    out = {
        "images": int(len(targets)),
        "correct": int(hit1.sum()),
        "top1": 100.0 * float(hit1.mean()),
        "top5": 100.0 * float((top == targets[:, None]).any(1).mean()),
        "per_class": {str(c): round(100.0 * float(hit1[targets == c].mean()), 4) for c in classes},
    }
    if eager is not None:
        out["agreement"] = 100.0 * float(np.mean(top[:, 0] == topk(eager, 1)[:, 0]))
    return out


def predict(
    runner, rgb: np.ndarray, convention: str, what: str, mean=IMAGENET_MEAN, std=IMAGENET_STD
) -> tuple[np.ndarray, float]:
    """Logits of ``runner`` on every image (normalized with ``mean``/``std``, the
    record's, where the convention asks), in chunks sized so a progress line comes
    at least every PROGRESS_SECONDS; returns (logits, seconds)."""
    start = last_log = time.perf_counter()
    outs, done, chunk = [], 0, 2
    while done < len(rgb):
        t = time.perf_counter()
        outs.append(np.asarray(runner(to_convention(rgb[done : done + chunk], convention, mean, std)), np.float32))
        per_image = (time.perf_counter() - t) / len(outs[-1])
        done += len(outs[-1])
        chunk = int(np.clip(CHUNK_SECONDS / max(per_image, 1e-6), 1, 64))
        if time.perf_counter() - last_log >= PROGRESS_SECONDS / 2 and done < len(rgb):
            last_log = time.perf_counter()
            log(f"{what}: accuracy {done}/{len(rgb)} images ({last_log - start:.0f} s)")
    return np.concatenate(outs), time.perf_counter() - start


def prepare(
    spec, model, labels: list[str], record, weights: dict
) -> tuple[ValidationSet | None, list[str], dict | None]:
    """Calibration guidance, then ``--val-dir`` read and checked (before any conversion)
    and eager measured on it: (the validation set, the report's ``warnings``, its
    ``accuracy`` entry or None)."""
    warnings = [w for w in [calibration_warning(spec, weights)] if w]
    for w in warnings:
        log(f"WARNING: {w}")
    validation = load_validation(spec, labels, record)
    if validation is None:
        return None, warnings, None
    log(
        f"accuracy: {len(validation.files)} images in {len(validation.classes)} classes from {validation.root}"
        + (f" ({len(validation.calibration.names)} more for int8 calibration)" if validation.calibration else "")
    )

    @torch.no_grad()
    def eager(x: np.ndarray) -> np.ndarray:
        return model(torch.from_numpy(x)).numpy()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # like every artifact's runtime here; on a loaded machine more threads wait
    try:
        validation.eager_logits, seconds = predict(
            eager, validation.rgb, "normalized", "eager", record.mean, record.std
        )
    finally:
        torch.set_num_threads(threads)
    row = scores(validation.eager_logits, validation.targets, validation.class_ids)
    log(f"eager: top-1 {row['top1']:.2f}% top-5 {row['top5']:.2f}% on {row['images']} images")
    return (
        validation,
        warnings,
        {
            **validation.describe(),
            "eager": {**row, "seconds": round(seconds, 2)},
            "max_top1_drop": spec.accuracy.max_top1_drop,
            "default_max_top1_drop": DEFAULT_MAX_DROP,
        },
    )


def check(artifact, runner, ctx) -> CheckResult | None:
    """The accuracy check of one artifact (None when the run has no ``--val-dir``)."""
    validation: ValidationSet | None = ctx.validation if ctx is not None else None
    if validation is None:
        return None
    record = ctx.preprocessing
    logits, seconds = predict(runner, validation.rgb, artifact.input_convention, artifact.name, record.mean, record.std)
    row = scores(logits, validation.targets, validation.class_ids, validation.eager_logits)
    eager = scores(validation.eager_logits, validation.targets, [])
    allowed = max_drop_for(artifact.precision, ctx.spec.accuracy.max_top1_drop)
    drop = eager["top1"] - row["top1"]
    lost = eager["correct"] - row["correct"]
    passed = drop <= allowed + 1e-9 or lost <= 1
    net = f"{abs(lost)} image{'s' if abs(lost) != 1 else ''} {'lost' if lost >= 0 else 'gained'}"
    summary = (
        f"top-1 {row['top1']:.2f}% (eager {eager['top1']:.2f}%, drop {drop:.2f} points, {net}; "
        f"allowed {allowed:g} points or one image)"
    )
    log(f"{artifact.name}: accuracy {'ok' if passed else 'FAILED'}: {summary}, {seconds:.1f} s")
    return CheckResult(
        "accuracy",
        passed,
        summary,
        {**row, "seconds": round(seconds, 2), "top1_drop": drop, "images_lost": lost, "max_top1_drop": allowed},
    )


def as_entry(result: CheckResult | None) -> dict | None:
    return asdict(result) if result is not None else None


def calibration_warning(spec, weights: dict) -> str | None:
    """A loud note when a user checkpoint goes to full-integer int8 calibrated on the
    bundled photos, which have nothing to do with the user's classes."""
    c = spec.calibration
    if not (targets.calibrating(spec) and weights.get("for_deployment")) or c.calib or c.calib_from_val:
        return None
    return (
        "int8 of a user checkpoint is calibrated on the bundled scikit-image photos, not on your images: "
        "its accuracy may suffer. Pass --calib FOLDER (images like the ones the model will see) or "
        "--calib-from-val N with --val-dir, and check the accuracy table."
    )
