"""ONNX target, parity gate, op audit, report and CLI behaviour."""

import json
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from export.audit import audit
from export.checks import Evidence, failure_summary
from export.cli import main
from export.errors import ExportError, GateFailure
from export.offline import NetworkBlocked, no_network
from export.pipeline import run, verify
from export.spec import Artifact
from export.targets.onnx import target as onnx_target

from .helpers import ROOT, make_spec

TINY = dict(variant="tiny", res=(64, 64))


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    report = run(make_spec(targets=("onnx",), out_dir=out, **TINY)).to_json()
    return out, report


def test_tiny_export_passes_audit_and_parity(tiny_export):
    out, report = tiny_export
    (entry,) = report["artifacts"]
    assert entry["status"] == "promoted" and entry["audit"]["passed"] and entry["parity"]["passed"]
    m = entry["parity"]["metrics"]
    assert m["max_rel"] < 1e-5 and m["min_cosine"] > 0.99999 and m["top1_agreement"] == 1.0 and m["samples"] == 6
    assert set(entry["audit"]["census"]) <= {
        "Conv",
        "Sigmoid",
        "Relu",
        "Gelu",
        "Mul",
        "Add",
        "ReduceMean",
        "Split",
        "Reshape",
    }
    assert "Gelu" in entry["audit"]["census"] and report["network_attempts"] == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "casvit_tiny_64x64.onnx",
        "manifest.json",
        "parity_inputs.npz",
        "report.json",
        "report.md",
    ]


def test_onnx_file_names_and_metadata(tiny_export):
    out, report = tiny_export
    model = onnx.load(str(out / "casvit_tiny_64x64.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["image"] and [o.name for o in model.graph.output] == ["logits"]
    assert {o.domain: o.version for o in model.opset_import}[""] >= 20
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["variant"] == "tiny" and meta["resolution"] == "64x64" and meta["layout"] == "NCHW"
    assert meta["weights_source"] == "random (seed 0)" and "torch=" in meta["tool_versions"]
    record = json.loads(meta["preprocessing"])
    assert record["normalization_embedded"] is False and record["mean"] == [0.485, 0.456, 0.406]
    assert record["crop_pct"] == 0.875 and record["interpolation"] == "bicubic"
    assert json.loads(meta["labels"])[:2] == ["tench", "goldfish"]
    assert not [k for k in meta if k.startswith("onnxsim")]  # the simplifier's bookkeeping is dropped


def test_report_and_manifest_agree_with_files(tiny_export):
    out, report = tiny_export
    saved = json.loads((out / "report.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    assert saved["passed"] and saved["weights"]["for_deployment"] is False
    import hashlib

    assert sorted(f["path"] for f in manifest["files"]) == ["casvit_tiny_64x64.onnx", "parity_inputs.npz"]
    for f in manifest["files"]:
        assert f["sha256"] == hashlib.sha256((out / f["path"]).read_bytes()).hexdigest()
    md = (out / "report.md").read_text()
    assert "NOT FOR DEPLOYMENT" in md and "PASSED" in md


@pytest.mark.slow
def test_xs_export_passes(tmp_path):
    from benchmarks.naive import onnx_stage

    report = run(make_spec(targets=("onnx",), variant="xs", res=(64, 96), out_dir=tmp_path / "out")).to_json()
    (entry,) = report["artifacts"]
    assert entry["parity"]["passed"], entry["parity"]
    naive = onnx_stage("xs", 64, tmp_path)  # the eval model exported as is (the benchmarks' naive path)
    assert entry["details"]["nodes"] < naive["nodes"] and "BatchNormalization" in naive["ops"]


@pytest.mark.slow
def test_export_twice_gives_identical_bytes(tiny_export, tmp_path):
    out, _ = tiny_export
    run(make_spec(targets=("onnx",), out_dir=tmp_path, **TINY))
    assert (tmp_path / "casvit_tiny_64x64.onnx").read_bytes() == (out / "casvit_tiny_64x64.onnx").read_bytes()


@pytest.fixture(scope="session")
def dynamic_batch_onnx(tmp_path_factory) -> Path:
    """The tiny model exported once with a dynamic batch dimension."""
    out = tmp_path_factory.mktemp("dyn")
    run(make_spec(targets=("onnx",), dynamic_batch=True, out_dir=out, **TINY))
    return out / "casvit_tiny_64x64.onnx"


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 4])
def test_dynamic_batch(dynamic_batch_onnx, batch):
    import onnxruntime as ort

    sess = ort.InferenceSession(str(dynamic_batch_onnx), providers=["CPUExecutionProvider"])
    assert isinstance(sess.get_inputs()[0].shape[0], str)
    x = np.random.default_rng(0).standard_normal((batch, 3, 64, 64)).astype(np.float32)
    one_by_one = np.concatenate([sess.run(None, {"image": x[i : i + 1]})[0] for i in range(batch)])
    np.testing.assert_allclose(sess.run(None, {"image": x})[0], one_by_one, rtol=1e-5, atol=1e-5)


def _perturb_one_weight(path: Path) -> None:
    model = onnx.load(str(path))
    init = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
    arr = onnx.numpy_helper.to_array(init).copy()
    arr.flat[0] += 10 * float(np.abs(arr).max()) + 1.0
    init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
    onnx.save(model, str(path))


def test_corrupted_artifact_fails_parity_gate_and_is_not_promoted(tmp_path, monkeypatch):
    original = onnx_target.convert

    def corrupting_convert(ctx):
        artifacts = original(ctx)
        _perturb_one_weight(artifacts[0].path)
        return artifacts

    monkeypatch.setattr(onnx_target, "TARGET", replace(onnx_target.TARGET, convert=corrupting_convert))
    with pytest.raises(GateFailure, match="onnx .parity: "):
        run(make_spec(targets=("onnx",), out_dir=tmp_path, **TINY))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rejected"]  # nothing promoted, no manifest on top
    rejected = tmp_path / "rejected"
    report = json.loads((rejected / "report.json").read_text())
    assert report["passed"] is False and report["rejected"] is True and report["previous_set_kept"] is False
    (entry,) = report["artifacts"]
    assert entry["status"] == "rejected" and entry["parity"]["misses"]
    assert (rejected / "casvit_tiny_64x64.onnx").exists()
    manifest = json.loads((rejected / "manifest.json").read_text())
    assert manifest["rejected"] and sorted(f["path"] for f in manifest["files"]) == [
        "casvit_tiny_64x64.onnx",
        "localization.png",  # the failed artifact's per-layer localization (export/localize.py)
        "parity_inputs.npz",
    ]


def _matmul_model(path: Path) -> None:
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2])
    w = helper.make_tensor("w", TensorProto.FLOAT, [4, 2], np.ones(8, np.float32).tolist())
    graph = helper.make_graph([helper.make_node("MatMul", ["image", "w"], ["logits"])], "g", [x], [y], [w])
    onnx.save(helper.make_model(graph), str(path))


