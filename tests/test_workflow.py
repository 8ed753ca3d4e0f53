"""The everyday path: a checkpoint that describes itself, the Python API, images in
any colour mode, one default per option, and a console without library noise."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from casvit import create_model, read_checkpoint
from casvit.checkpoint import recorded
from export import cli, targets
from export.api import ExportResult, export_model
from export.errors import EnvironmentFailure, ExportError, GateFailure, InternalError
from export.spec import ExportSpec, option_names

from .helpers import DIGITS_CHECKPOINT, ROOT, make_spec

TINY = dict(variant="tiny", res=64)


def test_the_digits_checkpoint_records_its_labels_and_resolution():
    facts = recorded(read_checkpoint(DIGITS_CHECKPOINT))
    assert facts == {"resolution": (64, 64), "labels": [str(d) for d in range(10)]}


def test_a_checkpoint_the_project_trains_round_trips_its_record(tmp_path):
    """benchmarks.train_digits writes labels and resolution (a two-image smoke run)."""
    from benchmarks.train_digits import train

    checkpoint, meta = train("tiny", epochs=1, size=32, limit=2, log=lambda message: None)
    path = tmp_path / "trained.pth"
    torch.save(checkpoint, path)
    assert recorded(read_checkpoint(path)) == {"resolution": (32, 32), "labels": [str(d) for d in range(10)]}
    assert meta["labels"] == [str(d) for d in range(10)] and meta["resolution"] == 32


@pytest.mark.slow
def test_make_export_ckpt_alone_takes_everything_from_the_checkpoint(tmp_path):
    out = tmp_path / "out"
    r = subprocess.run(
        ["make", "-o", ".venv/.installed", "export", f"CKPT={DIGITS_CHECKPOINT}", "TARGET=all", f"OUT={out}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    spec = report["spec"]
    assert (spec["variant"], spec["resolution"], spec["num_classes"]) == ("tiny", "64x64", 10)
    assert report["labels"] == [str(d) for d in range(10)]
    names = {a["name"] for a in report["artifacts"]}
    assert {"onnx", "tflite-int8", "coreml-fp16"} <= names
    assert (out / "labels.txt").read_text().split("\n")[:10] == [str(d) for d in range(10)]
    assert "- 10 classes; labels `0`, `1`, `2`, `3`, `4`, ..." in (out / "report.md").read_text()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--variant", "xs"], "--variant xs conflicts with the checkpoint, which is variant 'tiny'"),
        (["--num-classes", "5"], "--num-classes 5 conflicts with the checkpoint, which is 10 classes"),
    ],
)
def test_a_contradiction_with_the_checkpoint_names_both_values(args, message, tmp_path, capsys):
    code = cli.main(["--target", "onnx", "--checkpoint", str(DIGITS_CHECKPOINT), *args, "--out", str(tmp_path)])
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and message in line, line


def test_the_command_line_wins_where_the_weights_allow_it(tmp_path):
    """--res and --labels over the checkpoint's record; a labels file alone sets the class count."""
    from export.source import class_names, read_source, resolve

    names = tmp_path / "names.txt"
    names.write_text("".join(f"digit {d}\n" for d in range(10)))
    spec = make_spec(checkpoint=DIGITS_CHECKPOINT, res=96, labels=names)
    resolved, given = resolve(spec, read_source(spec))
    labels, warnings = class_names(resolved.num_classes, given)
    assert resolved.res == (96, 96) and labels[3] == "digit 3" and resolved.variant == "tiny" and warnings == []
    assert resolved.out_dir.as_posix() == "out/tiny_96"
    three = tmp_path / "three.txt"
    three.write_text("cat\ndog\ncat\n")
    spec = make_spec(variant="tiny", labels=three)
    resolved, given = resolve(spec, read_source(spec))
    labels, warnings = class_names(resolved.num_classes, given)
    assert resolved.num_classes == 3 and labels == ["cat", "dog", "cat (2)"]
    assert warnings == ["1 repeated class names were renamed to stay unique: 'cat' -> 'cat (2)'"]


def test_labels_split_on_newlines_only(tmp_path):
    from export.labels import read_labels_file

    path = tmp_path / "labels.txt"
    path.write_text("a\x0cb\nc\u2028d\r\ne\n\n")
    assert read_labels_file(path) == ("a\x0cb", "c\u2028d", "e")


@pytest.mark.slow
def test_the_python_api_exports_an_in_memory_model_and_returns_what_the_files_say(tmp_path):
    torch.manual_seed(0)
    model = create_model("tiny", num_classes=3).eval()
    result = export_model(
        model,
        targets=["onnx", "tflite"],
        out=tmp_path / "set",
        labels=["cat", "dog", "bird"],
        res=64,
        tflite_precisions=["fp32"],
    )
    assert isinstance(result, ExportResult) and result.passed
    assert [a.name for a in result.artifacts] == ["onnx", "tflite-fp32"]
    saved = json.loads(result.report_json.read_text())
    assert saved == result.report.to_json()
    for artifact, entry in zip(result.artifacts, saved["artifacts"]):
        assert artifact.path.is_file() and artifact.path.name == entry["file"]
        assert artifact.parity["metrics"]["max_rel"] == entry["parity"]["metrics"]["max_rel"]
        assert artifact.report.sha256 == entry["sha256"]
    assert saved["labels"] == ["cat", "dog", "bird"] and saved["weights"]["source"].startswith("in-memory CASViT")
    manifest = json.loads(result.manifest.read_text())
    assert {f["path"] for f in manifest["files"]} >= {"casvit_tiny_64x64.onnx", "casvit_tiny_64x64_fp32.tflite"}
    assert result.artifact("onnx").companions == ()


