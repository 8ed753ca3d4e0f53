"""One export of the official-format checkpoint (training args with crop_pct 0.95 and
Inception mean/std, a labels file with repeated names) to ONNX, TFLite and Core ML:
the preprocessing record and the unique labels must reach every artifact's metadata
unchanged."""

import argparse
import json

import numpy as np
import pytest
import torch

from casvit.checkpoint import read_checkpoint
from casvit.preprocess import INCEPTION_MEAN, INCEPTION_STD
from export import golden
from export.labels import unique_names
from export.pipeline import run

from .helpers import REFERENCE, make_spec

NAMES = ["cat", "dog", "cat", "bird", "cat (2)", "fish", "dog", "ant", "bee", "owl"]
# the rule worked by hand: the 2nd "cat" skips "cat (2)" (taken by a later name) -> "cat (3)"
UNIQUE = ["cat", "dog", "cat (3)", "bird", "cat (2)", "fish", "dog (2)", "ant", "bee", "owl"]


def test_unique_name_rule():
    assert unique_names(NAMES) == UNIQUE
    assert unique_names(["a", "b"]) == ["a", "b"]
    assert unique_names(["a", "a", "a"]) == ["a", "a (2)", "a (3)"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("platform")
    obj = read_checkpoint(REFERENCE / "tiny_official_format.pth")
    obj["args"] = argparse.Namespace(**{**vars(obj["args"]), "crop_pct": 0.95, "imagenet_default_mean_and_std": False})
    checkpoint = base / "official_args.pth"
    torch.save(obj, checkpoint)
    labels = base / "names.txt"
    labels.write_text("\n".join(NAMES) + "\n")
    out = base / "out"
    report = run(
        make_spec(
            targets=("onnx", "tflite", "coreml"),
            variant="tiny",
            res=(64, 64),
            checkpoint=checkpoint,
            labels=labels,
            out_dir=out,
            tflite_precisions=("fp32",),
            coreml_precision="fp32",
        )
    ).to_json()
    assert report["passed"]
    return out, report


def _record_ok(record: dict, convention: str) -> None:
    assert record["crop_pct"] == 0.95 and record["crop_mode"] == "center" and record["interpolation"] == "bicubic"
    assert record["mean"] == list(INCEPTION_MEAN) and record["std"] == list(INCEPTION_STD)
    assert (record["height"], record["width"]) == (64, 64) and record["input_convention"] == convention


@pytest.mark.slow
def test_record_reaches_every_artifact(exported):
    import coremltools as ct
    import onnx

    from .helpers import read_standard_metadata

    out, report = exported
    assert report["preprocessing"]["source"] == "checkpoint args" and report["preprocessing"]["crop_pct"] == 0.95
    assert "size/0.95" in (out / "report.md").read_text()
    files = {a["name"]: out / a["file"] for a in report["artifacts"]}
    conventions = {a["name"]: a["input_convention"] for a in report["artifacts"]}

    onnx_meta = {p.key: p.value for p in onnx.load(str(files["onnx"])).metadata_props}
    _record_ok(json.loads(onnx_meta["preprocessing"]), conventions["onnx"])

    model_json = json.loads(files["tflite-fp32"].with_suffix(".json").read_text())
    _record_ok(model_json["preprocessing"], conventions["tflite-fp32"])
    assert model_json["input"]["mean"] == list(INCEPTION_MEAN)
    standard, _ = read_standard_metadata(files["tflite-fp32"])
    assert "size/0.95 (bicubic)" in standard["subgraphMetadata"][0]["inputTensorMetadata"][0]["description"]

    user = dict(ct.utils.load_spec(str(files["coreml-fp32"])).description.metadata.userDefined)
    _record_ok(json.loads(user["preprocessing"]), conventions["coreml-fp32"])

    data = golden.read(out / golden.FILE_NAME)
    assert np.array_equal(data["mean"], np.float32(INCEPTION_MEAN)) and np.array_equal(
        data["std"], np.float32(INCEPTION_STD)
    )


@pytest.mark.slow
def test_unique_labels_are_identical_in_all_four_places(exported):
    import coremltools as ct
    import onnx

    from export.targets.coreml.mil import main_block

    from .helpers import read_standard_metadata

    out, report = exported
    files = {a["name"]: out / a["file"] for a in report["artifacts"]}
    assert (out / "labels.txt").read_text().splitlines() == UNIQUE
    _, packed = read_standard_metadata(files["tflite-fp32"])
    assert packed["labels.txt"].decode().splitlines() == UNIQUE
    onnx_meta = {p.key: p.value for p in onnx.load(str(files["onnx"])).metadata_props}
    assert json.loads(onnx_meta["labels"]) == UNIQUE
    spec = ct.utils.load_spec(str(files["coreml-fp32"]))
    classify = next(op for op in main_block(spec)[1].operations if op.type == "classify")
    classes = [
        v.immediateValue.tensor.strings.values[0]
        for v in classify.inputs["classes"].arguments[0].value.immediateValue.list.values
    ]
    assert classes == UNIQUE
    assert json.loads(dict(spec.description.metadata.userDefined)["labels"]) == UNIQUE
