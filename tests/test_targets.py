"""The target registry and records, and the explicit ONNX -> TFLite dependency: the
batch-1 static ONNX is built once per run and is the ONNX artifact itself when that
is the same model."""

from pathlib import Path

import pytest

from casvit import create_model, official_default
from export import targets
from export.context import ExportContext
from export.spec import Artifact
from export.targets.coreml.mil import SUPPORTED_OPS
from export.targets.onnx import target as onnx

from .helpers import make_spec


def test_registry_records_carry_their_own_names_and_rules():
    assert targets.names() == ("onnx", "tflite", "coreml")
    for record in targets.records():
        assert targets.get(record.name) is record and record.allow and not record.allow & record.deny
    assert targets.get("tflite").depends_on == ("onnx",)
    assert targets.get("tflite").denies("FlexErf") and targets.get("tflite").denies("CUSTOM:MyOp")
    assert targets.get("coreml").allow is SUPPORTED_OPS and targets.get("coreml").bench is None
    with pytest.raises(ValueError, match="unknown target"):
        targets.get("pte")


def test_report_versions_cover_every_records_tools():
    versions = targets.tool_versions()
    assert "python" in versions
    assert {t for r in targets.records() for t in r.tools} | {"torch", "numpy"} == set(versions) - {"python"}


@pytest.fixture
def ctx(tmp_path):
    spec = make_spec(targets=("onnx", "tflite"), variant="tiny", res=(64, 64), out_dir=tmp_path)
    record = official_default(64, 64)
    weights = {"source": "test", "for_deployment": False}
    return ExportContext(spec, create_model("tiny").eval(), weights, [], tmp_path, record, "official defaults")


@pytest.fixture
def exports(monkeypatch):
    """export_onnx replaced by a recorder that writes its arguments as the file."""
    calls = []

    def fake(ctx, path, batch=1, dynamic=False, embed_normalization=None, input_range=None):
        calls.append((batch, dynamic, embed_normalization, input_range))
        Path(path).write_text(f"exported {calls[-1]}")
        return {}

    monkeypatch.setattr(onnx, "export_onnx", fake)
    return calls


def test_static_model_is_built_once_per_convention(ctx, exports):
    first = onnx.static_model(ctx, True, 1.0)
    assert onnx.static_model(ctx, True, 1.0) == first and exports == [(1, False, True, 1.0)]
    onnx.static_model(ctx, True, 255.0)
    assert exports[-1] == (1, False, True, 255.0) and len(exports) == 2


@pytest.mark.parametrize(
    "batch, convention, reused",
    [(1, "unit", True), ("dynamic", "unit", False), (1, "normalized", False), (4, "unit", False)],
)
def test_static_model_reuses_the_onnx_artifact_only_when_it_is_that_model(
    ctx, exports, tmp_path, batch, convention, reused
):
    artifact_path = tmp_path / "casvit_tiny_64x64.onnx"
    artifact_path.write_bytes(b"the onnx artifact")
    ctx.converted.append(Artifact("onnx", "onnx", "fp32", artifact_path, convention, details={"batch": batch}))
    path = onnx.static_model(ctx, True, 1.0)
    assert path != artifact_path and path.name == "model_static_unit.onnx"  # onnx2tf names outputs after it
    assert (path.read_bytes() == b"the onnx artifact") is reused and (not exports) is reused


def test_a_target_registered_before_its_dependency_is_refused(monkeypatch):
    monkeypatch.setattr(targets, "REGISTRY", {"tflite": targets.REGISTRY["tflite"], "onnx": targets.REGISTRY["onnx"]})
    with pytest.raises(ValueError, match="depends on onnx: register it after them"):
        targets.get("tflite")
    assert targets.get("onnx").name == "onnx"
