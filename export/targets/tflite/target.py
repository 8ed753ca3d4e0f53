"""TFLite target: onnx2tf turns the simplified batch-1 ONNX into NHWC float32
and float16 models and a SavedModel, from which ``quant`` makes the
dynamic-range int8 and full-integer int8 (float input/output, calibrated on real
images) models, each one XNNPACK partition; I/O are renamed ``image``/``logits`` with a
``serving_default`` signature and TFLite standard metadata (labels, scalar
NormalizationOptions) is added; parity runs in the LiteRT interpreter.

Every ``.tflite`` embeds the per-channel mean/std and takes RGB in [0, 1] (or
[0, 255] with ``--input-range 255``): MediaPipe's ImageClassifier accepts only
a scalar normalization (see ``metadata``)."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from casvit.preprocess import resize

from ... import isolate
from ...errors import ExportError
from ...fsutil import atomic_write, save_array
from ...limits import CALIBRATION_BYTES, MIB, calibration_images
from ...litert_io import dequantize, quantize
from ...options import OptionRecord, comma_list, option
from ...outset import keep_converter_log
from ...parity import compare
from ...quiet import captured
from ...spec import Artifact
from ..base import MemoryCost, Repair, Repaired, Target
from ..onnx import target as onnx
from .fallback import FLOAT_MAC_BUDGET, keep_worst_in_float
from .graph import wide_input_normalization
from .layers import intermediates
from .metadata import (
    LABELS_FILE,
    METADATA_NAME,
    OUTPUT_MEANING,
    labels_text,
    metadata_buffer,
    with_associated_files,
    write_companions,
)
from .nhwc import rewrite
from .probabilities import LOGITS, PROBABILITIES, add_softmax, final_softmax, logits_model
from .quant import QUANTIZED, before_islands
from .runtime import LITERT

INPUT_NAME, SIGNATURE_KEY = "image", "serving_default"
MISPLACED_SOFTMAX = "SOFTMAX_NOT_FINAL"  # census name of a SOFTMAX other than the final one (denied)
PRECISIONS = ("fp32", "fp16", "int8-dynamic", "int8")
FALLBACK_MODES = ("auto", "off")
# onnx2tf output file suffix per precision, in the order onnx2tf writes them.
ONNX2TF_SUFFIX = {"fp32": "float32", "fp16": "float16", "int8-dynamic": "dynamic_range_quant", "int8": "integer_quant"}
# onnx2tf 1.x reads this test-image file from its working folder and downloads it
# when absent (for every 4-D image input); we write it ourselves from local photos.
ONNX2TF_SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"


@dataclass(frozen=True)
class TFLiteOptions(OptionRecord):
    tflite_precisions: tuple[str, ...] = option(
        PRECISIONS,
        "comma-separated precisions; int8 is full-integer inside with float32 input/output",
        parse=comma_list(PRECISIONS, "TFLite precision"),
        metavar="LIST",
    )
    int8_fallback: str = option(
        "auto",
        "auto: when the int8 model fails its parity or accuracy gate, keep its worst layers in float "
        f"(at most {FLOAT_MAC_BUDGET * 100:.0f} %% of the conv MACs) until it passes; off: never",
        choices=FALLBACK_MODES,
    )


def input_range(ctx) -> float:
    """RGB scale of every TFLite input (normalization is always inside the model)."""
    return float(ctx.spec.input_range)


def _input_scaling(ctx) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) so that (rgb/255 - mean) / std is the TFLite input: RGB in [0, input range]."""
    mean, std = (0.0,) * 3, (1.0 / input_range(ctx),) * 3
    return np.asarray(mean, np.float32).reshape(1, 1, 1, 3), np.asarray(std, np.float32).reshape(1, 1, 1, 3)


def _onnx2tf_convert(kwargs: dict, calibration_path: Path, quantized: dict[str, Path]) -> None:
    """The onnx2tf call (fp32, fp16 and the SavedModel), then our int8 models from that
    SavedModel (``quant``); runs in a child process (``export.isolate``)
    whose working folder is onnx2tf's and whose stdout/stderr are the onnx2tf log."""
    import onnx2tf

    from .quant import quantize

    onnx2tf.convert(**kwargs)
    if quantized:
        quantize(Path(kwargs["output_folder_path"]), np.load(calibration_path), quantized)


