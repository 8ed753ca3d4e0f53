"""What to export (ExportSpec, with its option records) and what came out (Artifact)."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from casvit import VARIANTS
from casvit.preprocess import INTERPOLATIONS

from . import options
from . import targets as registry
from .errors import ExportError
from .options import OptionRecord, comma_list, finite_number, group, option, path, three_numbers, whole_number

SEED_MAX = 2**32 - 1  # numpy's legacy seeding and TensorFlow take 32-bit seeds: one range valid everywhere
MAX_BATCH = 1024  # the bound the ONNX export declares for its dynamic batch dimension
# Every parity input runs through every artifact (Core ML ones in the MIL interpreter); more says nothing new.
MAX_NOISE_INPUTS = 256
DEFAULT_VARIANT, DEFAULT_SIZE = "xs", 224


def parse_resolution(value: Any) -> tuple[int, int]:
    """``"224"`` -> (224, 224); ``"192x256"`` or (192, 256) -> (192, 256) as (height, width)."""
    if isinstance(value, (tuple, list)) and len(value) == 2:
        value = "x".join(map(str, value))
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*", str(value))
    if not m:
        raise ExportError(f"resolution {value!r} is not N or HxW (e.g. 224 or 192x256)")
    h, w = int(m.group(1)), int(m.group(2) or m.group(1))
    if h <= 0 or w <= 0 or h % 32 or w % 32:
        raise ExportError(f"resolution {h}x{w} is not supported: height and width must be positive multiples of 32")
    return h, w


def _resolution(value: Any) -> tuple[int, int]:
    try:
        return parse_resolution(value)
    except ExportError as e:
        raise ValueError(str(e)) from None


def _labels(value: Any) -> Path | tuple[str, ...]:
    """A labels file, or the names themselves (the Python API)."""
    if isinstance(value, (str, Path)):
        return path(value)
    names = tuple(value)
    if not names or not all(isinstance(n, str) for n in names):
        raise ValueError("expected a labels file or a list of class names")
    return names


def _image_count(value: Any) -> int:
    return whole_number(1)(value)


@dataclass(frozen=True)
class PreprocessingOptions(OptionRecord):
    """Command-line overrides of the preprocessing record (``export.preprocessing``)."""

    crop_pct: float | None = option(
        None,
        "center crop fraction: resize the shorter side to size/crop_pct, then crop size",
        parse=finite_number(1e-6, 1.0),
        default_text="checkpoint args, else 0.875; sizes of 384 and more are resized whole",
    )
    interpolation: str | None = option(
        None, "resize filter (Pillow)", choices=INTERPOLATIONS, default_text="bicubic, as the official evaluation"
    )
    mean: tuple[float, float, float] | None = option(
        None,
        "per-channel mean R,G,B of RGB/255",
        parse=three_numbers(),
        metavar="R,G,B",
        default_text="ImageNet, or 0.5 when the checkpoint args say imagenet_default_mean_and_std=False",
    )
    std: tuple[float, float, float] | None = option(
        None, "per-channel std R,G,B", parse=three_numbers(positive=True), metavar="R,G,B", default_text="see --mean"
    )


@dataclass(frozen=True)
class AccuracyOptions(OptionRecord):
    """The accuracy check on the user's labelled images (``export.accuracy``)."""

    val_dir: Path | None = option(
        None,
        "labelled images to measure top-1/top-5 of eager PyTorch and every artifact on: one subfolder per "
        "class, named exactly like a label",
        parse=path,
        metavar="FOLDER",
    )
    val_count: int | None = option(
        None,
        "at most this many --val-dir images (stratified per class, seeded by --seed)",
        parse=_image_count,
        metavar="N",
        default_text="all",
    )
    max_top1_drop: float | None = option(
        None,
        "accuracy gate: largest top-1 drop vs eager, in percentage points, for every artifact; "
        "a loss of one image always passes",
        parse=finite_number(0.0, 100.0),
        metavar="POINTS",
        default_text="fp32 0, fp16 0.1, int8 and compressed weights 1.0",
    )


@dataclass(frozen=True)
class CalibrationOptions(OptionRecord):
    """The images int8 models are calibrated on (``export.calibration``)."""

    calib: Path | None = option(
        None,
        "folder of images to calibrate int8 on; an error when the run makes no calibrated model",
        parse=path,
        metavar="FOLDER",
        default_text="scikit-image's bundled photos",
    )
    calib_count: int = option(
        100, "at most this many calibration images (first by file name)", parse=_image_count, metavar="N"
    )
    calib_from_val: int | None = option(
        None,
        "calibrate on N --val-dir images (stratified) instead of --calib; they are left out of the accuracy "
        "measurement",
        parse=_image_count,
        metavar="N",
    )


