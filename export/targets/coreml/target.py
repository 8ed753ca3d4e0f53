"""Core ML target: the traced deploy model converted by coremltools to an ML Program
(.mlpackage), optionally weight-compressed with coremltools' own optimizers. The
classifier's ``classLabel_probs`` are softmax probabilities (one ``softmax`` op in
front of the ``classify`` op); the raw float32 ``logits`` stay an output.
Off macOS each package is run by the NumPy reference interpreter (``export.targets.coreml.mil``);
on macOS by MLModel.predict as well."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import sys
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ... import isolate
from ...errors import ExportError, first_line
from ...fsutil import atomic_write, size_of
from ...limits import MIB
from ...options import OptionRecord, comma_list, option
from ...quiet import captured
from ...spec import Artifact
from ..base import MemoryCost, Target
from .layers import intermediates as program_intermediates
from .mil import SUPPORTED_OPS
from .outputs import expose_logits

INPUT_NAME, LOGITS_NAME, LABEL_NAME, PROBABILITIES_NAME = "image", "logits", "classLabel", "probabilities"
MISPLACED_SOFTMAX = "softmax_not_feeding_classify"  # census name of a softmax anywhere else (denied)
PRECISIONS = ("fp16", "fp32")
COMPRESSIONS = ("palettize8", "palettize6", "linear8")
DEPLOYMENT_TARGETS = ("iOS16", "iOS17", "iOS18")
OS_OF_TARGET = {"iOS16": "iOS 16 / macOS 13", "iOS17": "iOS 17 / macOS 14", "iOS18": "iOS 18 / macOS 15"}
# coremltools fuses the input normalization (mul + add) into batch_norm, and its
# re-run of that pass on an fp16 program fails; keep them as mul and add.
SKIPPED_PASSES = ("common::fuse_elementwise_to_batchnorm",)
REFERENCE_NOTE = "Core ML program verified by the reference interpreter (export.targets.coreml.mil, NumPy)"
# Images per interpreter run: every op runs once on the whole batch (xs at 224: ~40 MB
# for the largest activation of 16 images in float32).
INTERPRETER_BATCH = 16


def _compressions(value) -> tuple[str, ...]:
    """``"palettize8,linear8"``, a sequence, or none -> known compressions in COMPRESSIONS order."""
    items = str(value).split(",") if isinstance(value, str) else list(value)
    chosen = [str(c).strip() for c in items if str(c).strip() and str(c).strip() != "none"]
    return comma_list(COMPRESSIONS, "compression")(chosen) if chosen else ()


@dataclass(frozen=True)
class CoreMLOptions(OptionRecord):
    coreml_precision: str = option("fp16", "compute precision of the ML Program", choices=(*PRECISIONS, "both"))
    coreml_compress: tuple[str, ...] = option(
        (),
        f"weight compression, comma list of {', '.join(COMPRESSIONS)} (or none); each is an extra artifact per "
        "precision",
        parse=_compressions,
        metavar="LIST",
    )
    coreml_target: str = option("iOS16", "minimum deployment target (iOS16 = macOS 13)", choices=DEPLOYMENT_TARGETS)
    coreml_input: str = option(
        "image",
        "image: RGB 0-255 ImageType with the record's mean/std inside the model; "
        "tensor: float input in the convention of --embed-normalization/--input-range",
        choices=("image", "tensor"),
    )


def _options(spec) -> tuple[list[str], list[str], str, str]:
    o: CoreMLOptions = spec.options_of("coreml")
    precisions = list(PRECISIONS) if o.coreml_precision == "both" else [o.coreml_precision]
    return precisions, list(o.coreml_compress), o.coreml_target, o.coreml_input


@contextlib.contextmanager
def _quiet(name: str):
    """coremltools' progress bars and version warnings out of the export log; its
    failures as a one-line ExportError."""
    logger = logging.getLogger("coremltools")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with (
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")
            yield
    except ExportError:
        raise
    except Exception as e:  # coremltools raises plain exceptions of many kinds
        raise ExportError(f"{name}: Core ML conversion failed: {type(e).__name__}: {first_line(e)}") from e
    finally:
        logger.setLevel(level)


def _import_coremltools() -> list[str]:
    """Import coremltools in this process (verification uses it here) with its import
    chatter (TensorFlow's native logging among it) off the console; returns the note for
    the report when this torch is newer than the newest coremltools was tested with."""
    import torch

    with captured():
        import coremltools as ct
        from coremltools import _deps

    tested = _deps._TORCH_MAX_VERSION
    if _release(torch.__version__) <= _release(tested):
        return []
    return [
        f"coremltools {ct.__version__} was tested with torch up to {tested}; this export used torch "
        f"{torch.__version__} (every Core ML artifact is still checked for parity against eager PyTorch)"
    ]


def _release(version: str) -> tuple[int, ...]:
    """ "2.13.0+cpu" -> (2, 13, 0)."""
    return tuple(int(part) for part in version.split("+")[0].split(".")[:3] if part.isdigit())


def _pipeline(compression: str | None):
    import coremltools as ct
    import coremltools.optimize.coreml as cto

    pipeline = ct.PassPipeline.DEFAULT
    pipeline.remove_passes(SKIPPED_PASSES)
    if compression:
        if compression.startswith("palettize"):
            name = "compression::palettize_weights"
            op_config = cto.OpPalettizerConfig(mode="kmeans", nbits=int(compression[-1]))
        else:
            name = "compression::linear_quantize_weights"
            op_config = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8")
        pipeline.append_pass(name)  # compresses the final (fp16 or fp32) weights
        pipeline.set_options(name, {"config": cto.OptimizationConfig(global_config=op_config)})
    return pipeline


def _convert(ctx, traced, kind: str, precision: str, compression: str | None, target: str):
    import coremltools as ct

    shape = (1, 3, ctx.spec.height, ctx.spec.width)
    if kind == "image":  # scale is a scalar in ImageType: mean/std stay in the model as mul/add
        inputs = [
            ct.ImageType(name=INPUT_NAME, shape=shape, color_layout=ct.colorlayout.RGB, scale=1.0, bias=[0.0] * 3)
        ]
    else:
        inputs = [ct.TensorType(name=INPUT_NAME, shape=shape, dtype=np.float32)]
    return ct.convert(
        traced,
        inputs=inputs,
        outputs=[ct.TensorType(name=LOGITS_NAME)],
        classifier_config=ct.ClassifierConfig(list(ctx.labels)),
        convert_to="mlprogram",
        minimum_deployment_target=getattr(ct.target, target),
        pass_pipeline=_pipeline(compression),
        compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
        skip_model_load=True,
    )


def _describe(ctx, spec, kind: str, convention: str, precision: str, compression: str | None, target: str) -> None:
    meta = spec.description.metadata
    s = ctx.spec
    meta.shortDescription = (
        f"CAS-ViT-{s.variant} image classifier, {s.resolution}, {len(ctx.labels)} classes "
        f"({precision}{', ' + compression if compression else ''}). Confidences are softmax "
        "probabilities; raw scores are in the 'logits' output."
    )
    meta.author = "casvit-deploy toolchain (CAS-ViT: Zhang et al., 2024)"
    meta.license = f"toolchain MIT; weights: {ctx.weights['source']} (license of their source applies)"
    meta.versionString = _project_version()
    del_key = "com.github.apple.coremltools.conversion_date"  # the date would make the bytes differ per day
    if del_key in meta.userDefined:
        del meta.userDefined[del_key]
    user = {
        **ctx.metadata(convention),
        "coreml_input": kind,
        "compute_precision": precision,
        "weight_compression": compression or "none",
        "minimum_deployment_target": OS_OF_TARGET[target],
    }
    for key, value in user.items():
        meta.userDefined[key] = str(value)
    h, w = s.height, s.width
    p = ctx.preprocessing
    image_text = (
        f"RGB image {w}x{h} (pixels 0-255; mean {list(p.mean)} / std {list(p.std)} of RGB/255 are applied "
        "inside the model)"
        if kind == "image"
        else f"float32 NCHW 1x3x{h}x{w}, {convention} input"
    )
    for feature in spec.description.input:
        feature.shortDescription = image_text
    texts = {
        LABEL_NAME: "most likely class label",
        LABEL_NAME + "_probs": "probability per class label (softmax of the logits, sums to 1)",
        LOGITS_NAME: f"raw logits, shape 1x{len(ctx.labels)}, in class-label order",
    }
    for feature in spec.description.output:
        feature.shortDescription = texts.get(feature.name, "")


def _project_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("casvit-deploy")
    except PackageNotFoundError:
        return "unknown (casvit-deploy not installed)"


def _save(mlmodel, spec, path: Path) -> None:
    """Write the package under a temporary name, give its manifest stable identifiers,
    then rename it into place."""
    import coremltools as ct

    staging = path.with_name(f".tmp-{path.name}")
    shutil.rmtree(staging, ignore_errors=True)
    ct.models.MLModel(spec, weights_dir=mlmodel.weights_dir, skip_model_load=True).save(str(staging))
    manifest_path = staging / "Manifest.json"
    manifest = json.loads(manifest_path.read_text())
    renamed = {}
    for key, item in manifest["itemInfoEntries"].items():  # coremltools draws random UUIDs
        renamed[key] = str(uuid.uuid5(uuid.NAMESPACE_URL, "casvit-deploy/" + item["path"])).upper()
    manifest["itemInfoEntries"] = {renamed[k]: v for k, v in manifest["itemInfoEntries"].items()}
    manifest["rootModelIdentifier"] = renamed[manifest["rootModelIdentifier"]]
    atomic_write(manifest_path, json.dumps(manifest, indent=4, sort_keys=True) + "\n")
    root = manifest["itemInfoEntries"][manifest["rootModelIdentifier"]]["path"]
    _serialize_deterministically(staging / "Data" / root)
    shutil.rmtree(path, ignore_errors=True)
    os.replace(staging, path)


def _serialize_deterministically(spec_path: Path) -> None:
    """Rewrite the spec with map entries (metadata ``userDefined``) in sorted order:
    protobuf's default order follows a per-process hash seed, so two conversions in
    two processes would otherwise differ in bytes."""
    from coremltools.proto import Model_pb2

    spec = Model_pb2.Model()
    spec.ParseFromString(spec_path.read_bytes())
    atomic_write(spec_path, spec.SerializeToString(deterministic=True))


def _trace(module: torch.nn.Module, example: torch.Tensor):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.trace: coremltools takes TorchScript
        return torch.jit.trace(module.eval(), example, check_trace=False)


def _jobs(spec) -> list[tuple[str, str, str | None]]:
    """(artifact name, precision, compression or None) of every package ``spec`` asks for."""
    precisions, compressions, _, _ = _options(spec)
    return [
        ("-".join(["coreml", precision, *([compression] if compression else [])]), precision, compression)
        for precision in precisions
        for compression in [None, *compressions]
    ]


def artifact_names(spec) -> tuple[str, ...]:
    return tuple(name for name, _, _ in _jobs(spec))


def convert(ctx) -> list[Artifact]:
    _, _, target, kind = _options(ctx.spec)
    s = ctx.spec
    if kind == "image":
        module, convention = ctx.deploy_model(embed_normalization=True, input_range=255.0), "byte"
    else:
        module, convention = ctx.deploy_model(), ctx.input_convention()
    example = torch.rand(1, 3, s.height, s.width, generator=torch.Generator().manual_seed(s.seed))
    jobs = [
        (
            name,
            precision,
            compression,
            ctx.workdir / f"casvit_{s.variant}_{s.resolution}_{name.removeprefix('coreml-')}.mlpackage",
        )
        for name, precision, compression in _jobs(s)
    ]
    # In a child process: coremltools switches the temp folder and cannot be
    # interrupted cleanly; the child's TMPDIR lies inside the run's transaction folder.
    ctx.library_warnings.extend(_import_coremltools())
    return isolate.call(
        _convert_packages,
        (ctx, module, convention, example, jobs, target, kind),
        workdir=ctx.workdir,
        label="coremltools",
        log_path=ctx.workdir / "coremltools.log",
        stage="converting the traced model to Core ML",
    )


def _convert_packages(
    ctx, module, convention: str, example: torch.Tensor, jobs: list, target: str, kind: str
) -> list[Artifact]:
    """Trace once, then convert, describe and save one package per (precision, compression)."""
    artifacts = []
    traced = _trace(module, example * (255.0 if convention == "byte" else 1.0))
    for name, precision, compression, path in jobs:
        ctx.log(f"{name}: converting with coremltools ({precision}, target {target}, {kind} input)")
        start = time.perf_counter()
        with _quiet(name):
            mlmodel = _convert(ctx, traced, kind, precision, compression, target)
            spec = mlmodel.get_spec()
            expose_logits(spec, len(ctx.labels), LOGITS_NAME, PROBABILITIES_NAME)
            _describe(ctx, spec, kind, convention, precision, compression, target)
            _save(mlmodel, spec, path)
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
                    "compute_precision": precision,
                    "weight_compression": compression or "none",
                    "input": kind,
                    "outputs": [f.name for f in spec.description.output],
                },
            )
        )
    return artifacts


def _interpreter_runner(artifact: Artifact):
    from .mil import Program

    program = Program.load(artifact.path)

    def run(x: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        out = np.concatenate(
            [
                program.run({INPUT_NAME: x[i : i + INTERPRETER_BATCH]}, [LOGITS_NAME])[LOGITS_NAME]
                for i in range(0, len(x), INTERPRETER_BATCH)
            ]
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
    counted as ``softmax_not_feeding_classify`` (denied by the audit)."""
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
    return counts


def intermediates(artifact: Artifact):
    """The program's graph and vars for per-layer localization (the reference interpreter)."""
    return program_intermediates(artifact, INPUT_NAME, LOGITS_NAME, INTERPRETER_BATCH)


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
    # ClassifierConfig, "softmax" only feeding it (the census renames any other, denied below)
    allow=SUPPORTED_OPS,
    deny=frozenset({"linear", "matmul", MISPLACED_SOFTMAX, "einsum", "batch_norm", "erf"}),
    memory=MemoryCost(1240 * MIB, 122, per_class=9960),
    tools=("coremltools",),
    options=CoreMLOptions,
    bench=None,  # no Core ML runtime on Linux: no latency rows (accuracy runs the reference interpreter)
    intermediates=intermediates,
)
