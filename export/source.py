"""Where the weights come from, read once: a checkpoint file (its state dict, its
training ``args`` and what it records about itself), an in-memory CAS-ViT, or seeded
random weights; and the run's spec completed from it.

What a run leaves open is taken from the source: the variant and class count from
the weights, the input resolution and labels from the checkpoint's record
(``casvit.checkpoint.recorded``), the class count from the labels when neither gives
it, then the defaults; OUT defaults to ``out/<variant>_<res>``. What the command
line gives wins where the weights allow it (resolution, labels); a variant or class
count the weights contradict is a one-line error naming both values."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from casvit import CheckpointError, create_model, infer_config, read_checkpoint
from casvit.checkpoint import extract_state_dict, model_from_dict, recorded
from casvit.model import CASViT, variant_of
from casvit.seeding import randomize_batchnorm

from .context import log
from .errors import ExportError
from .fsutil import sha256_of
from .labels import read_labels_file, resolve_labels
from .spec import DEFAULT_SIZE, DEFAULT_VARIANT, ExportSpec


@dataclass(frozen=True)
class ModelSource:
    """The weights of a run and what they say about themselves."""

    kind: str  # "checkpoint" | "module" | "random"
    variant: str | None = None  # of the weights ("custom" for an unregistered architecture)
    num_classes: int | None = None
    resolution: tuple[int, int] | None = None  # recorded by the checkpoint
    labels: tuple[str, ...] | None = None  # recorded by the checkpoint
    training_args: Any = None  # an official checkpoint's ``args``, for the preprocessing record
    checkpoint: dict | None = None  # the file as read (weights-only)
    module: CASViT | None = None
    path: Path | None = None
    sha256: str = ""
    architecture: str = ""  # e.g. "layers [2, 2, 4, 2], widths [48, 56, 112, 220], 1000 classes"


def read_source(spec: ExportSpec, module: torch.nn.Module | None = None) -> ModelSource:
    """The source of ``spec``'s weights: ``module`` when given, else its checkpoint
    (read and checked once), else seeded random weights."""
    if module is not None:
        if not isinstance(module, CASViT):
            raise ExportError(f"the model to export is a {type(module).__name__}, not a casvit CASViT")
        if module.backbone:
            raise ExportError("the model is a backbone (detection/segmentation); export needs a classifier")
        return ModelSource(
            "module",
            variant_of(module.layers, module.embed_dims),
            module.num_classes,
            module=module,
            sha256=_state_sha256(module),
            architecture=_architecture(module.layers, module.embed_dims, module.num_classes),
        )
    if spec.checkpoint is None:
        return ModelSource("random")
    path = Path(spec.checkpoint)
    try:
        obj = read_checkpoint(path)
        config = infer_config(extract_state_dict(obj, spec.use_ema))
        facts = recorded(obj)
    except CheckpointError as e:
        raise ExportError(str(e)) from None
    if config["backbone"]:
        raise ExportError(f"{path} is a backbone (detection/segmentation) checkpoint; export needs a classifier")
    labels = facts["labels"]
    return ModelSource(
        "checkpoint",
        config["variant"],
        config.get("num_classes"),
        facts["resolution"],
        None if labels is None else tuple(labels),
        obj.get("args"),
        obj,
        path=path,
        sha256=sha256_of(path),
        architecture=_architecture(config["layers"], config["embed_dims"], config.get("num_classes")),
    )


def _architecture(layers, widths, num_classes) -> str:
    return f"layers {list(layers)}, widths {list(widths)}, {num_classes} classes"


def _state_sha256(module: torch.nn.Module) -> str:
    """sha256 of a module's state dict as ``torch.save`` writes it (names and values)."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in module.state_dict().items()}, buffer)
    return hashlib.sha256(buffer.getvalue()).hexdigest()