def _run_onnx2tf(ctx, onnx_path: Path, calib, precisions: tuple[str, ...]) -> tuple[dict[str, Path], float]:
    """One onnx2tf run in a child process and its own working folder; returns the
    .tflite per precision and the seconds taken."""
    work = _onnx2tf_folder(ctx)
    work.mkdir(parents=True, exist_ok=True)
    mean, std = _input_scaling(ctx)
    unit = calib.rgb.astype(np.float32) / np.float32(255.0)  # NHWC in [0, 1]
    save_array(work / "calibration.npy", ((unit - mean) / std).astype(np.float32))  # as the model's input takes it
    sample = [np.asarray(resize(Image.fromarray(calib.rgb[i % len(calib.rgb)]), 128, 128)) for i in range(20)]
    save_array(work / ONNX2TF_SAMPLE_FILE, np.stack(sample).astype(np.float32) / np.float32(255.0))
    log_path = work / "onnx2tf.log"
    out = work / "saved_model"
    files = {p: out / f"{onnx_path.stem}_{ONNX2TF_SUFFIX[p]}.tflite" for p in precisions}
    # Not copy_onnx_input_output_names_to_tflite: it shells out to flatc and curl
    # (network). _finalize names the I/O and adds the signature instead. The int8
    # models are ours (``quant``), not onnx2tf's; output_signaturedefs makes
    # onnx2tf write the SavedModel with one serving endpoint (its tf.saved_model.save of the
    # whole Keras model made xs's fp32 step 72 s instead of 46 s in one loaded run).
    kwargs = dict(
        input_onnx_file_path=str(onnx_path), output_folder_path=str(out), output_signaturedefs=True, verbosity="info"
    )
    quantized = {p: files[p] for p in precisions if p in QUANTIZED}
    start = time.perf_counter()
    try:
        isolate.call(
            _onnx2tf_convert,
            (kwargs, work / "calibration.npy", quantized),
            workdir=work,
            label="onnx2tf",
            log_path=log_path,
            stage="converting the ONNX model to TFLite",
        )
    except ExportError as e:
        e.args = (f"{e}; its log: {keep_converter_log(ctx.spec.out_dir, 'tflite', log_path)}",)
        raise
    seconds = time.perf_counter() - start
    missing = [p for p, f in files.items() if not f.is_file()]
    if missing:
        kept = keep_converter_log(ctx.spec.out_dir, "tflite", log_path)
        raise ExportError(f"onnx2tf wrote no {', '.join(missing)} model; its log: {kept}")
    return files, seconds


def _onnx2tf_folder(ctx) -> Path:
    """onnx2tf's working folder in the run's staging folder (its models in ``saved_model``)."""
    return ctx.workdir / "onnx2tf"


def _nhwc_model(ctx, static: Path) -> Path:
    """The static ONNX after the exact NHWC rewrites (``nhwc``), under
    the same file name: onnx2tf names its files after it."""
    path = ctx.workdir / "onnx2tf-input" / static.name
    path.parent.mkdir(parents=True, exist_ok=True)
    counts = rewrite(static, path)
    if not counts["normalization_as_depthwise"]:
        raise ExportError(f"{static.name}: no input normalization (Mul -> Add) found to run as a depthwise conv")
    ctx.log("tflite: NHWC rewrites " + ", ".join(f"{name} x{n}" for name, n in counts.items()))
    return path


def _step_seconds(files: dict[str, Path], start_mtime: float) -> dict[str, float]:
    """Seconds each file took within the single onnx2tf run, from the file written
    before it (fp32 includes the ONNX -> TensorFlow graph conversion)."""
    previous, out = start_mtime, {}
    for precision in PRECISIONS:
        if precision in files:
            mtime = files[precision].stat().st_mtime
            out[precision] = mtime - previous
            previous = mtime
    return out


