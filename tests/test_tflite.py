"""TFLite target: one real export of the tiny model at 64x64 (all four precisions,
calibrated on a user folder), checked through the pipeline's audit and parity gate."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx2tf", reason="onnx2tf is not installed")
pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed")

from export import (
    android_assets,  # noqa: E402
    targets,  # noqa: E402
)
from export.audit import audit  # noqa: E402
from export.errors import EXIT_CONVERTER, ConverterCrash, ExportError, outcome  # noqa: E402
from export.outset import problems  # noqa: E402
from export.pipeline import run  # noqa: E402
from export.targets.tflite import target as tflite  # noqa: E402

from .helpers import ROOT, make_spec  # noqa: E402

SCHEMA_KEYS = {
    "schema",
    "model_file",
    "labels_file",
    "variant",
    "precision",
    "num_classes",
    "weights_source",
    "for_deployment",
    "input",
    "preprocessing",
    "output",
}
INPUT_KEYS = {
    "name",
    "layout",
    "height",
    "width",
    "channels",
    "color_order",
    "dtype",
    "normalization_embedded",
    "value_range",
    "mean",
    "std",
    "quantization",
}
OUTPUT_KEYS = {"name", "dtype", "shape", "meaning", "quantization", "scores"}


@pytest.fixture(scope="module")
def export(tiny_tflite_export):
    """The shared tiny TFLite export (conftest), run once per session."""
    return tiny_tflite_export


def _entries(export) -> dict:
    return {a["name"]: a for a in export["report"]["artifacts"]}


@pytest.mark.slow
def test_every_precision_passes_audit_and_parity(export):
    on_disk = json.loads((export["out"] / "report.json").read_text())
    assert on_disk["passed"] is True
    entries = {a["name"]: a for a in on_disk["artifacts"]}
    assert sorted(entries) == sorted(f"tflite-{p}" for p in tflite.PRECISIONS)
    for name, entry in entries.items():
        assert entry["status"] == "promoted", name
        assert entry["audit"]["passed"] and entry["audit"]["census"]["CONV_2D"] > 0, name
        assert entry["parity"]["passed"], (name, entry["parity"]["misses"])
        assert entry["parity"]["metrics"]["samples"] == 6
        assert (export["out"] / entry["file"]).is_file()
    assert entries["tflite-fp32"]["parity"]["metrics"]["max_rel"] <= 1e-4
    assert "QUANTIZE" in entries["tflite-int8"]["audit"]["census"]  # really integer inside
    assert entries["tflite-int8"]["details"]["calibration"]["count"] == 5
    assert not (export["out"] / "rejected").exists()


def test_every_precision_runs_as_one_xnnpack_partition(export):
    """LiteRT 2.3.0 (the venv's): no op left outside XNNPACK, int8 included (its GELU in float)."""
    from export.targets.tflite.partitions import summary

    for entry in export["report"]["artifacts"]:
        assert summary(str(export["out"] / entry["file"])) == {"partitions": 1, "outside": {}}, entry["name"]


def test_audit_denies_flex_and_custom_ops():
    assert not audit("tflite", {"CONV_2D": 3, "FlexErf": 1}).passed
    assert audit("tflite", {"FlexErf": 1}).denied == ["FlexErf"]
    assert not audit("tflite", {"CUSTOM:MyOp": 1}).passed
    assert not audit("tflite", {"FULLY_CONNECTED": 1}).passed
    assert audit("tflite", {"CONV_2D": 3, "GELU": 1, "QUANTIZE": 1}).passed


@pytest.mark.slow
def test_real_files_have_only_allowed_builtin_ops(export):
    for entry in _entries(export).values():
        census = tflite.census(_artifact(export, entry))
        assert census == entry["audit"]["census"]
        assert not [op for op in census if op.startswith(("Flex", "CUSTOM"))]
        assert set(census) <= targets.get("tflite").allow
        assert census["GELU"] > 0  # GELU stayed one builtin op, not an Erf expansion
        assert census["SOFTMAX"] == 1  # the final one: MediaPipe's scores are probabilities


@pytest.mark.slow
def test_the_final_softmax_is_the_only_one_and_the_checks_see_its_logits(export, tmp_path):
    """Each model ends in one SOFTMAX; parity ran on the model without it (its logits),
    and the shipped probabilities equal their softmax. A SOFTMAX anywhere else is denied."""
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_litert.tools import flatbuffer_utils

    from export.targets.tflite.probabilities import add_softmax, logits_model

    for entry in _entries(export).values():
        check = entry["details"]["probabilities_vs_softmax_of_logits"]
        assert check["max_abs"] < 1e-6 and check["max_sum_error"] < 1e-5, entry["name"]
    path = export["out"] / _entries(export)["tflite-fp32"]["file"]
    twin = Interpreter(model_content=logits_model(path))
    assert [d["name"] for d in twin.get_output_details()] == ["logits"]
    model = flatbuffer_utils.read_model(str(path))
    add_softmax(model)  # a second SOFTMAX after the first: the first is no longer final
    doubled = tmp_path / "doubled.tflite"
    flatbuffer_utils.write_model(model, str(doubled))
    census = tflite.census(_artifact(export, _entries(export)["tflite-fp32"], doubled))
    assert census["SOFTMAX"] == 1 and census[tflite.MISPLACED_SOFTMAX] == 1
    assert audit("tflite", census).denied == [tflite.MISPLACED_SOFTMAX]


@pytest.mark.slow
def test_census_reads_custom_op_codes_from_the_flatbuffer(export, tmp_path):
    """Turn the GELU op code of the real fp32 file into a Flex custom op: the census
    must name it and the audit must fail, as it would for an Erf-based GELU."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    entry = _entries(export)["tflite-fp32"]
    model = flatbuffer_utils.read_model(str(export["out"] / entry["file"]))
    for code in model.operatorCodes:
        if flatbuffer_utils.get_builtin_code_from_operator_code(code) == schema.BuiltinOperator.GELU:
            code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
            code.customCode = b"FlexErf"
    path = tmp_path / "flex.tflite"
    flatbuffer_utils.write_model(model, str(path))
    census = tflite.census(_artifact(export, entry, path))
    assert census["FlexErf"] == entry["audit"]["census"]["GELU"] and "GELU" not in census
    assert audit("tflite", census).denied == ["FlexErf"]


@pytest.mark.slow
def test_conversion_ran_offline_and_left_no_files_behind(export):
    assert export["report"]["network_attempts"] == 0
    assert not list(export["cwd"].iterdir())  # no calibration .npy fetched into the working folder
    assert sorted(p.name for p in export["calib"].iterdir()) == export["calib_before"]
    leftovers = [p.name for p in export["out"].iterdir() if p.name.startswith(".") or p.is_dir()]
    assert leftovers == [] and problems(export["out"]) == []


@pytest.mark.slow
def test_manifest_lists_every_file_once(export):
    """labels.txt is a companion of every TFLite model but one file in OUT."""
    paths = [f["path"] for f in json.loads((export["out"] / "manifest.json").read_text())["files"]]
    assert "labels.txt" in paths and len(paths) == len(set(paths)), paths


def _artifact(export, entry, path=None):
    from export.spec import Artifact

    return Artifact(
        entry["name"], "tflite", entry["precision"], path or export["out"] / entry["file"], entry["input_convention"]
    )


@pytest.mark.slow
def test_model_json_matches_schema_and_file(export):
    from ai_edge_litert.interpreter import Interpreter

    labels = (export["out"] / "labels.txt").read_text().splitlines()
    assert len(labels) == 1000 and labels[0]
    for entry in _entries(export).values():
        path = export["out"] / entry["file"]
        meta = json.loads(path.with_suffix(".json").read_text())
        assert set(meta) == SCHEMA_KEYS and set(meta["input"]) == INPUT_KEYS and set(meta["output"]) == OUTPUT_KEYS
        assert meta["schema"] == "casvit-model/3" and meta["model_file"] == path.name
        assert path.name == f"casvit_tiny_64x64_{meta['precision']}.tflite"
        assert meta["labels_file"] == "labels.txt" and meta["num_classes"] == len(labels)
        assert meta["for_deployment"] is False and meta["weights_source"] == "random (seed 0)"
        interpreter = Interpreter(model_path=str(path))
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        signatures = {"serving_default": {"inputs": ["image"], "outputs": ["probabilities"]}}
        assert interpreter.get_signature_list() == signatures
        assert (
            (inp["name"], out["name"]) == ("image", "probabilities") == (meta["input"]["name"], meta["output"]["name"])
        )
        assert meta["output"]["scores"] == "probabilities"
        assert list(inp["shape"]) == [1, meta["input"]["height"], meta["input"]["width"], meta["input"]["channels"]]
        assert list(inp["shape"]) == [1, 64, 64, 3] and meta["input"]["layout"] == "NHWC"
        assert meta["input"]["dtype"] == np.dtype(inp["dtype"]).name
        assert meta["output"]["dtype"] == np.dtype(out["dtype"]).name and meta["output"]["shape"] == [1, 1000]
        assert meta["input"]["quantization"] is None and meta["output"]["quantization"] is None  # float I/O
        # every .tflite embeds the per-channel normalization (MediaPipe takes only a scalar one)
        assert meta["input"]["normalization_embedded"] is True and meta["input"]["value_range"] == [0.0, 1.0]
        assert meta["preprocessing"]["input_convention"] == entry["input_convention"] == "unit"
        embedded = _embedded_metadata(path)
        assert embedded["variant"] == "tiny" and embedded["resolution"] == "64x64"
        assert embedded["preprocessing"] == meta["preprocessing"]  # plain JSON values, not JSON in strings
        assert embedded["num_classes"] == 1000 and embedded["for_deployment"] is False
        assert embedded["labels"] == labels


@pytest.mark.slow
def test_standard_metadata_declares_scalar_normalization_and_packs_the_labels(export):
    from export.targets.tflite.metadata import MIN_PARSER_VERSION

    from .helpers import read_standard_metadata

    labels = (export["out"] / "labels.txt").read_bytes()
    for entry in _entries(export).values():
        metadata, files = read_standard_metadata(export["out"] / entry["file"])
        assert metadata["minParserVersion"] == MIN_PARSER_VERSION == "1.0.0"
        (graph,) = metadata["subgraphMetadata"]
        (image,), (scores,) = graph["inputTensorMetadata"], graph["outputTensorMetadata"]
        assert image["content"]["contentProperties"]["colorSpace"] == 1  # RGB
        (unit,) = image["processUnits"]
        assert unit["options"] == {"mean": [0.0], "std": [255.0]}  # 0-255 pixels -> the model's [0, 1]
        assert "crop" in image["description"] and "0.875" in image["description"]
        (labels_file,) = scores["associatedFiles"]
        assert labels_file["name"] == "labels.txt" and labels_file["type"] == 2  # TENSOR_AXIS_LABELS
        assert files == {"labels.txt": labels}
        # none of the schema features added after 1.0.0 (so the declared parser version holds)
        assert not {"inputProcessUnits", "outputProcessUnits", "inputTensorGroups", "outputTensorGroups"} & set(graph)
        assert "version" not in labels_file


def _embedded_metadata(path: Path) -> dict:
    """The export metadata stored in the flatbuffer's "casvit" metadata entry."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    (entry,) = [m for m in model.metadata if m.name in (b"casvit", "casvit")]
    return json.loads(bytes(model.buffers[entry.buffer].data).decode())


def test_quantized_io_round_trip():
    detail = {"dtype": np.int8, "quantization": (0.02, -14)}
    x = np.linspace(-2.0, 2.5, 50, dtype=np.float32)
    q = tflite.quantize(x, detail)
    assert q.dtype == np.int8
    assert np.abs(tflite.dequantize(q, detail) - x).max() <= 0.01 + 1e-6
    assert tflite.quantize(np.float32([100.0]), detail)[0] == 127  # saturates
    assert np.array_equal(tflite.quantize(x, {"dtype": np.float32, "quantization": (0.0, 0)}), x)


@pytest.mark.slow
def test_android_assets_copies_the_fp32_model(export, tmp_path):
    assets = tmp_path / "assets"
    assert android_assets.main(["--from", str(export["out"]), "--assets", str(assets)]) == 0
    source = export["out"] / "casvit_tiny_64x64_fp32.tflite"
    assert (assets / "model.tflite").read_bytes() == source.read_bytes()
    assert (assets / "labels.txt").read_bytes() == (export["out"] / "labels.txt").read_bytes()
    meta, copied = json.loads(source.with_suffix(".json").read_text()), json.loads((assets / "model.json").read_text())
    assert copied == {**meta, "model_file": "model.tflite"}
    android_assets.copy_assets(export["out"], assets, "casvit_tiny_64x64_int8.tflite")
    assert json.loads((assets / "model.json").read_text())["precision"] == "int8"
    assert sorted(p.name for p in assets.iterdir()) == ["labels.txt", "model.json", "model.tflite"]


@pytest.mark.slow
def test_android_assets_errors(export, tmp_path, capsys):
    with pytest.raises(ExportError, match="not found"):
        android_assets.copy_assets(tmp_path / "missing", tmp_path / "assets")
    with pytest.raises(ExportError, match="no manifest.json"):
        android_assets.copy_assets(tmp_path, tmp_path / "assets")
    with pytest.raises(ExportError, match="casvit_tiny_64x64_fp16.tflite"):  # lists the choices
        android_assets.copy_assets(export["out"], tmp_path / "assets", "nope.tflite")
    two = tmp_path / "two"
    two.mkdir()
    for name in ("a_fp16.tflite", "b_int8.tflite"):
        (two / name).write_bytes(b"x")
    (two / "manifest.json").write_text(
        json.dumps(
            {
                "tool": "casvit-deploy",
                "files": [{"path": name, "sha256": "0" * 64} for name in ("a_fp16.tflite", "b_int8.tflite")],
            }
        )
    )
    assert android_assets.main(["--from", str(two), "--assets", str(tmp_path / "assets")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: several models") and "a_fp16.tflite, b_int8.tflite" in err and err.count("\n") == 1
    assert not (tmp_path / "assets").exists()


@pytest.mark.slow
def test_android_assets_refuses_unlisted_or_changed_models(export, tmp_path):
    """A stale .tflite beside the set, or a listed one edited after the export, never reaches the app."""
    out = tmp_path / "out"
    shutil.copytree(export["out"], out)
    shutil.copy(out / "casvit_tiny_64x64_fp32.tflite", out / "casvit_tiny_64x64_old.tflite")
    with pytest.raises(ExportError, match="casvit_tiny_64x64_old.tflite is not a .tflite listed in"):
        android_assets.copy_assets(out, tmp_path / "assets", "casvit_tiny_64x64_old.tflite")
    with (out / "casvit_tiny_64x64_fp32.tflite").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ExportError, match="casvit_tiny_64x64_fp32.tflite differs from its manifest entry"):
        android_assets.copy_assets(out, tmp_path / "assets")
    (out / "labels.txt").write_text("edited\n")
    with pytest.raises(ExportError, match="labels.txt differs from its manifest entry"):
        android_assets.copy_assets(out, tmp_path / "assets", "casvit_tiny_64x64_int8.tflite")
    assert not (tmp_path / "assets").exists()


def test_cli_rejects_bad_precision_and_bad_calibration_folder(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    base = [
        sys.executable,
        "-m",
        "export",
        "--target",
        "tflite",
        "--variant",
        "tiny",
        "--res",
        "64",
        "--out",
        str(tmp_path / "out"),
    ]
    for extra, message in (
        (["--tflite-precisions", "fp32,int4"], "unknown TFLite precision int4"),
        (["--calib", str(empty)], "has no images"),
    ):
        done = subprocess.run(base + extra, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 2, done.stderr
        lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and message in lines[0], done.stderr
        assert "Traceback" not in done.stderr


def test_onnx2tf_failure_is_one_line_and_keeps_its_log(tmp_path, monkeypatch):
    """onnx2tf runs in a child process: a failing onnx2tf (it calls sys.exit) becomes a
    ConverterCrash (exit 5) naming the converter, the stage and the kept log; its Python
    and native output went to that log, it ran in its own working folder, and this
    process's folder and descriptors are untouched."""
    import types

    from casvit.preprocess import official_default
    from export.calibration import load_calibration

    fake = tmp_path / "fake"  # an onnx2tf the child imports first (PYTHONPATH)
    (fake / "onnx2tf").mkdir(parents=True)
    (fake / "onnx2tf" / "__init__.py").write_text(
        "import os, sys\n"
        "def convert(**kwargs):\n"
        "    print('python-level chatter in', os.getcwd())\n"
        "    os.write(2, b'native-level chatter\\n')\n"
        "    sys.exit(1)\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(fake))
    ctx = types.SimpleNamespace(
        workdir=tmp_path / "work",
        spec=types.SimpleNamespace(out_dir=tmp_path / "out", input_range=1.0),
        input_convention=lambda: "normalized",
    )
    cwd, fds = os.getcwd(), (os.fstat(1), os.fstat(2))
    with pytest.raises(ConverterCrash) as failure:
        tflite._run_onnx2tf(
            ctx, tmp_path / "model.onnx", load_calibration(official_default(32, 32), count=1), ("fp32",)
        )
    message = str(failure.value)
    assert message == (
        "onnx2tf crashed while converting the ONNX model to TFLite: SystemExit: 1; "
        f"its log: {tmp_path / 'out' / 'tflite-converter.log'}"
    )
    assert outcome(failure.value) == (EXIT_CONVERTER, message)
    log = (tmp_path / "out" / "tflite-converter.log").read_text()
    assert f"python-level chatter in {tmp_path / 'work' / 'onnx2tf'}" in log and "native-level chatter" in log
    assert os.getcwd() == cwd and (os.fstat(1), os.fstat(2)) == fds
    assert (tmp_path / "work" / "onnx2tf" / tflite.ONNX2TF_SAMPLE_FILE).is_file()  # supplied, never fetched


@pytest.fixture(scope="module")
def byte_export(tmp_path_factory):
    """int8 only, with ImageNet normalization embedded and RGB bytes as input."""
    out = tmp_path_factory.mktemp("tflite_byte")
    spec = make_spec(
        targets=("tflite",),
        variant="tiny",
        res=(32, 32),
        out_dir=out,
        embed_normalization=True,
        input_range=255.0,
        tflite_precisions=("int8",),
        calib_count=3,
    )
    return run(spec).to_json(), out


@pytest.mark.slow
def test_embedded_normalization_int8(byte_export):
    report, out = byte_export
    (entry,) = report["artifacts"]
    assert entry["name"] == "tflite-int8" and entry["input_convention"] == "byte" and entry["status"] == "promoted"
    assert entry["details"]["calibration"]["count"] == 3
    meta = json.loads((out / "casvit_tiny_32x32_int8.json").read_text())
    assert meta["input"]["normalization_embedded"] is True and meta["input"]["value_range"] == [0.0, 255.0]
    assert [meta["input"]["height"], meta["input"]["width"]] == [32, 32]
    assert sorted(p.name for p in out.glob("*.tflite")) == ["casvit_tiny_32x32_int8.tflite"]


@pytest.mark.slow
def test_relative_output_folder(tmp_path):
    """`make export` passes a relative OUT; onnx2tf changes the working folder while it
    runs, so every path handed to it must already be absolute."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "export",
            "--target",
            "tflite",
            "--variant",
            "tiny",
            "--res",
            "32",
            "--tflite-precisions",
            "fp32",
            "--out",
            "rel/out",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "rel/out/casvit_tiny_32x32_fp32.tflite").is_file()
    assert json.loads((tmp_path / "rel/out/report.json").read_text())["passed"]
