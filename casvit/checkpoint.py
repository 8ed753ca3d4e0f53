"""Loading official-format checkpoints safely and strictly."""

from __future__ import annotations

import argparse
import collections
import pickle
import re
from pathlib import Path

import torch

from .model import BACKBONE_OUT_INDICES, VARIANTS, CASViT, create_model, variant_of

PREFIXES = ("module.", "backbone.")
WRAPPER_KEYS = ("model", "state_dict")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, is unsafe, or does not fit the model."""


# What a checkpoint may hold: tensors, plain containers and scalars (optimizer and
# loss-scaler states are made of these) and ``argparse.Namespace``, the ``args`` of
# official training checkpoints. torch's weights-only loader also accepts a few
# other types (e.g. ``collections.Counter``); no official checkpoint holds them, so
# they are refused too.
_CONTAINERS = (dict, collections.OrderedDict, list, tuple, set, frozenset)
_SCALARS = (torch.Size, torch.dtype, torch.device, str, bytes, int, float, complex, bool, type(None))
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_REFUSED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def read_checkpoint(path: str | Path) -> dict:
    """Unpickle ``path`` with ``weights_only=True``; beyond tensors and plain
    containers only ``argparse.Namespace`` is allowed (``_CONTAINERS``, ``_SCALARS``)."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory, not a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path}: refused to unpickle: {_refusal(e)}") from None
    except Exception as e:  # torch raises many types for garbage bytes (RuntimeError, IndexError, EOFError...)
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint (truncated or corrupt?): {type(e).__name__}: {_first_line(e)}"
        ) from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a dict of tensors, found {type(obj).__name__}")
    foreign = _foreign_type(obj)
    if foreign:
        raise CheckpointError(
            f"{path}: refused: it holds a {foreign}; a checkpoint may hold only tensors, "
            "plain containers and argparse.Namespace"
        )
    return obj


def _refusal(exc: pickle.UnpicklingError) -> str:
    """Why torch's weights-only unpickler refused, without its advice to load with
    ``weights_only=False`` (which runs arbitrary code) and without ANSI escapes."""
    text = _ANSI.sub("", str(exc))
    found = _REFUSED_GLOBAL.search(text)
    if found:
        return f"it needs the Python global {found.group(1)}, which a weights file never needs"
    lines = [
        line.strip()
        for line in text.splitlines()
        if line.strip() and "weights_only" not in line and "Weights only load failed" not in line
    ]
    return (lines[0] if lines else type(exc).__name__) + " (not a plain weights file)"


def _foreign_type(obj, depth: int = 0) -> str | None:
    """Dotted name of the first object type a checkpoint may not hold, else None."""
    kind = type(obj)
    if isinstance(obj, torch.Tensor) or kind in _SCALARS:
        return None
    if kind is argparse.Namespace:
        children = list(vars(obj).values())
    elif kind in (dict, collections.OrderedDict):
        children = [*obj.keys(), *obj.values()]
    elif kind in _CONTAINERS:
        children = list(obj)
    else:
        return f"{kind.__module__}.{kind.__qualname__}"
    if depth > 100:
        return "structure nested deeper than 100 levels"
    return next((name for child in children if (name := _foreign_type(child, depth + 1))), None)


def _first_line(exc: BaseException) -> str:
    # Same as export.errors.first_line: model code must not import export, and that
    # module stays torch-free (the verify-arm CLI uses it), so it cannot import casvit.
    return (str(exc).strip().splitlines() or [""])[0]


def extract_state_dict(obj: dict, use_ema: bool = False) -> dict[str, torch.Tensor]:
    """The model state dict inside a checkpoint dict, with ``module.``/``backbone.`` stripped."""
    if use_ema:
        if "model_ema" not in obj:
            raise CheckpointError(
                f"EMA weights requested but the checkpoint has no 'model_ema' (top-level keys: {sorted(obj)[:8]})"
            )
        sd = obj["model_ema"]
    else:
        sd = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)), obj)
    tensors = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError("the checkpoint holds no tensors (not a model state dict)")
    return {_strip(k): v for k, v in tensors.items()}


