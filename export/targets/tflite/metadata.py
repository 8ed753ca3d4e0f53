"""What a ``.tflite`` says about itself.

1. TFLite standard metadata (the ``TFLITE_METADATA`` flatbuffer of the TFLite
   metadata schema, read by MediaPipe Tasks, the TFLite Task Library and ML Kit):
   image input with RGB ImageProperties and a *scalar* NormalizationOptions, the
   class names as the associated ``labels.txt`` (TENSOR_AXIS_LABELS) packed in a
   zip appended to the model, and the minimum parser version. MediaPipe refuses
   per-channel normalization, so every ``.tflite`` embeds the record's
   per-channel mean/std in the model and takes RGB in [0, 1] or [0, 255]; the
   declared scalar normalization only maps 0-255 pixels to that range.
2. Companion files for the Android app: ``<stem>.json`` (schema
   ``casvit-model/3``: input, output and the full preprocessing record, which
   the standard cannot express: crop_pct, crop mode, interpolation, output
   meaning) and ``labels.txt``.

The metadata is built with the schema's generated flatbuffers classes shipped
in ``mediapipe`` (``mediapipe.tasks.metadata.metadata_schema_py_generated``).
MediaPipe's own writer (``MetadataPopulator``) needs a native helper missing
from mediapipe 1.2.2, and tflite-support pins protobuf<4, so the two small
steps it would do (store the buffer, append the zip) are written here.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from ...fsutil import atomic_write
from ...quiet import captured

SCHEMA = "casvit-model/3"
LABELS_FILE = "labels.txt"
METADATA_NAME = "TFLITE_METADATA"  # the metadata entry name every TFLite metadata reader looks up
METADATA_IDENTIFIER = b"M001"  # file_identifier of metadata_schema.fbs
# Every field used here exists since schema 1.0.0 (the schema's History lists
# later additions: vocabularies, tokenizers, tensor groups, audio, associated
# file versions; none of them is used), so 1.0.0 is the minimum parser version.
MIN_PARSER_VERSION = "1.0.0"
OUTPUT_MEANING = "probabilities (softmax of the logits, summing to 1); the logits are the final SOFTMAX's input"


def _schema():
    """The metadata schema module; importing mediapipe imports TensorFlow, whose native
    logging is kept off the console."""
    with captured():
        from mediapipe.tasks.metadata import metadata_schema_py_generated as schema

    return schema


def pixel_normalization(input_range: float) -> tuple[float, float]:
    """Scalar (mean, std) with ``(pixel - mean) / std`` mapping 0-255 pixels to [0, input_range]."""
    return 0.0, 255.0 / float(input_range)


def metadata_buffer(ctx, input_range: float, precision: str) -> bytes:
    """The TFLITE_METADATA flatbuffer for a model taking RGB in [0, input_range]."""
    import flatbuffers

    schema = _schema()
    s, record = ctx.spec, ctx.preprocessing
    mean, std = pixel_normalization(input_range)

    image = schema.TensorMetadataT()
    image.name = "image"
    image.description = (
        f"RGB image {s.width}x{s.height}, values 0-{input_range:g} (pixels / {std:g}); "
        f"per-channel mean {list(record.mean)} / std {list(record.std)} are applied inside "
        f"the model. Resize/crop first: {_crop_text(record)}."
    )
    image.content = schema.ContentT()
    image.content.contentPropertiesType = schema.ContentProperties.ImageProperties
    image.content.contentProperties = schema.ImagePropertiesT()
    image.content.contentProperties.colorSpace = schema.ColorSpaceType.RGB
    normalization = schema.ProcessUnitT()
    normalization.optionsType = schema.ProcessUnitOptions.NormalizationOptions
    normalization.options = schema.NormalizationOptionsT()
    normalization.options.mean, normalization.options.std = [mean], [std]
    image.processUnits = [normalization]
    image.stats = schema.StatsT()
    image.stats.min, image.stats.max = [0.0], [float(input_range)]

    scores = schema.TensorMetadataT()
    scores.name = "probabilities"
    scores.description = f"one score per class, in label order: {OUTPUT_MEANING}"
    scores.content = schema.ContentT()
    scores.content.contentPropertiesType = schema.ContentProperties.FeatureProperties
    scores.content.contentProperties = schema.FeaturePropertiesT()
    labels = schema.AssociatedFileT()
    labels.name, labels.type = LABELS_FILE, schema.AssociatedFileType.TENSOR_AXIS_LABELS
    labels.description = "class names, one per line, in output order"
    scores.associatedFiles = [labels]

    graph = schema.SubGraphMetadataT()
    graph.inputTensorMetadata, graph.outputTensorMetadata = [image], [scores]
    model = schema.ModelMetadataT()
    model.name = f"CAS-ViT-{s.variant} image classifier ({precision})"
    model.description = f"{len(ctx.labels)} classes, {s.resolution}; weights: {ctx.weights['source']}" + (
        "" if ctx.weights["for_deployment"] else " (NOT FOR DEPLOYMENT)"
    )
    model.version, model.author = precision, "casvit-deploy toolchain (CAS-ViT: Zhang et al., 2024)"
    model.license = "toolchain MIT; weights: license of their source"
    model.subgraphMetadata, model.minParserVersion = [graph], MIN_PARSER_VERSION
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), METADATA_IDENTIFIER)
    return bytes(builder.Output())


def _crop_text(record) -> str:
    if record.crop_mode == "squash":
        return f"resize the whole image to {record.width}x{record.height} ({record.interpolation})"
    return (
        f"resize the shorter side to size/{record.crop_pct:g} ({record.interpolation}), "
        f"center-crop {record.width}x{record.height}"
    )


def with_associated_files(model_bytes: bytes, files: dict[str, bytes]) -> bytes:
    """The model with a zip of ``files`` appended, as the TFLite metadata format packs
    associated files (the flatbuffer stays readable: readers ignore trailing bytes)."""
    out = io.BytesIO(model_bytes)
    out.seek(0, io.SEEK_END)
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # fixed date: same bytes every run
            archive.writestr(info, data)
    return out.getvalue()


def labels_text(labels: list[str]) -> str:
    return "".join(f"{name}\n" for name in labels)


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


def model_json(ctx, tflite_path: Path, precision: str, convention: str) -> dict:
    """The model description the Android app reads (see the module docstring)."""
    from ...preprocessing import artifact_record

    spec, record = ctx.spec, ctx.preprocessing
    inp, out = tensor_details(tflite_path)
    _, height, width, channels = (int(d) for d in inp["shape"])
    described = artifact_record(record, convention)
    return {
        "schema": SCHEMA,
        "model_file": Path(tflite_path).name,
        "labels_file": LABELS_FILE,
        "variant": spec.variant,
        "precision": precision,
        "num_classes": int(ctx.model.num_classes),
        "weights_source": ctx.weights["source"],
        "for_deployment": bool(ctx.weights["for_deployment"]),
        "input": {
            "name": inp["name"],
            "layout": "NHWC",
            "height": height,
            "width": width,
            "channels": channels,
            "color_order": "RGB",
            "dtype": np.dtype(inp["dtype"]).name,
            "normalization_embedded": described["normalization_embedded"],
            "value_range": described["input_range"],
            "mean": list(record.mean),
            "std": list(record.std),
            "quantization": _quantization(inp),
        },
        "preprocessing": described,
        "output": {
            "name": out["name"],
            "dtype": np.dtype(out["dtype"]).name,
            "shape": [int(d) for d in out["shape"]],
            "meaning": OUTPUT_MEANING,
            "scores": "probabilities",
            "quantization": _quantization(out),
        },
    }


def write_companions(ctx, tflite_path: Path, precision: str, convention: str) -> list[Path]:
    """Write ``<stem>.json`` beside the model and a ``labels.txt`` staged for this
    artifact alone (so each promoted model brings the labels with it)."""
    tflite_path = Path(tflite_path)
    json_path = tflite_path.with_suffix(".json")
    atomic_write(json_path, json.dumps(model_json(ctx, tflite_path, precision, convention), indent=2) + "\n")
    labels_dir = ctx.workdir / "labels" / precision
    labels_dir.mkdir(parents=True, exist_ok=True)
    labels_path = labels_dir / LABELS_FILE
    atomic_write(labels_path, labels_text(ctx.labels))
    return [json_path, labels_path]