def _finalize(ctx, src: Path, dst: Path, precision: str) -> None:
    """Run the input normalization on a wide view (``graph.wide_input_normalization``),
    name the input ``image`` and the output ``logits``, append the final SOFTMAX
    (``probabilities``), add a serving_default signature image -> probabilities, the
    export metadata ("casvit", JSON) and the TFLite standard metadata with the labels
    file appended, and write ``dst`` atomically (TFLite schema object API)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(src))
    if not wide_input_normalization(model):
        raise ExportError(f"{src.name}: no 3-channel 1x1 depthwise input normalization to run on a wide view")
    graph = model.subgraphs[0]
    if len(model.subgraphs) != 1 or len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ExportError(f"{src.name}: expected one subgraph with one input and one output")
    in_index, logits_index = int(graph.inputs[0]), int(graph.outputs[0])
    graph.tensors[in_index].name, graph.tensors[logits_index].name = INPUT_NAME, LOGITS
    out_index = add_softmax(model)
    signature = schema.SignatureDefT()
    signature.signatureKey, signature.subgraphIndex = SIGNATURE_KEY, 0
    signature.inputs = [_tensor_map(schema, INPUT_NAME, in_index)]
    signature.outputs = [_tensor_map(schema, PROBABILITIES, out_index)]
    model.signatureDefs = [signature]
    record = {**ctx.metadata_record(convention(ctx)), "output": OUTPUT_MEANING}
    export_json = json.dumps(record, sort_keys=True, ensure_ascii=False).encode()
    _add_metadata(schema, model, "casvit", export_json)
    _add_metadata(schema, model, METADATA_NAME, metadata_buffer(ctx, input_range(ctx), precision))
    body = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    atomic_write(dst, with_associated_files(body, {LABELS_FILE: labels_text(ctx.labels).encode()}))


def _add_metadata(schema, model, name: str, data: bytes) -> None:
    """A named model metadata entry pointing at a new buffer holding ``data``."""
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(data, np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = name, len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]


def convention(ctx) -> str:
    """Input convention of every TFLite artifact: RGB, normalization embedded."""
    return ctx.input_convention(True, input_range(ctx))


def _tensor_map(schema, name: str, index: int):
    entry = schema.TensorMapT()
    entry.name, entry.tensorIndex = name, index
    return entry


def precisions_of(spec) -> tuple[str, ...]:
    """The precisions ``spec`` asks for."""
    return spec.options_of("tflite").tflite_precisions


def convert(ctx) -> list[Artifact]:
    spec = ctx.spec
    precisions = precisions_of(spec)
    calib = ctx.calibration
    ctx.log(f"tflite: {len(calib.names)} calibration images from {calib.source}")
    onnx_path = _nhwc_model(ctx, onnx.static_model(ctx, True, input_range(ctx)))
    ctx.log(f"tflite: onnx2tf -> {', '.join(precisions)} (log kept only on failure)")
    start_wall = time.time()
    files, total = _run_onnx2tf(ctx, onnx_path, calib, precisions)
    steps = _step_seconds(files, start_wall)
    artifacts = []
    for precision in precisions:
        path = ctx.workdir / f"casvit_{spec.variant}_{spec.resolution}_{precision}.tflite"
        _finalize(ctx, files[precision], path, precision)
        details = {
            "onnx2tf_file": files[precision].name,
            "onnx2tf_run_seconds": round(total, 2),
            "signature": f"{SIGNATURE_KEY}: {INPUT_NAME} -> {PROBABILITIES}",
            "layout": "NHWC",
        }
        if precision == "int8":
            details["calibration"] = calib.describe()
        companions = write_companions(ctx, path, precision, convention(ctx))
        artifacts.append(
            Artifact(
                artifact_name(precision),
                "tflite",
                precision,
                path,
                convention(ctx),
                steps[precision],
                details=details,
                companions=companions,
            )
        )
    return artifacts


def artifact_name(precision: str) -> str:
    return f"tflite-{precision}"


def artifact_names(spec) -> tuple[str, ...]:
    return tuple(artifact_name(p) for p in precisions_of(spec))


def load(artifact: Artifact):
    """NCHW float32 batch -> float32 logits through the LiteRT interpreter (1 thread):
    the artifact without its final SOFTMAX (``probabilities.logits_model``), quantizing
    the input / dequantizing the output where the model is integer there. On the first
    batch the shipped model runs too, and how far its probabilities are from the softmax
    of those logits is recorded (``runtime_facts``)."""
    from ai_edge_litert.interpreter import Interpreter

    with captured():  # LiteRT's native note that it created the XNNPACK delegate
        logits = Interpreter(model_content=logits_model(artifact.path), num_threads=1)
        shipped = Interpreter(model_path=str(artifact.path), num_threads=1)
        for interpreter in (logits, shipped):
            interpreter.allocate_tensors()
    first = []

    def run(x: np.ndarray) -> np.ndarray:
        nhwc = np.ascontiguousarray(np.asarray(x, np.float32).transpose(0, 2, 3, 1))
        out = np.stack([_invoke(logits, sample) for sample in nhwc])
        if not first:
            first.append(True)
            scores = np.stack([_invoke(shipped, sample) for sample in nhwc])
            shifted = np.exp(out - out.max(axis=1, keepdims=True))
            m = compare(shifted / shifted.sum(axis=1, keepdims=True), scores)
            artifact.runtime_facts.comparisons["probabilities_vs_softmax_of_logits"] = {
                **{k: m[k] for k in ("max_abs", "max_rel", "min_cosine")},
                "max_sum_error": float(np.abs(scores.sum(axis=1) - 1.0).max()),
            }
        return out

    return run


def fallback(artifact: Artifact, entry: dict, repair: Repair) -> Repaired | None:
    """The full-integer int8 model with its worst layers in float (``fallback``), unless
    ``--int8-fallback off`` or the artifact is of another precision."""
    ctx = repair.context
    if artifact.precision != "int8" or ctx.spec.options_of("tflite").int8_fallback == "off":
        return None
    source = before_islands(_onnx2tf_folder(ctx) / "saved_model" / artifact.details["onnx2tf_file"])
    ctx.log(f"{artifact.name}: int8 fallback: keeping the worst layers in float")
    return keep_worst_in_float(
        artifact, entry, repair, source, lambda src, dst: _finalize(ctx, src, dst, artifact.precision), load
    )


def _invoke(interpreter, sample: np.ndarray) -> np.ndarray:
    """One NHWC sample through an interpreter: its first output, as float32."""
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.set_tensor(inp["index"], quantize(sample[None], inp))
    interpreter.invoke()
    return dequantize(interpreter.get_tensor(out["index"]), out)[0]


def census(artifact: Artifact) -> dict[str, int]:
    """Op name -> count from the flatbuffer; custom ops by their code (Flex ops are
    ``Flex*``); a SOFTMAX other than the final one is ``SOFTMAX_NOT_FINAL`` (denied)."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(artifact.path))
    names = []
    for index, code in enumerate(model.operatorCodes):
        name = flatbuffer_utils.opcode_to_name(model, index)
        if name == "CUSTOM" or name is None:
            custom = (code.customCode or b"").decode("ascii", "replace")
            name = custom if custom.startswith("Flex") else f"CUSTOM:{custom}"
        names.append(name)
    final = final_softmax(model)
    ops = [names[op.opcodeIndex] for graph in model.subgraphs for op in graph.operators or []]
    misplaced = ops.count("SOFTMAX") - (final is not None)
    counts = Counter(op for op in ops if op != "SOFTMAX")
    counts.update({"SOFTMAX": int(final is not None), MISPLACED_SOFTMAX: misplaced})
    return {k: v for k, v in counts.items() if v}