def _strip(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for p in PREFIXES:
            if key.startswith(p):
                key, changed = key[len(p) :], True
    return key


def infer_config(sd: dict[str, torch.Tensor]) -> dict:
    """Architecture arguments implied by a state dict's keys and shapes."""
    try:
        dims = [sd[f"network.{2 * i}.0.norm1.weight"].shape[0] for i in range(4)]
        layers = [len({k.split(".")[2] for k in sd if re.match(rf"network\.{2 * i}\.\d+\.", k)}) for i in range(4)]
        mlp_ratio = sd["network.0.0.mlp.fc1.weight"].shape[0] / dims[0]
    except KeyError as e:
        raise CheckpointError(f"not a CAS-ViT state dict: key {e} is missing") from None
    backbone = f"norm{BACKBONE_OUT_INDICES[0]}.weight" in sd
    cfg = dict(layers=layers, embed_dims=dims, mlp_ratio=mlp_ratio, backbone=backbone)
    if not backbone and "head.weight" in sd:
        cfg.update(num_classes=sd["head.weight"].shape[0], distillation="dist_head.weight" in sd)
    cfg["variant"] = variant_of(layers, dims)
    return cfg


def load_into(model: CASViT, sd: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """``load_state_dict(strict=True)`` with an error that says what does not fit and why."""
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shapes = [(k, tuple(sd[k].shape), tuple(own[k].shape)) for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        raise CheckpointError(_mismatch_message(model, sd, source, missing, unexpected, shapes))
    model.load_state_dict(sd, strict=True)


def _mismatch_message(model, sd, source, missing, unexpected, shapes) -> str:
    def few(items, n=5):
        items = [str(i) for i in items]
        return ", ".join(items[:n]) + (f" (+{len(items) - n} more)" if len(items) > n else "")

    parts = [
        f"{source} does not fit the model "
        f"(layers={list(model.layers)}, embed_dims={list(model.embed_dims)}, classes={model.num_classes})"
    ]
    if missing:
        parts.append(f"{len(missing)} missing keys: {few(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys: {few(unexpected)}")
    if shapes:
        parts.append(f"{len(shapes)} shape mismatches: " + few(f"{k} {a} vs model {b}" for k, a, b in shapes))
    try:
        cfg = infer_config(sd)
        hint = f"the file looks like variant '{cfg['variant']}' (layers={cfg['layers']}, embed_dims={cfg['embed_dims']}"
        hint += f", {cfg['num_classes']} classes)" if "num_classes" in cfg else ", backbone)"
        parts.append(hint)
    except CheckpointError as e:
        parts.append(str(e))
    return "; ".join(parts)


def load_checkpoint(model: CASViT, path: str | Path, use_ema: bool = False) -> CASViT:
    """Load an official-format checkpoint file into ``model`` strictly; returns the model."""
    load_into(model, extract_state_dict(read_checkpoint(path), use_ema), source=str(path))
    return model


def model_from_checkpoint(
    path: str | Path, use_ema: bool = False, variant: str | None = None, num_classes: int | None = None
) -> CASViT:
    """Build the model a checkpoint describes and load it. A given ``variant`` or
    ``num_classes`` must agree with the file, or a CheckpointError explains the mismatch."""
    return model_from_dict(read_checkpoint(path), use_ema, variant, num_classes, source=str(path))


def model_from_dict(
    obj: dict,
    use_ema: bool = False,
    variant: str | None = None,
    num_classes: int | None = None,
    source: str = "checkpoint",
) -> CASViT:
    """:func:`model_from_checkpoint` for a checkpoint already read (:func:`read_checkpoint`)."""
    sd = extract_state_dict(obj, use_ema)
    cfg = infer_config(sd)
    if variant not in (None, "custom") and variant not in VARIANTS:
        raise CheckpointError(f"unknown variant {variant!r}")
    name = variant or cfg["variant"]
    model = create_model(
        name,
        layers=cfg["layers"] if name == "custom" else None,
        embed_dims=cfg["embed_dims"] if name == "custom" else None,
        mlp_ratio=cfg["mlp_ratio"],
        num_classes=num_classes or cfg.get("num_classes", 1000),
        distillation=cfg.get("distillation", True),
        backbone=cfg["backbone"],
    )
    load_into(model, sd, source=source)
    return model.eval()


def recorded(obj: dict) -> dict:
    """What a checkpoint says about its use besides its weights: ``resolution``
    ((height, width) from ``meta["resolution"]``, else the training ``args.input_size``)
    and ``labels`` (``meta["labels"]``, the class names in output order); absent
    entries are None. Checkpoints this project trains record both (:func:`with_record`)."""
    meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
    args = obj.get("args")
    args = vars(args) if isinstance(args, argparse.Namespace) else args if isinstance(args, dict) else {}
    size = meta.get("resolution", args.get("input_size"))
    resolution = None
    if size is not None:
        sizes = [size, size] if isinstance(size, int) and not isinstance(size, bool) else size
        if not (
            isinstance(sizes, (list, tuple))
            and len(sizes) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sizes)
        ):
            raise CheckpointError(f"the checkpoint records an input size of {size!r}, not N or [H, W]")
        resolution = (sizes[0], sizes[1])
    labels = meta.get("labels")
    if labels is not None and not (isinstance(labels, (list, tuple)) and all(isinstance(n, str) for n in labels)):
        raise CheckpointError("the checkpoint's meta 'labels' is not a list of class names")
    return {"resolution": resolution, "labels": None if labels is None else list(labels)}


def with_record(state_dict: dict, labels: list[str], resolution: int | tuple[int, int], **meta) -> dict:
    """A checkpoint dict ``{"model": state_dict, "meta": {...}}`` that records its labels and
    input resolution (read back by :func:`recorded`), plus any other ``meta`` facts."""
    size = resolution if isinstance(resolution, int) else list(resolution)
    return {"model": state_dict, "meta": {**meta, "resolution": size, "labels": list(labels)}}
