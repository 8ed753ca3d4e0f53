"""What to export (ExportSpec) and what came out (Artifact)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ExportError
from .targets import DEFAULT_TARGETS


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

    targets: tuple[str, ...] = DEFAULT_TARGETS
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
    explain: bool = False  # per-layer localization of every artifact, not only of those that fail
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def resolution(self) -> str:
        return f"{self.height}x{self.width}"


@dataclass
class RuntimeFacts:
    """What the target's ``load()`` measured while the checks ran the artifact."""

    interpreter_seconds_per_image: float | None = None  # a reference interpreter's speed (Core ML off macOS)
    # "<other runtime>_vs_<gated runtime>" -> {max_abs, max_rel, min_cosine} of their logits
    comparisons: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_details(self) -> dict[str, Any]:
        out = (
            {}
            if self.interpreter_seconds_per_image is None
            else {"interpreter_seconds_per_image": self.interpreter_seconds_per_image}
        )
        return {**out, **self.comparisons}


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
    details: dict[str, Any] = field(default_factory=dict)  # facts of the conversion, recorded in the report as is
    companions: list[Path] = field(default_factory=list)  # files that ship beside it (promoted with it)
    runtime_facts: RuntimeFacts = field(default_factory=RuntimeFacts)

    def report_details(self) -> dict[str, Any]:
        """``details`` as the report shows it: the conversion facts, the companions'
        file names and what running the artifact measured."""
        companions = {"companions": [p.name for p in self.companions]} if self.companions else {}
        return {**self.details, **companions, **self.runtime_facts.as_details()}
