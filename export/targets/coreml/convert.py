"""coremltools at work: tracing, the conversion with its pass pipeline, quiet failures,
and a package written with stable bytes."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import uuid
import warnings
from pathlib import Path

import numpy as np
import torch

from ...errors import ExportError, first_line
from ...fsutil import atomic_write
from ...quiet import captured

INPUT_NAME, LOGITS_NAME, LABEL_NAME, PROBABILITIES_NAME = "image", "logits", "classLabel", "probabilities"
# coremltools fuses the input normalization (mul + add) into batch_norm, and its
# re-run of that pass on an fp16 program fails; keep them as mul and add.
SKIPPED_PASSES = ("common::fuse_elementwise_to_batchnorm",)


@contextlib.contextmanager
def quiet(name: str):
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


def import_coremltools() -> list[str]:
    """Import coremltools in this process (verification uses it here) with its import
    chatter (TensorFlow's native logging among it) off the console; returns the note for
    the report when this torch is newer than the newest coremltools was tested with."""
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


def pipeline(compression: str | None = None):
    """coremltools' default pass pipeline (without SKIPPED_PASSES), with a weight
    compression pass at its end."""
    import coremltools as ct
    import coremltools.optimize.coreml as cto

    passes = ct.PassPipeline.DEFAULT
    passes.remove_passes(SKIPPED_PASSES)
    if compression:
        if compression.startswith("palettize"):
            name = "compression::palettize_weights"
            op_config = cto.OpPalettizerConfig(mode="kmeans", nbits=int(compression[-1]))
        else:
            name = "compression::linear_quantize_weights"
            op_config = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8")
        passes.append_pass(name)  # compresses the final (fp16 or fp32) weights
        passes.set_options(name, {"config": cto.OptimizationConfig(global_config=op_config)})
    return passes


def trace(module: torch.nn.Module, example: torch.Tensor):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.trace: coremltools takes TorchScript
        return torch.jit.trace(module.eval(), example, check_trace=False)


def program(ctx, traced, kind: str, precision: str, target: str, passes, sizes=()):
    """The ML Program (an unloaded MLModel) of ``traced`` in ``precision`` (w8a8 computes in
    fp16) for deployment ``target``, through the pass pipeline ``passes``. With ``sizes``
    ((height, width) pairs, the default first) its input takes each of them
    (``ct.EnumeratedShapes``, the flexible form the Neural Engine runs)."""
    import coremltools as ct

    shapes = [(1, 3, h, w) for h, w in sizes or [(ctx.spec.height, ctx.spec.width)]]
    shape = shapes[0] if len(shapes) == 1 else ct.EnumeratedShapes(shapes=shapes, default=shapes[0])
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
        pass_pipeline=passes,
        compute_precision=ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16,
        skip_model_load=True,
    )


def save(mlmodel, spec, path: Path) -> None:
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
