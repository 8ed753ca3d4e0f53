"""Core ML target: the traced deploy model converted by coremltools to an ML Program
(.mlpackage) in fp16, fp32 or W8A8 (int8 weights and activations, calibrated on images:
``w8a8``), optionally weight-compressed with coremltools' own optimizers. The
classifier's ``classLabel_probs`` are softmax probabilities (one ``softmax`` op in
front of the ``classify`` op); the raw float32 ``logits`` stay an output.
Off macOS each package is run by the reference interpreter (``export.targets.coreml.mil``);
on macOS by MLModel.predict as well."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from ... import isolate, limits
from ...errors import ExportError
from ...fsutil import size_of
from ...limits import MIB
from ...options import OptionRecord, comma_list, option
from ...spec import Artifact, parse_resolution
from ..base import MemoryCost, Target
from . import w8a8
from .convert import (
    INPUT_NAME,
    LOGITS_NAME,
    PROBABILITIES_NAME,
    import_coremltools,
    pipeline,
    program,
    quiet,
    save,
    trace,
)
from .describe import OS_OF_TARGET, describe
from .layers import intermediates as program_intermediates
from .mil import SUPPORTED_OPS
from .outputs import expose_logits

MISPLACED_SOFTMAX = "softmax_not_feeding_classify"  # census name of a softmax anywhere else (denied)
# Activation quantization belongs to w8a8 only: elsewhere the census renames these ops (denied).
ACTIVATION_QUANTIZATION = {op: f"{op}_outside_w8a8" for op in ("quantize", "dequantize")}
PRECISIONS = ("fp16", "fp32", "w8a8")
PRECISION_GROUPS = {"both": ("fp16", "fp32"), "all": PRECISIONS}
COMPRESSIONS = ("palettize8", "palettize6", "linear8")  # weight compression of the fp16 and fp32 programs
DEPLOYMENT_TARGETS = ("iOS16", "iOS17", "iOS18")
REFERENCE_NOTE = "Core ML program verified by the reference interpreter (export.targets.coreml.mil, torch kernels)"
# Pixels per interpreter run: every op runs once on the whole batch, 16 images at 224x224
# (xs: ~40 MB for the largest activation in float32), more of smaller images, whose ops
# would otherwise cost more in per-op overhead than in arithmetic.
INTERPRETER_PIXELS = 16 * 224 * 224


def _precisions(value) -> tuple[str, ...]:
    """``"w8a8, fp16"``, a sequence, or a group (both = fp16,fp32; all) -> known precisions
    in PRECISIONS order."""
    items = str(value).split(",") if isinstance(value, str) else list(value)
    names = [str(t).strip() for t in items if str(t).strip()]
    unknown = [n for n in names if n not in PRECISIONS and n not in PRECISION_GROUPS]
    if unknown or not names:
        raise ValueError(
            f"unknown precision {', '.join(unknown) or '(empty)'}; choose a comma list of "
            f"{', '.join(PRECISIONS)}, or {' or '.join(PRECISION_GROUPS)}"
        )
    chosen = {p for n in names for p in PRECISION_GROUPS.get(n, (n,))}
    return tuple(p for p in PRECISIONS if p in chosen)


def _compressions(value) -> tuple[str, ...]:
    """``"palettize8,linear8"``, a sequence, or none -> known compressions in COMPRESSIONS order."""
    items = str(value).split(",") if isinstance(value, str) else list(value)
    chosen = [str(c).strip() for c in items if str(c).strip() and str(c).strip() != "none"]
    return comma_list(COMPRESSIONS, "compression")(chosen) if chosen else ()


def _sizes(value) -> tuple[tuple[int, int], ...]:
    """``"96,128x160"``, or a sequence of sizes, or none -> (height, width) pairs, each a
    valid --res, none given twice."""
    items = str(value).split(",") if isinstance(value, str) else list(value)
    sizes = []
    for item in items:
        if str(item).strip() in ("", "none"):
            continue
        try:
            size = parse_resolution(item)
        except ExportError as e:
            raise ValueError(str(e)) from None
        if size in sizes:
            raise ValueError(f"{size[0]}x{size[1]} is given twice")
        sizes.append(size)
    return tuple(sizes)


@dataclass(frozen=True)
class CoreMLOptions(OptionRecord):
    coreml_precision: tuple[str, ...] = option(
        ("fp16",),
        "compute precision of the ML Program, comma list of fp16, fp32, w8a8 (int8 weights and activations for "
        "the Neural Engine, calibrated on the same images as TFLite int8), or both (fp16,fp32) or all",
        parse=_precisions,
        metavar="LIST",
    )
    coreml_compress: tuple[str, ...] = option(
        (),
        f"weight compression, comma list of {', '.join(COMPRESSIONS)} (or none); each is an extra artifact per "
        "fp16/fp32 precision",
        parse=_compressions,
        metavar="LIST",
    )
    coreml_target: str = option(
        "iOS16",
        f"minimum deployment target (iOS16 = macOS 13); w8a8 needs {w8a8.MINIMUM_TARGET} and raises it",
        choices=DEPLOYMENT_TARGETS,
    )
    coreml_input: str = option(
        "image",
        "image: RGB 0-255 ImageType with the record's mean/std inside the model; "
        "tensor: float input in the convention of --embed-normalization/--input-range",
        choices=("image", "tensor"),
    )
    coreml_sizes: tuple[tuple[int, int], ...] = option(
        (),
        "further input sizes, comma list of N or HxW (multiples of 32): each package then takes --res (its "
        "default) and these (Core ML enumerated shapes), with parity checked at every size",
        parse=_sizes,
        metavar="LIST",
        default_text="none",
    )


def input_sizes(spec) -> list[tuple[int, int]]:
    """Every input size of the packages: --res (the default) first, then --coreml-sizes."""
    return [tuple(spec.res), *spec.options_of("coreml").coreml_sizes]


def validate(spec) -> None:
    """Each further input size differs from --res and keeps within the limits --res has."""
    for height, width in spec.options_of("coreml").coreml_sizes:
        if (height, width) == tuple(spec.res):
            raise ExportError(f"--coreml-sizes {height}x{width}: that is --res, already the packages' default size")
        try:
            limits.check(replace(spec, res=(height, width), targets=("coreml",)))
        except ExportError as e:
            raise ExportError(f"--coreml-sizes {height}x{width}: {e}") from None


def _options(spec) -> tuple[list[str], list[str], str, str]:
    o: CoreMLOptions = spec.options_of("coreml")
    return list(o.coreml_precision), list(o.coreml_compress), o.coreml_target, o.coreml_input


def calibrates(spec) -> bool:
    """Whether a run of ``spec`` makes a W8A8 package (calibrated on images)."""
    return "w8a8" in _options(spec)[0]


def _jobs(spec) -> list[tuple[str, str, str | None, str]]:
    """(artifact name, precision, compression or None, deployment target) of every package
    ``spec`` asks for; weight compression applies to fp16 and fp32 (w8a8 has int8 weights)."""
    precisions, compressions, target, _ = _options(spec)
    w8a8_target = max(target, w8a8.MINIMUM_TARGET, key=DEPLOYMENT_TARGETS.index)
    return [
        (
            "-".join(["coreml", precision, *([compression] if compression else [])]),
            precision,
            compression,
            w8a8_target if precision == "w8a8" else target,
        )
        for precision in precisions
        for compression in [None, *(compressions if precision != "w8a8" else [])]
    ]


def artifact_names(spec) -> tuple[str, ...]:
    return tuple(name for name, *_ in _jobs(spec))


def convert(ctx) -> list[Artifact]:
    _, _, _, kind = _options(ctx.spec)
    s = ctx.spec
    if kind == "image":
        module, convention = ctx.deploy_model(embed_normalization=True, input_range=255.0), "byte"
    else:
        module, convention = ctx.deploy_model(), ctx.input_convention()
    example = torch.rand(1, 3, s.height, s.width, generator=torch.Generator().manual_seed(s.seed))
    jobs = [
        (*job, ctx.workdir / f"casvit_{s.variant}_{s.resolution}_{job[0].removeprefix('coreml-')}.mlpackage")
        for job in _jobs(s)
    ]
    calib = None
    if calibrates(s):
        calib = ctx.calibration
        ctx.log(f"coreml: {len(calib.names)} calibration images from {calib.source}")
    # In a child process: coremltools switches the temp folder and cannot be
    # interrupted cleanly; the child's TMPDIR lies inside the run's transaction folder.
    ctx.library_warnings.extend(import_coremltools())
    return isolate.call(
        _convert_packages,
        (ctx, module, convention, example, jobs, kind, calib),
        workdir=ctx.workdir,
        label="coremltools",
        log_path=ctx.workdir / "coremltools.log",
        stage="converting the traced model to Core ML",
    )


def _convert_packages(
    ctx, module, convention: str, example: torch.Tensor, jobs: list, kind: str, calib
) -> list[Artifact]:
    """Trace once, then convert, describe and save one package per job."""
    artifacts = []
    example = example * (255.0 if convention == "byte" else 1.0)
    traced = trace(module, example)
    sizes = input_sizes(ctx.spec)
    shown = ", ".join(f"{h}x{w}" for h, w in sizes)
    for name, precision, compression, target, path in jobs:
        ctx.log(f"{name}: converting with coremltools ({precision}, target {target}, {kind} input {shown})")
        start = time.perf_counter()
        details = {}
        with quiet(name):
            if precision == "w8a8":
                mlmodel = w8a8.program(ctx, module, convention, example, kind, target, calib, sizes=sizes)
                details = {"calibration": calib.describe(), "quantization": w8a8.DESCRIPTION}
            else:
                mlmodel = program(ctx, traced, kind, precision, target, pipeline(compression), sizes)
            spec = mlmodel.get_spec()
            expose_logits(spec, len(ctx.labels), LOGITS_NAME, PROBABILITIES_NAME)
            describe(ctx, spec, kind, convention, precision, compression, target, sizes)
            save(mlmodel, spec, path)
        seconds = time.perf_counter() - start
        artifacts.append(
            Artifact(
                name,
                "coreml",
                compression or precision,
                path,
                convention,
                seconds,
                details={
                    "package_bytes": size_of(path),
                    "deployment_target": OS_OF_TARGET[target],
                    "mil_opset": spec.mlProgram.functions["main"].opset,
                    "compute_precision": "fp16" if precision == "w8a8" else precision,
                    "weight_compression": compression or ("int8" if precision == "w8a8" else "none"),
                    "input": kind,
                    "outputs": [f.name for f in spec.description.output],
                    **({"input_sizes": [f"{h}x{w}" for h, w in sizes]} if len(sizes) > 1 else {}),
                    **details,
                },
                input_sizes=tuple(sizes[1:]),
            )
        )
    return artifacts


def _interpreter_runner(artifact: Artifact):
    from .mil import Program

    program = Program.load(artifact.path)

    def run(x: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        batch = max(1, INTERPRETER_PIXELS // (x.shape[-2] * x.shape[-1]))
        out = np.concatenate(
            [program.run({INPUT_NAME: x[i : i + batch]}, [LOGITS_NAME])[LOGITS_NAME] for i in range(0, len(x), batch)]
        )
        artifact.runtime_facts.interpreter_seconds_per_image = round((time.perf_counter() - start) / max(len(x), 1), 3)
        return out.astype(np.float32)

    return run


def _coreml_runner(artifact: Artifact, compute_units):
    """MLModel.predict (macOS only); image inputs go in as PIL images."""
    import coremltools as ct
    from PIL import Image

    model = ct.models.MLModel(str(artifact.path), compute_units=compute_units)

    def run(x: np.ndarray) -> np.ndarray:
        outs = []
        for sample in x:
            feed = (
                Image.fromarray(sample.transpose(1, 2, 0).round().astype(np.uint8), "RGB")
                if artifact.details.get("input") == "image"
                else sample[None].astype(np.float32)
            )
            outs.append(np.asarray(model.predict({INPUT_NAME: feed})[LOGITS_NAME], np.float32).reshape(1, -1))
        return np.concatenate(outs)

    return run


def load(artifact: Artifact):
    """Off macOS: the reference interpreter. On macOS: MLModel.predict on the CPU
    (gated), with all compute units and the interpreter compared in details."""
    interpreter = _interpreter_runner(artifact)
    if sys.platform != "darwin":
        return interpreter
    import coremltools as ct

    cpu = _coreml_runner(artifact, ct.ComputeUnit.CPU_ONLY)
    everything = _coreml_runner(artifact, ct.ComputeUnit.ALL)

    def run(x: np.ndarray) -> np.ndarray:
        from ...parity import compare

        out = cpu(x)
        for label, other in (("all_compute_units", everything), ("reference_interpreter", interpreter)):
            m = compare(out, other(x))
            artifact.runtime_facts.comparisons[f"{label}_vs_cpu_only"] = {
                k: m[k] for k in ("max_abs", "max_rel", "min_cosine")
            }
        return out

    return run


def census(artifact: Artifact) -> dict[str, int]:
    """MIL op counts; a softmax whose output does not feed the classify op directly is
    counted as ``softmax_not_feeding_classify``, and quantize/dequantize in a program that
    is not w8a8 as ``quantize_outside_w8a8``/``dequantize_outside_w8a8`` (all denied by the audit)."""
    import coremltools as ct

    from .mil import main_block, op_census

    spec = ct.utils.load_spec(str(artifact.path))
    counts = op_census(spec)
    _, block = main_block(spec)
    fed = {
        arg.name
        for op in block.operations
        if op.type == "classify"
        for binding in op.inputs.values()
        for arg in binding.arguments
        if arg.WhichOneof("binding") == "name"
    }
    misplaced = sum(1 for op in block.operations if op.type == "softmax" and op.outputs[0].name not in fed)
    if misplaced:
        counts["softmax"] -= misplaced
        counts = {k: v for k, v in counts.items() if v} | {MISPLACED_SOFTMAX: misplaced}
    if artifact.precision != "w8a8":
        counts = {ACTIVATION_QUANTIZATION.get(k, k): v for k, v in counts.items()}
    return counts


def intermediates(artifact: Artifact):
    """The program's graph and vars for per-layer localization (the reference interpreter)."""
    return program_intermediates(artifact, INPUT_NAME, LOGITS_NAME, INTERPRETER_PIXELS)


def runtime_note(artifact: Artifact) -> str:
    import coremltools as ct

    if sys.platform == "darwin":
        return (
            f"Core ML runtime (coremltools {ct.__version__} MLModel.predict, CPU only; all compute units and "
            "the reference interpreter compared in details)"
        )
    return REFERENCE_NOTE


TARGET = Target(
    name="coreml",
    artifact_names=artifact_names,
    convert=convert,
    load=load,
    census=census,
    runtime_note=runtime_note,
    # exactly what the reference interpreter (``export.targets.coreml.mil``) executes: "classify" is added by
    # ClassifierConfig, "softmax" only feeding it, quantize/dequantize only in w8a8 (the census renames the
    # others, denied below)
    allow=SUPPORTED_OPS,
    deny=frozenset(
        {"linear", "matmul", MISPLACED_SOFTMAX, *ACTIVATION_QUANTIZATION.values(), "einsum", "batch_norm", "erf"}
    ),
    memory=MemoryCost(1240 * MIB, 122, per_class=9960),
    tools=("coremltools",),
    options=CoreMLOptions,
    validate=validate,
    calibrates=calibrates,
    bench=None,  # no Core ML runtime on Linux: no latency rows (accuracy runs the reference interpreter)
    intermediates=intermediates,
)