def resolve(spec: ExportSpec, source: ModelSource) -> tuple[ExportSpec, tuple[str, ...] | None]:
    """``spec`` with variant, class count, resolution and OUT filled in, and the class
    names given or recorded (None: none were); a conflict with the weights is an
    ExportError."""
    variant = _agree("--variant", spec.variant, source.variant, source)
    given_labels = read_labels_file(spec.labels) if isinstance(spec.labels, Path) else spec.labels
    labels = given_labels or source.labels
    num_classes = _agree("--num-classes", spec.num_classes, source.num_classes, source)
    if num_classes is None:
        num_classes = len(labels) if labels else 1000
    if labels is not None and len(labels) != num_classes:
        origin = (
            f"labels file {spec.labels}"
            if isinstance(spec.labels, Path)
            else "the labels given"
            if given_labels
            else "the checkpoint's labels"
        )
        raise ExportError(f"{origin} has {len(labels)} names but the model has {num_classes} classes")
    res = spec.res or source.resolution or (DEFAULT_SIZE, DEFAULT_SIZE)
    try:
        resolved = replace(spec, variant=variant or DEFAULT_VARIANT, num_classes=num_classes, res=res)
    except ExportError as e:
        raise ExportError(f"the checkpoint's recorded input size does not work: {e}; give --res") from None
    if resolved.out_dir is None:
        size = str(res[0]) if res[0] == res[1] else f"{res[0]}x{res[1]}"
        resolved = replace(resolved, out_dir=Path("out") / f"{resolved.variant}_{size}")
    return resolved, labels


def class_names(num_classes: int, given: tuple[str, ...] | None) -> tuple[list[str], list[str]]:
    """The model's class names (unique, see ``export.labels``) and a warning when given
    names repeated and were renamed."""
    names = resolve_labels(num_classes, list(given) if given else None)
    renamed = [f"{old!r} -> {new!r}" for old, new in zip(given or names, names) if old != new]
    if not renamed:
        return names, []
    shown = ", ".join(renamed[:5]) + (", ..." if len(renamed) > 5 else "")
    return names, [f"{len(renamed)} repeated class names were renamed to stay unique: {shown}"]


def _agree(flag: str, given, found, source: ModelSource):
    """The given value when the weights agree (or say nothing), else the weights' own."""
    if given is None or found is None or given == found or (flag == "--variant" and given == "custom"):
        return given if given is not None else found
    what = "the checkpoint" if source.kind == "checkpoint" else "the model"
    shown = {"--variant": f"variant {found!r}", "--num-classes": f"{found} classes"}[flag]
    raise ExportError(
        f"{flag} {given} conflicts with {what}, which is {shown} ({source.architecture}); "
        f"drop {flag} or use other weights"
    )


def build_model(spec: ExportSpec, source: ModelSource) -> tuple[CASViT, dict]:
    """The eval model of a resolved spec and a description of its weights (the report's ``weights``)."""
    if source.kind == "module":
        model = source.module.eval()
        return model, {
            "source": f"in-memory {type(model).__name__} ({spec.variant}, {model.num_classes} classes)",
            "sha256": source.sha256,
            "for_deployment": True,
        }
    if source.kind == "checkpoint":
        try:
            model = model_from_dict(source.checkpoint, spec.use_ema, spec.variant, spec.num_classes, str(source.path))
        except CheckpointError as e:
            raise ExportError(str(e)) from None
        return model, {
            "source": f"checkpoint {source.path.name}" + (" (EMA)" if spec.use_ema else ""),
            "path": str(source.path),
            "sha256": source.sha256,
            "for_deployment": True,
        }
    log(f"WARNING: no checkpoint given: seeded random weights (seed {spec.seed}). NOT FOR DEPLOYMENT.")
    torch.manual_seed(spec.seed)
    try:
        model = create_model(spec.variant, num_classes=spec.num_classes)
    except ValueError as e:
        raise ExportError(str(e)) from None
    randomize_batchnorm(model, spec.seed)
    return model.eval(), {"source": f"random (seed {spec.seed})", "sha256": "", "for_deployment": False}
