"""The measuring tools behind the int8 figures of docs/tflite.md and docs/benchmarks.md: benchmarks.int8_quality
reproduces the export's own parity metric from its own path; benchmarks.single_ops
times the one kernel (its int8 models have int8 I/O: no QUANTIZE/DEQUANTIZE);
benchmarks.tflite_ablation takes out what it names and what only that fed."""

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed")


def test_int8_quality_reproduces_the_export_parity_metric(tiny_tflite_export):
    """On the export's own six parity inputs (photos + 2 noise) the tool's worst centered
    cosine and top-1 agreement equal what the export's parity check wrote in the report."""
    from benchmarks.int8_quality import inputs, quality, run_tflite
    from export.inputs import to_convention
    from export.pipeline import reference_logits

    model, rgb, photos, labels = inputs("tiny", 64, None, noise=2)
    assert labels is None
    assert photos.tolist() == [True] * 4 + [False] * 2
    reference = reference_logits(model, to_convention(rgb, "normalized"))
    for entry in tiny_tflite_export["report"]["artifacts"]:
        q = quality(reference, run_tflite(tiny_tflite_export["out"] / entry["file"], rgb), photos)
        metrics = entry["parity"]["metrics"]
        assert q["min_centered_cosine"] == pytest.approx(metrics["min_centered_cosine"], abs=1e-6), entry["name"]
        assert q["top1_agreement"] == metrics["top1_agreement"]
        assert q["photos_min_centered_cosine"] >= q["min_centered_cosine"]


def test_quality_of_an_exact_copy():
    from benchmarks.int8_quality import quality

    reference = np.random.default_rng(0).normal(size=(5, 10))
    q = quality(reference, reference.copy(), np.ones(5, bool))
    assert q["min_centered_cosine"] == pytest.approx(1.0) and q["centered_mse"] == 0 and q["top1_agreement"] == 1
    assert q["top1"] is None
    labels = np.array([reference[0].argmax(), reference[1].argmax(), 0, 0, 0])
    labels[2:] = (reference[2:].argmax(1) + 1) % 10  # three wrong labels
    assert quality(reference, reference.copy(), np.ones(5, bool), labels)["top1"] == pytest.approx(0.4)


def test_single_op_int8_model_is_the_op_alone():
    pytest.importorskip("tensorflow", reason="tensorflow is not installed")
    from ai_edge_litert.interpreter import Interpreter

    from benchmarks.single_ops import _ops, convert

    function, shapes = _ops()["multiply"]
    interpreter = Interpreter(model_content=convert(function, shapes, int8=True))
    assert [op["op_name"] for op in interpreter._get_ops_details()] == ["MUL"]
    assert interpreter.get_input_details()[0]["dtype"] == np.int8


def _bypassed(path, name: str) -> tuple[int, list[str], bytes]:
    """(ops picked, op names left, model bytes) after taking class ``name`` out of ``path``."""
    from ai_edge_litert.tools import flatbuffer_utils

    from benchmarks.tflite_ablation import take_out
    from export.targets.tflite.graph import op_names

    count, model = take_out(path, name)
    names = op_names(model)
    left = [names[op.opcodeIndex] for op in model.subgraphs[0].operators]
    return count, left, bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def test_ablation_takes_out_each_class_and_what_only_it_fed(tiny_tflite_export):
    """On the tiny model's real artifacts: each class's ops are gone, so are the gates'
    sigmoids (nothing else reads them), the other ops stay, and every copy still runs."""
    from ai_edge_litert.interpreter import Interpreter

    from benchmarks.tflite_ablation import CLASSES

    for entry in tiny_tflite_export["report"]["artifacts"]:
        census, path = entry["audit"]["census"], tiny_tflite_export["out"] / entry["file"]
        left = {}
        for name in CLASSES:
            count, ops, body = _bypassed(path, name)
            left[name] = (count, ops)
            interpreter = Interpreter(model_content=body)
            interpreter.allocate_tensors()
            interpreter.invoke()
        depthwise = census["DEPTHWISE_CONV_2D"]
        assert left["input normalization"][0] == 1
        assert left["input normalization"][1].count("DEPTHWISE_CONV_2D") == depthwise - 1
        assert left["depthwise 3x3"][0] == depthwise - 1
        assert left["depthwise 3x3"][1].count("DEPTHWISE_CONV_2D") == 1
        gates, after = left["sigmoid gates"]
        assert gates == census["LOGISTIC"] and "LOGISTIC" not in after
        assert after.count("MUL") == census["MUL"] - gates  # the `* v` products stay
        assert left["GELU"][0] == census["GELU"] and "GELU" not in left["GELU"][1]
