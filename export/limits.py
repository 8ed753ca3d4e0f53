"""Limits of an export run, checked before any work (bad input: ExportError, exit 2).

- ``--batch`` at most 1024: the bound the ONNX export declares for its dynamic
  batch dimension (targets/onnx.py); a fixed batch gets the same bound.
- No tensor of 2**31 elements or more: TFLite kernels count elements in 32-bit
  ints and Pillow, which resizes the parity and calibration photos, takes 32-bit
  sizes. The largest tensors are the input (batch x 3 x H x W) and the first stem
  convolution's output (batch x C/2 x H/2 x W/2, C the first stage width).
- Memory: the peak resident memory is estimated from measurements (README,
  "Limits"): per target a base plus a cost per pixel of every image processed at
  once (eager PyTorch runs the parity inputs 8 at a time; ONNX traces and runs
  the full batch). A run estimated above the machine's physical memory is
  refused; above ``LARGE_RUN_BYTES`` the estimate is printed before the run."""
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
# Peak RSS of `python -m export --variant xs --res R --target T` (6 parity inputs,
# batch 1) at R = 224, 448, 896: (base bytes, bytes per pixel per image processed at once).
MEMORY_MODEL = {
    "onnx": (600 * 2**20, 115),
    "tflite": (600 * 2**20, 115),
    "coreml": (1200 * 2**20, 140),
}
PARITY_ARRAY_BYTES = 16  # per pixel and parity input: uint8 RGB plus float32 copies in two conventions


def physical_memory() -> int:
    """Bytes of RAM of this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _first_width(spec) -> int:
    """First-stage width of the variant (a custom checkpoint is estimated as xs)."""
    config = VARIANTS.get(spec.variant)
    return config.embed_dims[0] if config else MEASURED_WIDTH


def largest_tensor_elements(spec) -> int:
    pixels = spec.batch * spec.height * spec.width
    return pixels * max(3, _first_width(spec) // 8)  # C/2 channels at a quarter of the pixels


def estimate_bytes(spec) -> int:
    """Estimated peak resident memory of the run (see MEMORY_MODEL)."""
    parity_inputs = PARITY_PHOTOS + spec.noise_inputs
    pixels = spec.height * spec.width
    scale = _first_width(spec) / MEASURED_WIDTH
    peaks = []
    for target in spec.targets:
        base, per_pixel = MEMORY_MODEL[target]
        at_once = max(min(REFERENCE_CHUNK, parity_inputs), spec.batch if target == "onnx" else 1)
        peaks.append(base + pixels * (per_pixel * scale * at_once + PARITY_ARRAY_BYTES * parity_inputs))
    return int(max(peaks))


def check(spec) -> None:
    """Refuse a run over the limits; print the memory estimate of a large one."""
    if spec.batch > MAX_BATCH:
        raise ExportError(f"--batch {spec.batch} is over the limit of {MAX_BATCH} (the ONNX batch dimension's bound)")
    elements = largest_tensor_elements(spec)
    if elements > MAX_ELEMENTS:
        raise ExportError(f"--res {spec.resolution} with batch {spec.batch} is too large: a tensor would hold "
                          f"{elements:.3g} elements, over the 32-bit limit of TFLite and Pillow ({MAX_ELEMENTS})")
    need, have = estimate_bytes(spec), physical_memory()
    if need > have:
        raise ExportError(f"--res {spec.resolution} with batch {spec.batch} needs about {need / GIB:.1f} GiB of "
                          f"memory (estimate), more than this machine's {have / GIB:.1f} GiB; lower --res or --batch")
    if need > LARGE_RUN_BYTES:
        log(f"large run: about {need / GIB:.1f} GiB of memory needed (estimate; this machine has {have / GIB:.1f} GiB)")
