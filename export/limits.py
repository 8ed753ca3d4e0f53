"""Limits of an export run, checked before any work (bad input: ExportError, exit 2).

- ``--batch`` at most 1024: the bound the ONNX export declares for its dynamic
  batch dimension (targets/onnx.py); a fixed batch gets the same bound.
- No tensor of 2**31 elements or more: TFLite kernels count elements in 32-bit
  ints and Pillow, which resizes the parity and calibration photos, takes 32-bit
  sizes. The largest tensors are the input (batch x 3 x H x W) and the first stem
  convolution's output (batch x C/2 x H/2 x W/2, C the first stage width).
- Memory: the peak resident memory is estimated from measurements (docs/design.md,
  "Limits"): per target a base plus a cost per pixel of every image processed at
  once (eager PyTorch runs the parity inputs 8 at a time; ONNX traces and runs
  the full batch), plus a cost per class beyond 1000 (the classifier's weights in
  every copy the converters make; measured for xs at 50,000 classes). A run
  estimated above the machine's physical memory is refused; above
  ``LARGE_RUN_BYTES`` the estimate is printed before the run."""

from __future__ import annotations

import os

from casvit import VARIANTS

from .context import log
from .errors import ExportError

MAX_BATCH = 1024
MAX_ELEMENTS = 2**31 - 1
GIB = 2**30
LARGE_RUN_BYTES = 4 * GIB
REFERENCE_CHUNK = 8  # pipeline.reference_logits
PARITY_PHOTOS = 4  # export.inputs.PHOTOS
MEASURED_WIDTH = 48  # first-stage width of xs, the variant measured; others scale by theirs
MEASURED_LAST_WIDTH = 220  # last-stage width of xs: the per-class costs scale by it
MEASURED_CLASSES = 1000  # the class count of the base measurements
MIB = 2**20
# Each target's MemoryCost (its record) is the peak RSS of `python -m export --variant xs
# --res R --target T [--batch B]` (docs/design.md, "Limits"). The per-pixel costs are fitted
# through the largest measured resolution, so smaller runs are over-estimated a little.
PARITY_ARRAY_BYTES = 16  # per pixel of each parity input: uint8 RGB and float32 copies
CALIBRATION_BYTES = 30  # per pixel of each TFLite calibration image (float32 copies for onnx2tf)
DEFAULT_CALIBRATION_IMAGES = 20  # the bundled set (export.inputs.calibration_images)


def physical_memory() -> int:
    """Bytes of RAM of this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _first_width(spec) -> int:
    """First-stage width of the variant (a custom checkpoint is estimated as xs)."""
    config = VARIANTS.get(spec.variant)
    return config.embed_dims[0] if config else MEASURED_WIDTH


def _last_width(spec) -> int:
    """Last-stage width of the variant, which the classifier reads (a custom checkpoint is estimated as xs)."""
    config = VARIANTS.get(spec.variant)
    return config.embed_dims[-1] if config else MEASURED_LAST_WIDTH


def largest_tensor_elements(spec) -> int:
    pixels = spec.batch * spec.height * spec.width
    return pixels * max(3, _first_width(spec) // 8)  # C/2 channels at a quarter of the pixels


def estimate_bytes(spec) -> int:
    """Estimated peak resident memory of the run (each target's ``memory`` record): the
    largest over its targets."""
    from . import targets

    parity_inputs = PARITY_PHOTOS + spec.noise_inputs
    scale = _first_width(spec) / MEASURED_WIDTH
    peaks = []
    for name in spec.targets:
        cost = targets.get(name).memory
        stages = max(cost.per_reference_pixel * min(REFERENCE_CHUNK, parity_inputs), cost.per_batch_pixel * spec.batch)
        per_pixel = stages * scale + PARITY_ARRAY_BYTES * parity_inputs
        if cost.extra_per_pixel is not None:
            per_pixel += cost.extra_per_pixel(spec)
        classes = max(0, (spec.num_classes or MEASURED_CLASSES) - MEASURED_CLASSES)
        per_class = cost.per_class * _last_width(spec) / MEASURED_LAST_WIDTH
        peaks.append(cost.base_bytes + spec.height * spec.width * per_pixel + classes * per_class)
    return int(max(peaks))


def calibration_images(spec) -> int:
    """How many images a run calibrates on (a folder's count is an upper bound)."""
    c = spec.calibration
    if c.calib_from_val is not None:
        return c.calib_from_val
    return DEFAULT_CALIBRATION_IMAGES if c.calib is None else c.calib_count


def check(spec) -> None:
    """Refuse a run over the limits; print the memory estimate of a large one."""
    if spec.batch > MAX_BATCH:
        raise ExportError(f"--batch {spec.batch} is over the limit of {MAX_BATCH} (the ONNX batch dimension's bound)")
    elements = largest_tensor_elements(spec)
    if elements > MAX_ELEMENTS:
        raise ExportError(
            f"--res {spec.resolution} with batch {spec.batch} is too large: a tensor would hold "
            f"{elements:.3g} elements, over the 32-bit limit of TFLite and Pillow ({MAX_ELEMENTS})"
        )
    head = (spec.num_classes or MEASURED_CLASSES) * _last_width(spec)
    if head > MAX_ELEMENTS:
        raise ExportError(
            f"{spec.num_classes} classes are too many: the classifier's weights would hold {head:.3g} elements, "
            f"over the 32-bit limit of TFLite ({MAX_ELEMENTS})"
        )
    need, have = estimate_bytes(spec), physical_memory()
    if need > have:
        raise ExportError(
            f"--res {spec.resolution} with batch {spec.batch} and {spec.num_classes} classes needs about "
            f"{need / GIB:.1f} GiB of memory (estimate), more than this machine's {have / GIB:.1f} GiB; "
            "lower --res, --batch or --num-classes"
        )
    if need > LARGE_RUN_BYTES:
        log(f"large run: about {need / GIB:.1f} GiB of memory needed (estimate; this machine has {have / GIB:.1f} GiB)")
