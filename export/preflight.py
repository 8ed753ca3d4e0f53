"""Every check on an export request that needs no model: the generic options, each
target's own options (``validate(spec)`` in the target module), option
combinations, and the resource limits (``export.limits``). The pipeline calls
:func:`validate` before it builds the model, so bad input costs no conversion
time and is a one-line ExportError (exit 2)."""

from __future__ import annotations

from pathlib import Path

from casvit import VARIANTS

from . import labelled_images, limits, targets
from .errors import ExportError
from .spec import ExportSpec

# numpy's legacy seeding (np.random.seed) and TensorFlow take 32-bit seeds; one range valid everywhere.
SEED_MAX = 2**32 - 1
# Every parity input runs through every artifact (Core ML ones in the NumPy MIL
# interpreter, about a second per input at 224x224); more says nothing new.
MAX_NOISE_INPUTS = 256


def validate(spec: ExportSpec) -> None:
    """Raise ExportError for the first thing wrong with ``spec``; print a memory
    estimate when the run will be large."""
    _check_targets(spec.targets)
    _check_model(spec)
    _check_inputs(spec)
    for name in spec.targets:
        check = targets.get(name).validate
        if check is not None:
            check(spec)
    _check_calibration_use(spec)
    labelled_images.check_options(spec.options)  # --val-dir and its companions
    limits.check(spec)


def _check_targets(names) -> None:
    unknown = [n for n in names if n not in targets.names()]
    if unknown or not names:
        raise ExportError(
            f"unknown target {', '.join(map(str, unknown)) or 'list (empty)'}; choose from {', '.join(targets.names())}"
        )


def _check_file(path: Path | None, what: str) -> None:
    if path is None:
        return
    path = Path(path)
    if path.is_dir():
        raise ExportError(f"{what} {path} is a directory, not a file")
    if not path.is_file():
        raise ExportError(f"{what} not found: {path}")


def _check_model(spec: ExportSpec) -> None:
    if spec.variant == "custom" and spec.checkpoint is None:
        raise ExportError(
            "--variant custom takes its architecture from a checkpoint: give --checkpoint, "
            f"or choose one of {', '.join(VARIANTS)}"
        )
    if spec.variant not in (*VARIANTS, "custom"):
        raise ExportError(f"unknown variant {spec.variant!r}; choose from {', '.join(VARIANTS)} or custom")
    _check_file(spec.checkpoint, "checkpoint")
    _check_file(spec.labels, "labels file")
    if spec.num_classes is not None and spec.num_classes < 1:
        raise ExportError(f"--num-classes must be at least 1, got {spec.num_classes}")
    if not 0 <= spec.seed <= SEED_MAX:
        raise ExportError(f"--seed must be a whole number from 0 to {SEED_MAX}, got {spec.seed}")


def _check_inputs(spec: ExportSpec) -> None:
    if spec.batch < 1:
        raise ExportError(f"--batch must be at least 1, got {spec.batch}")
    if not 0 <= spec.noise_inputs <= MAX_NOISE_INPUTS:
        raise ExportError(f"--noise-inputs must be from 0 to {MAX_NOISE_INPUTS}, got {spec.noise_inputs}")


def _check_calibration_use(spec: ExportSpec) -> None:
    """A calibration folder only calibrates the run's integer models (``Target.calibrates``):
    asked for without one, it would be silently ignored, so it is an error."""
    if spec.options.get("calib") is not None and not targets.calibrating(spec):
        raise ExportError(
            "--calib is only used to calibrate an int8 model (TFLite int8, Core ML w8a8), which this run does "
            "not make: add one (e.g. --target tflite with int8 in --tflite-precisions, or --coreml-precision w8a8) "
            "or drop --calib"
        )
