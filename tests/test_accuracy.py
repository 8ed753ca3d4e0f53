"""Accuracy on the user's labelled images (--val-dir), the accuracy gate and the
calibration guidance, on the digits-trained checkpoint (tests/data/README.md)
with an ImageFolder written here from scikit-learn's held-out digits.

Eager top-1 is computed independently here (the eval model on the same pixels)
and must equal the report's first row; each artifact's numbers come from its own
runtime inside the export run."""

from pathlib import Path

import numpy as np
import pytest

from benchmarks.digits import digits_split, write_image_folder
from casvit import model_from_checkpoint
from export import accuracy, cli, render
from export.inputs import to_convention
from export.pipeline import reference_logits, run
from export.spec import Artifact, ExportSpec

from .helpers import make_spec

CHECKPOINT = Path(__file__).parent / "data" / "casvit_tiny_digits.pth"
VAL_COUNT, CALIB_COUNT = 150, 30  # of the 360 held-out digits


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("digits_val")
    split = digits_split(64)
    write_image_folder(folder, split["test_rgb"], split["test_y"])
    return folder


def _spec(out: Path, folder: Path, targets=("onnx", "tflite", "coreml"), **options) -> ExportSpec:
    defaults = {
        "tflite_precisions": ("fp32", "fp16", "int8-dynamic", "int8"),
        "calib": None,
        "calib_count": 100,
        "coreml_precision": "fp16",
        "coreml_compress": "linear8",
        "coreml_target": "iOS16",
        "coreml_input": "image",
        "val_dir": folder,
    }
    return make_spec(
        targets=targets,
        variant="tiny",
        res=(64, 64),
        checkpoint=CHECKPOINT,
        labels=folder / "labels.txt",
        out_dir=out,
        **defaults,
        **options,
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory, digits_folder):
    out = tmp_path_factory.mktemp("digits_accuracy")
    return out, run(_spec(out, digits_folder, val_count=VAL_COUNT, calib_from_val=CALIB_COUNT)).to_json()


@pytest.mark.slow
def test_every_artifact_reports_top1_within_its_gate(exported):
    out, report = exported
    assert report["passed"]
    names = [a["name"] for a in report["artifacts"]]
    assert names == [
        "onnx",
        "tflite-fp32",
        "tflite-fp16",
        "tflite-int8-dynamic",
        "tflite-int8",
        "coreml-fp16",
        "coreml-fp16-linear8",
    ]
    for a in report["artifacts"]:
        d = a["accuracy"]["details"]
        assert a["accuracy"]["passed"] and d["images"] == VAL_COUNT, a["name"]
        assert d["top1_drop"] <= d["max_top1_drop"] or d["images_lost"] <= 1
        assert 0 <= d["top1"] <= d["top5"] <= 100 and d["agreement"] >= 95, a["name"]
        assert set(d["per_class"]) == {str(c) for c in range(10)}
    section = (out / "report.md").read_text().split("## Accuracy on", 1)[1]
    rows = [line.split(" | ")[0] for line in section.splitlines() if line.startswith("| ")]
    assert rows[1:3] == ["| eager PyTorch", "| casvit_tiny_64x64.onnx"]  # after the header: eager first


@pytest.mark.slow
def test_eager_row_matches_an_independent_measurement(exported, digits_folder):
    _, report = exported
    acc = report["accuracy"]
    files = acc["measured_files"]
    assert len(files) == VAL_COUNT and acc["images_found"] == 360
    from PIL import Image

    rgb = np.stack([np.asarray(Image.open(digits_folder / f).convert("RGB")) for f in files])
    labels = np.array([int(Path(f).parent.name) for f in files])
    logits = reference_logits(model_from_checkpoint(CHECKPOINT), to_convention(rgb, "normalized"))
    assert acc["eager"]["correct"] == int(np.sum(logits.argmax(1) == labels))
    assert acc["eager"]["top1"] >= 97  # the checkpoint's held-out top-1 is 99.2% (tests/data/README.md)
    # the per-class counts are stratified: each class keeps its share of the 360 images within one image
    found = {c: len(list((digits_folder / c).glob("*.png"))) for c in acc["classes"]}
    for c, n in acc["class_counts"].items():
        assert abs(n - found[c] * VAL_COUNT / 360) <= 1.5 + found[c] * CALIB_COUNT / 360, c


