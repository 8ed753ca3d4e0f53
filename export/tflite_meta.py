"""Companion files of a ``.tflite`` for the Android app: a shared ``labels.txt``
and a per-model JSON (schema ``casvit-model/1``) describing the input and output,
read from the model file itself so the app needs no guessing."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from casvit.preprocess import IMAGENET_MEAN, IMAGENET_STD

from .fsutil import atomic_write

SCHEMA = "casvit-model/1"
LABELS_FILE = "labels.txt"
PREPROCESSING = ("center crop to the input aspect ratio, bilinear resize (Pillow BILINEAR), RGB/255; "
                 "then (x - mean) / std unless normalization_embedded; "
                 "value_range [0,255] means feed RGB bytes as floats")
OUTPUT_MEANING = "raw logits; apply softmax for probabilities"


def _quantization(detail: dict) -> dict | None:
    """{"scale", "zero_point"} for an integer tensor with quantization parameters, else None."""
    scale, zero_point = detail["quantization"]
    if np.dtype(detail["dtype"]).kind not in "iu" or not scale:
        return None
    return {"scale": float(scale), "zero_point": int(zero_point)}


def tensor_details(path: Path) -> tuple[dict, dict]:
    """Input and output tensor details (name, shape, dtype, quantization) from the LiteRT interpreter."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    return interpreter.get_input_details()[0], interpreter.get_output_details()[0]


def model_json(ctx, tflite_path: Path, precision: str) -> dict:
    """The model description the Android app reads (see the module docstring)."""
    spec = ctx.spec
    inp, out = tensor_details(tflite_path)
    _, height, width, channels = (int(d) for d in inp["shape"])
    embedded = bool(spec.embed_normalization)
    top = float(spec.input_range) if embedded else 1.0
    return {
        "schema": SCHEMA,
        "model_file": Path(tflite_path).name,
        "labels_file": LABELS_FILE,
        "variant": spec.variant, "precision": precision, "num_classes": int(ctx.model.num_classes),
        "weights_source": ctx.weights["source"], "for_deployment": bool(ctx.weights["for_deployment"]),
        "input": {"name": inp["name"], "layout": "NHWC", "height": height, "width": width, "channels": channels,
                  "color_order": "RGB", "dtype": np.dtype(inp["dtype"]).name,
                  "normalization_embedded": embedded, "value_range": [0.0, top],
                  "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
                  "quantization": _quantization(inp)},
        "preprocessing": PREPROCESSING,
        "output": {"name": out["name"], "dtype": np.dtype(out["dtype"]).name,
                   "shape": [int(d) for d in out["shape"]], "meaning": OUTPUT_MEANING,
                   "quantization": _quantization(out)},
    }


def write_companions(ctx, tflite_path: Path, precision: str) -> list[Path]:
    """Write ``<stem>.json`` beside the model and a ``labels.txt`` staged for this
    artifact alone (so each promoted model brings the labels with it)."""
    tflite_path = Path(tflite_path)
    json_path = tflite_path.with_suffix(".json")
    atomic_write(json_path, json.dumps(model_json(ctx, tflite_path, precision), indent=2) + "\n")
    labels_dir = ctx.workdir / "labels" / precision
    labels_dir.mkdir(parents=True, exist_ok=True)
    labels_path = labels_dir / LABELS_FILE
    atomic_write(labels_path, "".join(f"{name}\n" for name in ctx.labels))
    return [json_path, labels_path]
