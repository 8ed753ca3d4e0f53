"""What a package says about itself: its description, metadata (``userDefined``) and the
text of each input and output."""

from __future__ import annotations

import json

from ...preprocessing import artifact_record, record_at
from .convert import LABEL_NAME, LOGITS_NAME

OS_OF_TARGET = {"iOS16": "iOS 16 / macOS 13", "iOS17": "iOS 17 / macOS 14", "iOS18": "iOS 18 / macOS 15"}


def describe(
    ctx, spec, kind: str, convention: str, precision: str, compression: str | None, target: str, sizes: list
) -> None:
    """Fill the description of ``spec`` (a converted package's spec) in place. A package of
    several input ``sizes`` (the default first) records them (``input_sizes``) and the
    preprocessing record of each (``preprocessing_by_size``, JSON keyed by ``HxW``)."""
    meta = spec.description.metadata
    s = ctx.spec
    meta.shortDescription = (
        f"CAS-ViT-{s.variant} image classifier, {_sizes_text(sizes)}, {len(ctx.labels)} classes "
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
        "compute_precision": "fp16" if precision == "w8a8" else precision,
        "weight_compression": compression or ("int8" if precision == "w8a8" else "none"),
        "activation_quantization": "int8" if precision == "w8a8" else "none",
        "minimum_deployment_target": OS_OF_TARGET[target],
    }
    if len(sizes) > 1:
        user["input_sizes"] = ",".join(f"{h}x{w}" for h, w in sizes)
        records = {f"{h}x{w}": artifact_record(record_at(ctx.preprocessing, s, h, w), convention) for h, w in sizes}
        user["preprocessing_by_size"] = json.dumps(records)
    for key, value in user.items():
        meta.userDefined[key] = str(value)
    p = ctx.preprocessing
    image_text = (
        f"RGB image {_sizes_text(sizes)} (pixels 0-255; mean {list(p.mean)} / std {list(p.std)} of RGB/255 are "
        "applied inside the model)"
        if kind == "image"
        else f"float32 NCHW 1x3xHxW, HxW {_sizes_text(sizes)}, {convention} input"
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


def _sizes_text(sizes: list) -> str:
    """'64x64', or '64x64 (default) or 96x96' (height x width)."""
    names = [f"{h}x{w}" for h, w in sizes]
    return names[0] if len(names) == 1 else f"{names[0]} (default) or " + " or ".join(names[1:])


def _project_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("casvit-deploy")
    except PackageNotFoundError:
        return "unknown (casvit-deploy not installed)"