@pytest.mark.slow
def test_calibration_images_never_count_in_the_accuracy(exported):
    _, report = exported
    acc = report["accuracy"]
    assert acc["calibration_images"] == CALIB_COUNT
    assert not set(acc["calibration_files"]) & set(acc["measured_files"])
    int8 = next(a for a in report["artifacts"] if a["name"] == "tflite-int8")
    calib = int8["details"]["calibration"]
    assert calib["count"] == CALIB_COUNT and calib["images"] == acc["calibration_files"]
    assert "--calib-from-val" in calib["source"]
    assert not report["warnings"]  # calibrated on the user's images: no warning


@pytest.mark.slow
def test_bad_int8_calibration_fails_the_accuracy_gate(tmp_path, digits_folder, capsys):
    grey = tmp_path / "grey"
    grey.mkdir()
    from PIL import Image

    Image.fromarray(np.full((64, 64, 3), 128, np.uint8), "RGB").save(grey / "flat_grey.png")
    out = tmp_path / "out"
    code = cli.main(
        [
            "--target",
            "tflite",
            "--tflite-precisions",
            "int8",
            "--variant",
            "tiny",
            "--res",
            "64",
            "--checkpoint",
            str(CHECKPOINT),
            "--labels",
            str(digits_folder / "labels.txt"),
            "--val-dir",
            str(digits_folder),
            "--val-count",
            "60",
            "--calib",
            str(grey),
            "--out",
            str(out),
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "accuracy: top-1" in err.splitlines()[-1]
    import json

    entry = json.loads((out / "rejected" / "report.json").read_text())["artifacts"][0]
    assert entry["status"] == "rejected" and not entry["accuracy"]["passed"]
    assert entry["accuracy"]["details"]["top1_drop"] > 1.0
    assert (out / "rejected" / entry["file"]).is_file() and not (out / entry["file"]).exists()


def test_class_folder_not_among_labels_is_a_one_line_error(tmp_path, digits_folder, capsys):
    folder = tmp_path / "val"
    (folder / "7").mkdir(parents=True)
    (folder / "seven").mkdir()
    image = next((digits_folder / "7").glob("*.png")).read_bytes()
    for name in ("7", "seven"):
        (folder / name / "a.png").write_bytes(image)
    code = cli.main(
        [
            "--target",
            "onnx",
            "--variant",
            "tiny",
            "--res",
            "64",
            "--checkpoint",
            str(CHECKPOINT),
            "--labels",
            str(digits_folder / "labels.txt"),
            "--val-dir",
            str(folder),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("error: validation folder") and "'seven' not among the model's 10 labels" in err[-1]
    assert not any("converting" in line for line in err)  # refused before any conversion
    assert not list((tmp_path / "out").glob("*.onnx"))


@pytest.mark.parametrize(
    "args,message",
    [
        (["--val-count", "10"], "--val-count needs --val-dir"),
        (["--val-dir", "x", "--calib", "y", "--calib-from-val", "5"], "--calib and --calib-from-val"),
        (["--val-dir", "x", "--max-top1-drop", "120"], "--max-top1-drop '120': expected a number from 0 to 100"),
        (["--val-dir", "x", "--calib-from-val", "5", "--tflite-precisions", "fp32"], "--calib-from-val is only used"),
    ],
)
def test_option_mistakes_are_clear_errors(args, message, tmp_path, capsys):
    base = ["--target", "tflite", "--variant", "tiny", "--res", "64", "--out", str(tmp_path / "out")]
    assert cli.main(base + args) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: ") and message in line


class _Ctx:
    """The pieces of the run's shared state that the accuracy check reads."""

    def __init__(self, eager_logits, targets, max_drop=None):
        from casvit.preprocess import official_default
        from export.labelled_images import ValidationSet

        self.spec = make_spec(max_top1_drop=max_drop)
        self.preprocessing = official_default(4, 4)
        rgb = np.zeros((len(targets), 4, 4, 3), np.uint8)
        self.validation = ValidationSet(
            Path("."), ["a", "b"], [0, 1], ["f"] * len(targets), targets, rgb, eager_logits=eager_logits
        )


def _flip(logits: np.ndarray, count: int) -> np.ndarray:
    out = logits.copy()
    out[:count] = out[:count, ::-1]
    return out


class _Replay:
    """A runner returning given logits in order, chunk by chunk, as a runtime would."""

    def __init__(self, logits: np.ndarray):
        self.logits, self.done = logits, 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = self.logits[self.done : self.done + len(x)]
        self.done += len(x)
        return out


@pytest.mark.parametrize(
    "precision,flipped,max_drop,passed",
    [
        ("fp32", 1, None, True),  # one image: always within the gate
        ("fp32", 2, None, False),  # fp32 allows 0 points beyond one image
        ("fp16", 2, None, False),  # 2 of 200 = 1 point > 0.1
        ("int8", 2, None, True),  # 1 point <= 1.0
        ("int8", 3, None, False),  # 1.5 points > 1.0
        ("palettize6", 3, None, False),
        ("int8", 3, 2.0, True),  # --max-top1-drop 2 overrides the default
        ("fp16", 2, 0.0, False),
    ],
)
def test_gate_thresholds_per_precision(precision, flipped, max_drop, passed):
    targets = np.repeat([0, 1], 100)
    eager = np.eye(2, dtype=np.float32)[targets] + 0.1  # every image right
    result = accuracy.check(
        Artifact("a", "onnx", precision, Path("a"), "normalized"),
        _Replay(_flip(eager, flipped)),
        _Ctx(eager, targets, max_drop),
    )
    assert result.passed is passed, result.summary
    assert result.details["images_lost"] == flipped
    assert result.details["top1"] == pytest.approx(100 * (200 - flipped) / 200)
    assert result.details["agreement"] == pytest.approx(100 * (200 - flipped) / 200)


def test_progress_lines_while_measuring(monkeypatch, capsys):
    monkeypatch.setattr(accuracy, "PROGRESS_SECONDS", 0.0)
    monkeypatch.setattr(accuracy, "CHUNK_SECONDS", 0.0)  # one image per runner call
    rgb = np.zeros((5, 4, 4, 3), np.uint8)
    logits, _ = accuracy.predict(lambda x: np.zeros((len(x), 3), np.float32), rgb, "normalized", "m")
    assert logits.shape == (5, 3)
    lines = [line for line in capsys.readouterr().err.splitlines() if "m: accuracy" in line]
    assert [line.split("accuracy ")[1].split(" ")[0] for line in lines] == ["2/5", "3/5", "4/5"]


@pytest.mark.parametrize(
    "targets,options,weights,warns",
    [
        (("tflite",), {"tflite_precisions": ("fp16", "int8")}, True, True),
        (("onnx", "tflite"), {}, True, True),  # default precisions include int8
        (("tflite",), {"tflite_precisions": ("int8",), "calib": "photos"}, True, False),
        (("tflite",), {"tflite_precisions": ("int8",), "calib_from_val": 20}, True, False),
        (("tflite",), {"tflite_precisions": ("int8-dynamic",)}, True, False),  # no calibration involved
        (("coreml",), {}, True, False),
        (("tflite",), {"tflite_precisions": ("int8",)}, False, False),  # random weights: nothing to protect
    ],
)
def test_int8_of_a_user_checkpoint_without_calibration_images_warns(targets, options, weights, warns):
    warning = accuracy.calibration_warning(make_spec(targets=targets, **options), {"for_deployment": weights})
    assert (warning is not None) is warns
    if warns:
        assert "--calib" in warning and "--calib-from-val" in warning
        report = {"warnings": [warning], "artifacts": []}
        assert render.accuracy_markdown(report)[0].startswith("> **WARNING**: int8 of a user checkpoint")
        assert render.accuracy_console_lines(report) == [f"WARNING: {warning}"]