def test_graph_with_matmul_fails_audit(tmp_path):
    path = tmp_path / "matmul.onnx"
    _matmul_model(path)
    art = Artifact("onnx", "onnx", "fp32", path, "normalized")
    entry = verify(art, Evidence(np.zeros((1, 2, 2, 3), np.uint8), np.zeros((1, 2), np.float32))).results
    assert not entry["audit"]["passed"] and entry["audit"]["denied"] == ["MatMul"] and entry["parity"] is None
    assert not entry["passed"] and failure_summary(entry) == "audit: denied ops: MatMul"
    assert not audit("onnx", {"Conv": 3, "MyCustomOp": 1}).passed  # unknown ops fail too
    assert audit("onnx", {"Conv": 3, "Gelu": 1}).passed


def test_no_socket_connection_during_export(tmp_path, monkeypatch):
    calls = []
    real_connect = socket.socket.connect

    def spy(self, address):
        calls.append(address)
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", spy)
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: calls.append(a) or [])
    report = run(make_spec(targets=("onnx",), out_dir=tmp_path, **TINY)).to_json()
    assert calls == [] and report["network_attempts"] == 0


def test_network_guard_blocks_and_fails_the_export(tmp_path, monkeypatch):
    with no_network() as attempts, pytest.raises(NetworkBlocked):
        socket.create_connection(("192.0.2.1", 80), timeout=0.1)
    assert attempts

    original = onnx_target.convert

    def phoning_home(ctx):
        try:
            socket.getaddrinfo("example.org", 443)
        except Exception:
            pass  # a library that swallows the error must still fail the export
        return original(ctx)

    monkeypatch.setattr(onnx_target, "TARGET", replace(onnx_target.TARGET, convert=phoning_home))
    with pytest.raises(ExportError, match="network access was attempted"):
        run(make_spec(targets=("onnx",), out_dir=tmp_path, **TINY))
    assert not any(tmp_path.glob("*.onnx")) and not (tmp_path / "report.json").exists()


