"""The exact ONNX rewrites before onnx2tf (export/targets/tflite/nhwc.py) on the tiny
deploy model's real ONNX: what they change, that ONNX Runtime computes the same
logits before and after on the parity photos, and that the TFLite artifacts show it."""

from collections import Counter

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="onnx is not installed")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

from casvit import create_model  # noqa: E402
from export.targets.tflite.nhwc import rewrite  # noqa: E402

from .helpers import make_spec  # noqa: E402


@pytest.fixture(scope="module")
def normalized_onnx(tmp_path_factory):
    """The tiny model's ONNX at 64x64 with the normalization embedded, from the pipeline."""
    from export.pipeline import run

    out = tmp_path_factory.mktemp("nhwc") / "out"
    report = run(
        make_spec(targets=("onnx",), variant="tiny", res=(64, 64), embed_normalization=True, out_dir=out)
    ).to_json()
    assert report["passed"]
    return out / "casvit_tiny_64x64.onnx", out / "parity_inputs.npz"


def _ops(path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def _logits(path, rgb: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = rgb.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0)
    return np.concatenate([session.run(None, {"image": x[i : i + 1]})[0] for i in range(len(x))])


def test_rewrites_change_only_what_they_say_and_keep_the_logits(normalized_onnx, tmp_path):
    src, golden = normalized_onnx
    dst = tmp_path / src.name
    counts = rewrite(src, dst)
    blocks = sum(create_model("tiny").layers)  # one qkv conv per block
    assert counts == {"normalization_as_depthwise": 1, "split_conv_outputs": blocks}
    before, after = _ops(src), _ops(dst)
    assert before["Split"] == blocks and "Split" not in after
    assert after["Mul"] == before["Mul"] - 1 and after["Add"] == before["Add"] - 1
    assert after["Conv"] == before["Conv"] + 1 + 2 * blocks  # the depthwise one, and 3 convs for each qkv conv
    graph = onnx.load(str(dst)).graph
    first = next(n for n in graph.node if graph.input[0].name in n.input)
    assert first.op_type == "Conv" and {a.name: a.i for a in first.attribute}["group"] == 3

    rgb = np.load(golden)["rgb"]
    reference, rewritten = _logits(src, rgb), _logits(dst, rgb)
    assert np.abs(rewritten - reference).max() <= 1e-5 * np.abs(reference).max()
    assert (rewritten.argmax(1) == reference.argmax(1)).all()


def test_model_without_the_patterns_is_copied_unchanged(tmp_path):
    """A graph whose input feeds a Conv and whose Split does not follow a Conv."""
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((6, 3, 1, 1), np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["y"]),
            helper.make_node("Relu", ["y"], ["r"]),
            helper.make_node("Split", ["r"], ["a", "b"], axis=1, num_outputs=2),
            helper.make_node("Add", ["a", "b"], ["z"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 3, 4, 4])],
        [weight],
    )
    src = tmp_path / "src.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), str(src))
    assert rewrite(src, tmp_path / "dst.onnx") == {"normalization_as_depthwise": 0, "split_conv_outputs": 0}
    assert _ops(tmp_path / "dst.onnx") == _ops(src)


def _input_chain(path, length: int) -> list[str]:
    """The first ``length`` ops computing on the input (past the int8 model's QUANTIZE),
    each the first reader of the one before."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    ops = interpreter._get_ops_details()
    tensor, chain = interpreter.get_input_details()[0]["index"], []
    while len(chain) < length:
        op = next(o for o in ops if tensor in o["inputs"])
        if op["op_name"] != "QUANTIZE" or chain:
            chain.append(op["op_name"])
        tensor = op["outputs"][0]
    return chain


def test_tflite_artifacts_have_the_wide_depthwise_normalization_and_no_split(tiny_tflite_export):
    """The normalization is one depthwise op (ONNX rewrite) on a [1, H, 1, W*3] view
    (export.targets.tflite.graph.wide_input_normalization) in every precision."""
    for entry in tiny_tflite_export["report"]["artifacts"]:
        assert "SPLIT" not in entry["audit"]["census"], entry["name"]
        chain = _input_chain(tiny_tflite_export["out"] / entry["file"], 3)
        assert chain == ["RESHAPE", "DEPTHWISE_CONV_2D", "RESHAPE"], entry["name"]