def test_the_python_api_raises_one_type_per_exit_code(tmp_path, monkeypatch):
    with pytest.raises(ExportError) as bad:
        export_model(None, targets="onnx", out=tmp_path / "x", **TINY, seed=-1)
    assert type(bad.value) is ExportError and bad.value.exit_code == 2
    with pytest.raises(ExportError, match="unknown option not_an_option"):
        export_model(None, targets="onnx", out=tmp_path / "x", not_an_option=1)
    from export import pipeline

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(pipeline, "run", broken)
    with pytest.raises(InternalError) as internal:
        export_model(None, targets="onnx", out=tmp_path / "y", **TINY)
    assert internal.value.exit_code == 4 and isinstance(internal.value.__cause__, RuntimeError)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device", "/o/x.onnx")

    monkeypatch.setattr(pipeline, "run", full)
    with pytest.raises(EnvironmentFailure) as env:
        export_model(None, targets="onnx", out=tmp_path / "z", **TINY)
    assert env.value.exit_code == 3 and "/o/x.onnx" in str(env.value)
    assert GateFailure.exit_code == 1


def test_the_package_names_the_api_and_loads_it_on_first_use():
    code = (
        "import sys, export\n"
        "assert 'torch' not in sys.modules, 'import export loaded torch'\n"
        "from export import ExportError, ExportResult, export_model\n"
        "import export.api, export.errors\n"
        "assert export_model is export.api.export_model and ExportResult is export.api.ExportResult\n"
        "assert ExportError is export.errors.ExportError\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_every_option_has_one_name_one_flag_and_the_api_takes_it():
    names = option_names()
    assert len(names) == len(set(names))
    flags = re.findall(r"^\s+(--[a-z0-9-]+)", cli.build_parser().format_help(), re.M)
    assert len(flags) == len(set(flags))
    assert {"res", "tflite_precisions", "coreml_precision", "calib", "val_dir", "crop_pct"} <= set(names)


def test_help_states_each_default_once_and_make_uses_the_same_defaults():
    help_text = cli.build_parser().format_help()
    for block in re.split(r"\n  (?=--)", help_text):
        assert block.count("(default:") <= 1, block
    assert f"(default: {','.join(targets.DEFAULT_TARGETS)})" in " ".join(help_text.split())
    make_help = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True).stdout
    assert f"TARGET=onnx|tflite|coreml|all [{','.join(targets.DEFAULT_TARGETS)}]" in make_help
    assert "OUT=output folder [out/<variant>_<res>]" in make_help
    assert ExportSpec().out_dir is None  # the CLI and make both leave OUT to the model source


def _images_in_every_mode(folder, size=(40, 30)) -> dict[str, str]:
    """One image per colour mode ImageFolder converts: file name -> stored mode."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), np.uint8), "RGB")
    images = {
        "gray.png": rgb.convert("L"),
        "palette.png": rgb.convert("P"),
        "alpha.png": rgb.convert("RGBA"),
        "cmyk.jpg": rgb.convert("CMYK"),
        "deep.png": Image.fromarray(np.asarray(rgb.convert("L"), np.uint16) * 257),  # 16-bit grayscale
        "plain.png": rgb,
    }
    for name, image in images.items():
        image.save(folder / name)
    return {name: Image.open(folder / name).mode for name in images}


def test_images_in_any_mode_load_as_imagefolder_loads_them(tmp_path):
    from casvit.preprocess import official_default
    from export.calibration import load_calibration

    modes = _images_in_every_mode(tmp_path / "calib")
    assert set(modes.values()) == {"L", "P", "RGBA", "CMYK", "I;16", "RGB"}
    record = official_default(32, 32)
    calib = load_calibration(record, tmp_path / "calib", 10)
    assert calib.rgb.shape == (6, 32, 32, 3)
    assert calib.converted == {"CMYK": 1, "I;16": 1, "L": 1, "P": 1, "RGBA": 1}
    for i, name in enumerate(calib.names):  # each converted exactly as Image.convert("RGB") does
        expected = record.resize_rgb(Image.open(tmp_path / "calib" / name).convert("RGB"))
        np.testing.assert_array_equal(calib.rgb[i], expected)


@pytest.mark.slow
def test_validation_images_in_any_mode_are_measured_and_counted(tmp_path):
    val = tmp_path / "val"
    for label in ("0", "1"):
        _images_in_every_mode(val / label, size=(64, 64))
    out = tmp_path / "out"
    code = cli.main(
        ["--checkpoint", str(DIGITS_CHECKPOINT), "--target", "onnx", "--val-dir", str(val), "--out", str(out)]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["accuracy"]["images_measured"] == 12
    assert report["accuracy"]["converted_to_rgb"] == {"CMYK": 2, "I;16": 2, "L": 2, "P": 2, "RGBA": 2}
    assert "converted to RGB as torchvision's ImageFolder does" in (out / "report.md").read_text()


@pytest.mark.slow
def test_an_export_console_holds_no_library_lines(tmp_path):
    """TensorFlow, absl, oneDNN, CUDA and LiteRT write to the process's descriptors;
    an export of every target keeps all of it off the console."""
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "export",
            "--target",
            "all",
            "--variant",
            "tiny",
            "--res",
            "64",
            "--tflite-precisions",
            "fp32,int8",
            "--out",
            str(tmp_path / "out"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    console = r.stdout + r.stderr
    for noise in (
        "absl",
        "oneDNN",
        "cuda",
        "cpu_feature_guard",
        "TensorFlow Lite XNNPACK",
        "I0000",
        "W0000",
        "Failed to load",
        "has not been tested",
    ):
        assert noise not in console, noise
    for line in r.stderr.splitlines():
        assert re.match(r"\[\s*\d+\.\ds\] ", line), line  # only the tool's own progress lines
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert any("coremltools" in w and "tested with torch" in w for w in report["library_warnings"])