def test_interrupted_export_leaves_nothing_that_looks_finished(tmp_path, monkeypatch):
    def dies_midway(ctx):
        (ctx.workdir / "casvit_tiny_64x64.onnx").write_bytes(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx_target, "TARGET", replace(onnx_target.TARGET, convert=dies_midway))
    with pytest.raises(KeyboardInterrupt):
        run(make_spec(targets=("onnx",), out_dir=tmp_path, **TINY))
    assert list(tmp_path.iterdir()) == []


def _cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "export", *args], capture_output=True, text=True, cwd=cwd or ROOT, timeout=300
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (["--target", "tensorrt"], "unknown target tensorrt"),
        (["--variant", "xxl"], "invalid choice: 'xxl'"),
        (["--checkpoint", "/nonexistent/model.pth"], "checkpoint not found"),
        (["--res", "225"], "multiples of 32"),
        (["--res", "big"], "is not N or HxW"),
        (["--out", "/proc/casvit-out"], "not writable"),
    ],
)
def test_bad_cli_input_gives_one_line_error(args, message, tmp_path):
    if "--out" not in args:
        args = [*args, "--out", str(tmp_path / "o")]
    r = (
        _cli("--variant", "tiny", "--res", "64", *args)
        if "--variant" not in args and "--res" not in args
        else _cli(*args)
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.stderr
    assert r.stdout == ""


def test_checkpoint_of_another_variant_is_a_one_line_error(tmp_path, reference_dir):
    r = _cli(
        "--variant",
        "xs",
        "--res",
        "64",
        "--checkpoint",
        str(reference_dir / "tiny_official_format.pth"),
        "--out",
        str(tmp_path),
    )
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "--variant xs conflicts with the checkpoint, which is variant 'tiny'" in r.stderr
    assert "10 classes" in r.stderr


@pytest.mark.slow
def test_cli_exports_official_checkpoint(tmp_path, reference_dir):
    code = main(
        [
            "--variant",
            "custom",
            "--res",
            "64",
            "--checkpoint",
            str(reference_dir / "tiny_official_format.pth"),
            "--ema",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["weights"]["for_deployment"] and "(EMA)" in report["weights"]["source"]
    assert report["spec"]["num_classes"] == 10 and report["passed"]


def test_help_explains_every_option():
    r = _cli("--help")
    assert r.returncode == 0
    for opt in (
        "--target",
        "--variant",
        "--checkpoint",
        "--ema",
        "--res",
        "--batch",
        "--dynamic-batch",
        "--embed-normalization",
        "--out",
        "--labels",
        "--force",
        "--debug",
        "--explain",
        "--int8-fallback",
    ):
        assert opt in r.stdout
    text = " ".join(r.stdout.split())
    assert "130 interrupted" in text and "3 the environment failed mid-run" in text and "through make" in text.lower()


def test_golden_data_reproduces_the_artifact_without_torch(tiny_export):
    """parity_inputs.npz + the artifact alone give the parity numbers (no PyTorch needed)."""
    import onnxruntime as ort

    from export import golden
    from export.inputs import to_convention
    from export.parity import compare

    out_dir, report = tiny_export
    g = golden.read(out_dir / golden.FILE_NAME)
    manifest = json.loads((out_dir / "manifest.json").read_text())
    assert golden.FILE_NAME in [f["path"] for f in manifest["files"]]
    assert list(g["names"]) == report["parity_inputs"]["names"]
    session = ort.InferenceSession(str(out_dir / report["artifacts"][0]["file"]), providers=["CPUExecutionProvider"])
    x = to_convention(g["rgb"], report["artifacts"][0]["input_convention"], g["mean"], g["std"])
    out = np.concatenate([session.run(None, {"image": x[i : i + 1]})[0] for i in range(len(x))])
    assert compare(g["logits"], out)["max_rel"] < 1e-5