@dataclass(frozen=True)
class ExportSpec(OptionRecord):
    """Everything an export run needs. ``variant``, ``num_classes``, ``res`` and
    ``out_dir`` left as None are filled from the model source (``export.source``):
    the checkpoint's own record, else the defaults."""

    targets: tuple[str, ...] = option(
        registry.DEFAULT_TARGETS,
        "comma-separated targets, or all",
        parse=lambda v: parse_targets(v),
        flag="--target",
        metavar="|".join([*registry.names(), "all"]),
    )
    checkpoint: Path | None = option(
        None,
        "official-format .pth (bare, {'model'}, {'model_ema'}, {'state_dict'}); without it seeded random weights "
        "are used and the report says NOT FOR DEPLOYMENT",
        parse=path,
        metavar="FILE",
    )
    use_ema: bool = option(False, "use the checkpoint's 'model_ema' weights", flag="--ema")
    variant: str | None = option(
        None,
        "model variant ('tiny' is a test-only configuration; 'custom' takes the architecture from the checkpoint)",
        choices=(*VARIANTS, "custom"),
        default_text=f"the checkpoint's, else {DEFAULT_VARIANT}",
    )
    num_classes: int | None = option(
        None,
        "class count",
        parse=whole_number(1),
        metavar="N",
        default_text="the checkpoint's, else the labels' count, else 1000",
    )
    labels: Path | tuple[str, ...] | None = option(
        None,
        "class names, one per line",
        parse=_labels,
        metavar="FILE",
        default_text="the checkpoint's, else ImageNet-1K names for 1000 classes",
    )
    seed: int = option(0, "seed for random weights and noise inputs", parse=whole_number(0, SEED_MAX))
    res: tuple[int, int] | None = option(
        None,
        "input resolution, N or HxW, multiples of 32",
        parse=_resolution,
        metavar="N|HxW",
        default_text=f"the checkpoint's, else {DEFAULT_SIZE}",
    )
    batch: int = option(
        1, "fixed batch size of artifacts with a batch dimension (ONNX)", parse=whole_number(1, MAX_BATCH), metavar="N"
    )
    embed_normalization: bool = option(
        False,
        "put the record's mean/std inside the model: input is RGB in [0, --input-range] (Core ML image inputs "
        "and every .tflite always embed it)",
    )
    input_range: float = option(
        1.0, "RGB scale of inputs with the normalization embedded", parse=float, choices=(1.0, 255.0), metavar="1|255"
    )
    out_dir: Path | None = option(
        None, "output folder", parse=path, flag="--out", metavar="FOLDER", default_text="out/<variant>_<res>"
    )
    noise_inputs: int = option(
        2, "seeded noise images added to the parity photos", parse=whole_number(0, MAX_NOISE_INPUTS), metavar="N"
    )
    force: bool = option(
        False,
        "write into an OUT that holds files this tool did not write (they are kept, never overwritten); "
        "without it such a folder is refused",
    )
    replace_set: bool = option(
        False,
        "replace the whole set in OUT (every target's artifacts) even when it comes from other weights, "
        "labels, resolution or preprocessing; without it such a set is refused, and a set of the same "
        "weights keeps the artifacts of targets this run does not produce",
    )
    explain: bool = option(
        False,
        "per-layer localization (error against eager at every block boundary, report.md table and picture) for "
        "every artifact, not only for those that fail a parity or accuracy gate",
    )
    preprocessing: PreprocessingOptions = group(PreprocessingOptions, "preprocessing record (how images become inputs)")
    accuracy: AccuracyOptions = group(AccuracyOptions, "accuracy on your labelled images")
    calibration: CalibrationOptions = group(CalibrationOptions, "int8 calibration images")
    target_options: dict[str, Any] = field(default_factory=dict)  # target name -> its option record

    @property
    def height(self) -> int:
        return self.res[0]

    @property
    def width(self) -> int:
        return self.res[1]

    @property
    def resolution(self) -> str:
        return f"{self.height}x{self.width}"

    def options_of(self, target: str) -> Any:
        """The option record of a target (its defaults when the spec holds none); None without options."""
        record = registry.get(target).options
        return self.target_options.get(target) or (record() if record is not None else None)


def parse_targets(value: Any) -> tuple[str, ...]:
    """``"tflite,onnx"``, ``["tflite", "onnx"]`` or ``"all"`` -> registered names in registry order
    (a target comes after those whose artifacts it may reuse)."""
    known = registry.names()
    chosen = [str(t).strip() for t in (str(value).split(",") if isinstance(value, str) else value) if str(t).strip()]
    if "all" in chosen:
        if chosen != ["all"]:
            raise ValueError(f"'all' already means {','.join(known)}; give either all or a list of targets")
        return known
    return comma_list(known, "target")(chosen)


def spec_from(values: dict[str, Any]) -> ExportSpec:
    """An ExportSpec from option names and values (the CLI's namespace, the API's
    keywords): every value read and checked by its declaration; an unknown name is an
    ExportError naming it."""
    values = dict(values)
    spec = options.build(ExportSpec, values)
    records = {}
    for name in registry.names():
        record = registry.get(name).options
        if record is not None:
            records[name] = options.build(record, values)
    if values:
        unknown = sorted(values)
        close = difflib.get_close_matches(unknown[0], option_names(), n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ExportError(f"unknown option {', '.join(unknown)}; {hint}(python -m export --help lists them)")
    return replace(spec, target_options=records)


def option_names() -> list[str]:
    """Every option an export takes, the targets' included (the API's keywords)."""
    own = options.names(ExportSpec)
    return own + [n for name in registry.names() if (r := registry.get(name).options) for n in options.names(r)]


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
    format: str  # the name of the target that made it
    precision: str  # "fp32" | "fp16" | "int8" | "int8-dynamic" | "palettize8" ...
    path: Path
    input_convention: str
    convert_seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)  # facts of the conversion, recorded in the report as is
    companions: list[Path] = field(default_factory=list)  # files that ship beside it (promoted with it)
    runtime_facts: RuntimeFacts = field(default_factory=RuntimeFacts)
    # (height, width) of every further input size it accepts besides the spec's res; parity runs at each
    input_sizes: tuple[tuple[int, int], ...] = ()

    def report_details(self) -> dict[str, Any]:
        """``details`` as the report shows it: the conversion facts, the companions'
        file names and what running the artifact measured."""
        companions = {"companions": [p.name for p in self.companions]} if self.companions else {}
        return {**self.details, **companions, **self.runtime_facts.as_details()}