def runtime_note(artifact: Artifact) -> str:
    from importlib.metadata import version

    litert = version("ai-edge-litert")
    return f"LiteRT {litert} Interpreter (ai_edge_litert, CPU, 1 thread, default XNNPACK delegate), NHWC"


def _calibration_bytes_per_pixel(spec) -> int:
    """Memory per pixel of the calibration images (float32 copies for onnx2tf)."""
    return CALIBRATION_BYTES * calibration_images(spec)


TARGET = Target(
    name="tflite",
    artifact_names=artifact_names,
    convert=convert,
    load=load,
    census=census,
    runtime_note=runtime_note,
    allow=frozenset(
        {
            "CONV_2D",
            "DEPTHWISE_CONV_2D",
            "ADD",
            "MUL",
            "LOGISTIC",
            "RELU",
            "GELU",
            "MEAN",
            "SPLIT",
            "SPLIT_V",
            "STRIDED_SLICE",
            "PAD",
            "RESHAPE",
            "QUANTIZE",
            "DEQUANTIZE",
            "SOFTMAX",  # only the final one (census)
        }
    ),
    deny=frozenset({"FULLY_CONNECTED", "BATCH_MATMUL", MISPLACED_SOFTMAX, "CUSTOM"}),
    deny_prefixes=("Flex", "CUSTOM"),  # every Flex (TensorFlow) op and every custom op
    memory=MemoryCost(1750 * MIB, 226, extra_per_pixel=_calibration_bytes_per_pixel, per_class=23500),
    tools=("onnx2tf", "tensorflow", "ai-edge-litert"),
    options=TFLiteOptions,
    calibrates=lambda spec: "int8" in precisions_of(spec),
    depends_on=("onnx",),
    bench=LITERT,
    intermediates=intermediates,
    fallback=fallback,
)
