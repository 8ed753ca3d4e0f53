"""Core ML target end to end on Linux: conversion offline, audit and parity through
the reference interpreter (fp16, fp32, palettized), metadata, determinism, and a
mutated program that must fail parity."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from casvit.preprocess import official_default
from export import parity
from export.audit import audit
from export.cli import main as cli_main
from export.inputs import parity_images, to_convention
from export.outset import problems
from export.pipeline import reference_logits, run
from export.spec import Artifact
from export.targets.coreml import target as coreml

from .helpers import eval_model, make_spec

pytestmark = pytest.mark.skipif(sys.platform == "darwin", reason="Linux path: on macOS load() uses MLModel.predict")


@pytest.fixture(scope="module")
def export_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("coreml")
    spec = make_spec(
        targets=("coreml",),
        variant="tiny",
        res=(64, 64),
        out_dir=out,
        coreml_precision="both",
        coreml_compress="palettize8",
    )
    return run(spec).to_json(), out


def _entry(report, name):
    return next(a for a in report["artifacts"] if a["name"] == name)


@pytest.mark.slow
def test_fp16_fp32_and_palettized_pass_audit_and_interpreter_parity(export_run):
    report, out = export_run
    names = [a["name"] for a in report["artifacts"]]
    assert names == ["coreml-fp16", "coreml-fp16-palettize8", "coreml-fp32", "coreml-fp32-palettize8"]
    for a in report["artifacts"]:
        assert a["audit"]["passed"] and a["parity"]["passed"] and a["status"] == "promoted", a["name"]
        assert a["runtime"] == coreml.REFERENCE_NOTE
        assert (out / a["file"] / "Manifest.json").is_file()
        assert a["details"]["interpreter_seconds_per_image"] > 0
    assert _entry(report, "coreml-fp32")["parity"]["metrics"]["max_rel"] < 1e-5
    assert "constexpr_lut_to_dense" in _entry(report, "coreml-fp16-palettize8")["audit"]["census"]
    assert _entry(report, "coreml-fp16-palettize8")["size_bytes"] < _entry(report, "coreml-fp16")["size_bytes"]
    assert report["network_attempts"] == 0  # conversion ran under no_network(): any attempt would have raised
    assert not list(out.glob(".tmp-*")) and not list(out.glob(".staging-*")) and problems(out) == []


@pytest.mark.slow
def test_op_census_is_the_deploy_graph(export_run):
    census = _entry(export_run[0], "coreml-fp16")["audit"]["census"]
    assert {"conv", "gelu", "sigmoid", "relu", "reduce_mean", "split", "mul", "add", "classify"} <= set(census)
    assert census["classify"] == 1 and census["gelu"] == 10  # one exact GELU per LocalIntegration and per Mlp
    assert census["softmax"] == 1  # the one feeding classify: the model body stays softmax-free
    assert not {"batch_norm", coreml.MISPLACED_SOFTMAX, "linear", "matmul"} & set(census)


@pytest.mark.slow
def test_spec_inputs_outputs_labels_and_metadata(export_run):
    import coremltools as ct

    report, out = export_run
    spec = ct.utils.load_spec(str(out / _entry(report, "coreml-fp16")["file"]))
    image = spec.description.input[0]
    assert image.name == "image" and image.type.imageType.width == 64 and image.type.imageType.height == 64
    assert image.type.imageType.ColorSpace.Name(image.type.imageType.colorSpace) == "RGB"
    assert [o.name for o in spec.description.output] == ["classLabel", "classLabel_probs", "logits"]
    assert spec.description.predictedFeatureName == "classLabel"
    assert spec.specificationVersion == 7  # iOS 16
    meta = spec.description.metadata
    assert meta.shortDescription and meta.author and meta.license and meta.versionString
    user = dict(meta.userDefined)
    assert user["variant"] == "tiny" and user["resolution"] == "64x64"
    assert user["weights_source"] == "random (seed 0)" and "weights_sha256" in user
    assert "com.github.apple.coremltools.conversion_date" not in user
    assert all(f.shortDescription for f in [*spec.description.input, *spec.description.output])
    from export.labels import resolve_labels

    classify = next(op for op in coreml_block(spec).operations if op.type == "classify")
    labels = [
        v.immediateValue.tensor.strings.values[0]
        for v in classify.inputs["classes"].arguments[0].value.immediateValue.list.values
    ]
    assert labels == resolve_labels(1000) and len(set(labels)) == 1000  # unique names: no score is lost


@pytest.mark.slow
def test_edited_programs_type_check_in_coremltools(export_run):
    """The added 'logits' output keeps the program valid: coremltools' own MIL
    loader re-infers every type of the saved packages."""
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load as load_milproto

    report, out = export_run
    for entry in report["artifacts"]:
        package = out / entry["file"]
        spec = ct.utils.load_spec(str(package))
        program = load_milproto(spec, spec.specificationVersion, str(package / "Data/com.apple.CoreML/weights"))
        outputs = program.functions["main"].outputs
        assert [v.name for v in outputs] == ["classLabel", "classLabel_probs", "logits"], entry["name"]
        assert outputs[2].shape == (1, 1000)


def coreml_block(spec):
    from export.targets.coreml.mil import main_block

    return main_block(spec)[1]


def _mutated(tmp_path: Path, package: Path, mutate) -> Artifact:
    import coremltools as ct

    spec = ct.utils.load_spec(str(package))
    mutate(coreml_block(spec))
    path = tmp_path / f"mutated_{mutate.__name__}.mlpackage"
    ct.models.MLModel(spec, weights_dir=str(package / "Data/com.apple.CoreML/weights"), skip_model_load=True).save(
        str(path)
    )
    return Artifact("coreml-fp16", "coreml", "fp16", path, "byte")


def _parity(artifact: Artifact) -> dict:
    model = eval_model(variant="tiny", res=(64, 64))
    _, rgb = parity_images(official_default(64, 64))
    reference = reference_logits(model, to_convention(rgb, "normalized"))
    return parity.check(reference, coreml.load(artifact)(to_convention(rgb, "byte")), artifact.precision)


@pytest.mark.slow
def test_mutated_programs_fail_parity(export_run, tmp_path):
    from export.targets.coreml.mil.values import BlobFiles, decode

    report, out = export_run
    package = out / _entry(report, "coreml-fp16")["file"]
    original = Artifact("coreml-fp16", "coreml", "fp16", package, "byte")
    assert _parity(original)["passed"]

    def one_weight_changed(block):
        const = next(
            op for op in block.operations if op.type == "const" and op.outputs[0].name == "classifier_bias_to_fp16"
        )
        value = decode(const.attributes["val"], BlobFiles(package / "Data/com.apple.CoreML/weights"))
        value = value.copy()
        value[0] += np.float16(4.0)
        val = const.attributes["val"]
        val.ClearField("blobFileValue")
        val.immediateValue.tensor.bytes.values = value.tobytes()

    def one_op_swapped(block):
        next(op for op in block.operations if op.type == "relu").type = "sigmoid"

    for mutate in (one_weight_changed, one_op_swapped):
        result = _parity(_mutated(tmp_path, package, mutate))
        assert not result["passed"], mutate.__name__


@pytest.mark.slow
def test_tensor_input_ios18_user_labels_and_deterministic_bytes(tmp_path):
    """Two identical runs give byte-identical packages (k-means palettization included)."""
    import coremltools as ct

    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"thing {i}\n" for i in range(10)))
    runs = []
    for i in range(2):
        spec = make_spec(
            targets=("coreml",),
            variant="tiny",
            res=(32, 32),
            out_dir=tmp_path / str(i),
            embed_normalization=True,
            input_range=1.0,
            num_classes=10,
            labels=labels,
            coreml_precision="fp32",
            coreml_input="tensor",
            coreml_target="iOS18",
            coreml_compress="palettize6",
        )
        runs.append(run(spec).to_json()["artifacts"])
    for entry in runs[0]:
        assert entry["input_convention"] == "unit" and entry["parity"]["passed"], entry["name"]
        assert entry["details"]["mil_opset"] == "CoreML8"
    assert [e["sha256"] for e in runs[0]] == [e["sha256"] for e in runs[1]]
    spec = ct.utils.load_spec(str(tmp_path / "0" / runs[0][1]["file"]))
    assert spec.description.input[0].type.WhichOneof("Type") == "multiArrayType"
    assert list(spec.description.output[2].type.multiArrayType.shape) == [1, 10]
    assert spec.description.metadata.userDefined["num_classes"] == "10"


def test_bad_compression_option_is_a_one_line_error(tmp_path, capsys):
    code = cli_main(
        [
            "--target",
            "coreml",
            "--variant",
            "tiny",
            "--res",
            "32",
            "--out",
            str(tmp_path),
            "--coreml-compress",
            "palettize4",
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: --coreml-compress 'palettize4': unknown compression palettize4")


@pytest.mark.slow
def test_class_probabilities_are_the_softmax_of_eager_logits(export_run):
    """classLabel_probs (what Vision reports as confidence) sums to 1 and equals softmax
    of the eager logits. Bound: softmax changes no probability by more than half the
    largest logit change (its Jacobian's row sums are 2p(1-p) <= 1/2), applied to the
    fp16 gate on the logits (max_rel 1e-2 of max |logit|)."""
    from export.targets.coreml.mil import Program

    report, out = export_run
    model = eval_model(variant="tiny", res=(64, 64))
    record = official_default(64, 64)
    _, rgb = parity_images(record)
    eager = reference_logits(model, to_convention(rgb, "normalized", record.mean, record.std)).astype(np.float64)
    expected = np.exp(eager - eager.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    for name in ("coreml-fp16", "coreml-fp32"):
        program = Program.load(out / _entry(report, name)["file"])
        labels = None
        for i, x in enumerate(to_convention(rgb, "byte")):
            result = program.run({"image": x[None]})
            probs = result["classLabel_probs"]
            labels = labels or list(probs)
            p = np.array([probs[label] for label in labels])
            assert abs(p.sum() - 1.0) <= 1e-5 and p.min() >= 0.0, name
            bound = 0.5 * parity.tolerance_for(_entry(report, name)["precision"]).max_rel * np.abs(eager[i]).max()
            assert np.abs(p - expected[i]).max() <= bound, (name, i)
            assert result["classLabel"] == labels[int(np.argmax(p))]


@pytest.mark.slow
def test_a_softmax_anywhere_else_fails_the_audit(export_run, tmp_path):
    report, out = export_run
    package = out / _entry(report, "coreml-fp16")["file"]

    def relu_became_softmax(block):
        next(op for op in block.operations if op.type == "relu").type = "softmax"

    census = coreml.census(_mutated(tmp_path, package, relu_became_softmax))
    assert census["softmax"] == 1 and census[coreml.MISPLACED_SOFTMAX] == 1
    assert audit("coreml", census).denied == [coreml.MISPLACED_SOFTMAX]
