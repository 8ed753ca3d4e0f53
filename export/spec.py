"""What to export (ExportSpec) and what came out (Artifact)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ExportError

TARGET_NAMES = ("onnx", "tflite", "coreml")


def parse_resolution(text: str) -> tuple[int, int]:
    """``"224"`` -> (224, 224); ``"192x256"`` -> (192, 256) as (height, width)."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*", str(text))
    if not m:
        raise ExportError(f"resolution {text!r} is not N or HxW (e.g. 224 or 192x256)")
    h, w = int(m.group(1)), int(m.group(2) or m.group(1))
    if h <= 0 or w <= 0 or h % 32 or w % 32:
        raise ExportError(f"resolution {h}x{w} is not supported: height and width must be positive multiples of 32")
    return h, w


@dataclass
class ExportSpec:
    """Everything an export run needs; target-specific options live in ``options``."""

    targets: tuple[str, ...] = ("onnx",)
    variant: str = "xs"
    height: int = 224
    width: int = 224
    batch: int = 1
    dynamic_batch: bool = False  # ONNX only
    embed_normalization: bool = False  # artifact takes RGB in [0, input_range] instead of normalized input
    input_range: float = 1.0
    checkpoint: Path | None = None
    use_ema: bool = False
    num_classes: int | None = None
    labels: Path | None = None  # user labels file, one name per line
    seed: int = 0
    out_dir: Path = Path("out")
    noise_inputs: int = 2  # seeded noise images added to the real photos
    force: bool = False  # write into an OUT holding files we did not write (they are kept)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def resolution(self) -> str:
        return f"{self.height}x{self.width}"


@dataclass
class Artifact:
    """One converted file (or .mlpackage folder) and how to feed it.

    ``input_convention`` says what its input holds: ``"normalized"`` (the
    preprocessing record's mean/std applied), ``"unit"`` (RGB in [0, 1]) or ``"byte"`` (RGB in [0, 255]).
    The harness always hands ``load(artifact)`` an NCHW float32 batch in that
    convention; layout/dtype conversion is the target's business.
    """

    name: str  # unique within a run, e.g. "onnx", "tflite-fp16", "coreml-fp16-palettize8"
    format: str  # "onnx" | "tflite" | "coreml"
    precision: str  # "fp32" | "fp16" | "int8" | "int8-dynamic" | "palettize8" ...
    path: Path
    input_convention: str
    convert_seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)  # recorded in the report as is
