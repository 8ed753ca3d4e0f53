"""``make val`` and ``make bench OUT=folder`` on a set already exported (issue 22,
part 4): the digits checkpoint exported by the example of docs/accuracy.md, then
validated and benchmarked without re-exporting by the commands of docs/accuracy.md and
docs/benchmarks.md. The numbers are checked against independent
references: the export's own accuracy check on the same images, and every artifact
run here, in this process, through its target's ``load()`` on the same pixels."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.digits import digits_split, write_image_folder
from casvit import create_model, model_from_checkpoint
from export import targets
from export.accuracy import max_drop_for
from export.calibration import read_rgb
from export.evalpool import default_workers
from export.evaluate import main
from export.exported import read_set
from export.inputs import to_convention
from export.manifest import MANIFEST, REPORT_JSON, REPORT_MD
from export.outset import problems

from .helpers import DIGITS_CHECKPOINT, ROOT, output_lock_held

VAL_DOC = ROOT / "docs" / "accuracy.md", "## Validating a set already exported"
BENCH_DOC = ROOT / "docs" / "benchmarks.md", "## An exported set"
MAKE = ["make", "-o", ".venv/.installed"]  # the venv is there: never rebuild it from a test


def _documented(doc: tuple[Path, str]) -> list[str]:
    """The commands of the first bash block under a heading, comments dropped."""
    path, heading = doc
    block = path.read_text().split(heading, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def _example_lines() -> list[str]:
    """Write the digits, export them, make val (docs/accuracy.md), then the make bench
    OUT= line of docs/benchmarks.md on that set (the page's own block exports it alike)."""
    return [*_documented(VAL_DOC), *(line for line in _documented(BENCH_DOC) if line.startswith("make bench"))]


def _run(line: str, tmp: Path) -> subprocess.CompletedProcess:
    """One documented command, with its ``out/`` folders in ``tmp``."""
    command = line.replace("out/", f"{tmp}/")
    command = " ".join(MAKE) + command[len("make") :] if command.startswith("make ") else command
    return subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=1800)


def _make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*MAKE, *args], cwd=ROOT, capture_output=True, text=True, timeout=1800)


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> dict:
    """The documented example run once: {"tmp", "out", "val", "results": one per line}."""
    tmp = tmp_path_factory.mktemp("val_example")
    results = [_run(line, tmp) for line in _example_lines()]
    return {"tmp": tmp, "out": tmp / "digits-set", "val": tmp / "digits-val", "results": results}


def _report(out: Path) -> dict:
    return json.loads((out / REPORT_JSON).read_text())


def _result_lines(stdout: str) -> list[str]:
    """The lines of the table printed after a validation (progress lines start with '[')."""
    return [ln for ln in stdout.splitlines() if "images/s" in ln and not ln.startswith("[")]


def _pixels(files: list[Path], out: Path) -> np.ndarray:
    record = read_set(out).record
    return np.stack([read_rgb(f, record)[0] for f in files])


def _in_process_logits(out: Path, pixels: np.ndarray) -> dict[str, np.ndarray]:
    """Every artifact of the set run here through its target's load(), and eager PyTorch."""
    exported = read_set(out)
    r = exported.record
    logits = {
        a.name: targets.get(a.format).load(a)(to_convention(pixels, a.input_convention, r.mean, r.std))
        for a in exported.artifacts
    }
    with torch.no_grad():
        model = model_from_checkpoint(DIGITS_CHECKPOINT).eval()
        logits["eager"] = model(torch.from_numpy(to_convention(pixels, "normalized", r.mean, r.std))).numpy()
    return logits


@pytest.mark.slow
def test_the_documented_example_runs(example):
    for line, result in zip(_example_lines(), example["results"]):
        assert result.returncode == 0, f"{line}\n{result.stderr[-2000:]}"
    out = example["out"]
    assert problems(out) == []  # report.md/json rewritten, bench files added: still one consistent set
    report = _report(out)
    assert report["run_id"] == json.loads((out / MANIFEST).read_text())["run_id"]
    assert report["validations"][0]["folder"] == str(example["val"].resolve())
    md = (out / REPORT_MD).read_text()
    assert f"## Validation on `{example['val'].resolve()}`" in md and "| images/s |" in md


@pytest.mark.slow
def test_val_gives_the_exports_own_accuracy_numbers(example):
    """Same folder, same calibration images left out, same runtimes: the same scores
    the export's accuracy check measured in its own run."""
    report = _report(example["out"])
    acc, v = report["accuracy"], report["validations"][0]
    assert v["images_measured"] == acc["images_measured"] == 310 and v["calibration_images"] == 50
    assert v["calibration_files"] == sorted(acc["calibration_files"])
    keys = ("images", "correct", "top1", "top5", "per_class")
    assert {k: v["eager"][k] for k in keys} == {k: acc["eager"][k] for k in keys}
    exported = {a["name"]: a["accuracy"]["details"] for a in report["artifacts"]}
    assert [a["name"] for a in v["artifacts"]] == list(exported)
    for a in v["artifacts"]:
        assert {k: a[k] for k in (*keys, "agreement")} == {k: exported[a["name"]][k] for k in (*keys, "agreement")}
        assert a["passed"] and a["images_per_second"] > 0
    console = example["results"][2].stdout
    assert all(f"{a['file']}" in console for a in v["artifacts"])
    assert len(_result_lines(console)) == 6  # eager and five artifacts, once each after the progress lines


@pytest.mark.slow
def test_make_bench_times_every_artifact_of_the_set(example):
    out = example["out"]
    bench = json.loads((out / "bench.json").read_text())
    lat = bench["latency"]
    assert lat["set"] == str(out.resolve()) and lat["run_id"] == _report(out)["run_id"]
    names = [a["name"] for a in _report(out)["artifacts"]]
    assert [r["format"] for r in lat["rows"]] == names  # one thread count: one row each
    for row in lat["rows"]:
        assert row["threads"] == 1 and row["samples"] == 20 and row["median_ms"] > 0, row
        assert row["runtime"] == targets.get(row["family"]).bench.name
    md = (out / "bench.md").read_text()
    assert md in example["results"][3].stdout  # the table printed is the table written
    assert "| variant | format | precision | threads | median ms |" in md and "| tiny | onnx | fp32 | 1 |" in md


@pytest.mark.slow
@pytest.mark.skipif(default_workers() < 2, reason="fewer than two cores for this process")
def test_val_on_1000_images_uses_both_cores(example, tmp_path):
    split = digits_split(64)
    write_image_folder(tmp_path / "train", split["train_rgb"], split["train_y"])
    result = _make("val", f"OUT={example['out']}", f"VAL={tmp_path / 'train'}", "VAL_COUNT=1000")
    assert result.returncode == 0, result.stderr[-2000:]
    v = _report(example["out"])["validations"][-1]
    assert v["images_measured"] == 1000 and v["workers"] == default_workers()
    for row in [v["eager"], *v["artifacts"]]:
        assert len(set(row["worker_pids"])) == v["workers"], row.get("name")  # every worker ran chunks
        assert row["images_per_second"] > 0
    lines = _result_lines(result.stdout)
    assert len(lines) == 1 + len(v["artifacts"])
    assert "decoded 1000 images in" in result.stdout and not result.stderr  # progress and table: stdout
    # the same 1,000 images run here, in this process: the same top-1 for every runtime
    files = [tmp_path / "train" / f for f in v["measured_files"]]
    truth = np.asarray([int(Path(f).parts[0]) for f in v["measured_files"]])
    logits = _in_process_logits(example["out"], _pixels(files, example["out"]))
    assert v["eager"]["correct"] == int((logits["eager"].argmax(1) == truth).sum())
    for a in v["artifacts"]:
        assert a["correct"] == int((logits[a["name"]].argmax(1) == truth).sum()), a["name"]


@pytest.mark.slow
def test_the_gate_fails_exactly_the_artifacts_that_lose_images(example, tmp_path, capsys):
    """Noisy digits filed under eager's own prediction (eager scores 100 %): an artifact
    fails when it loses more than one image and more than its precision's budget;
    which ones do is computed here, in this process, from their own runtimes."""
    out = example["out"]
    rng = np.random.default_rng(0)
    rgb = digits_split(64)["test_rgb"][:300].astype(np.float32)
    noisy = np.clip(rgb + rng.normal(0.0, 80.0, rgb.shape), 0, 255).astype(np.uint8)
    staging = tmp_path / "staging"
    write_image_folder(staging, noisy, np.zeros(len(noisy), np.int64))
    files = sorted((staging / "0").iterdir())
    pixels = _pixels(files, out)
    logits = _in_process_logits(out, pixels)
    predicted = logits["eager"].argmax(1)
    for f, label in zip(files, predicted):
        (tmp_path / "noisy" / str(label)).mkdir(parents=True, exist_ok=True)
        shutil.move(f, tmp_path / "noisy" / str(label) / f.name)
    expected_failures = set()
    for a in read_set(out).artifacts:
        lost = int((logits[a.name].argmax(1) != predicted).sum())
        if lost > 1 and 100.0 * lost / len(files) > max_drop_for(a.precision, None) + 1e-9:
            expected_failures.add(a.name)
    assert expected_failures, "the noisy set must make at least one artifact fail, or this test shows nothing"
    assert "onnx" not in expected_failures and "tflite-fp32" not in expected_failures

    code = main([str(out), "--val-dir", str(tmp_path / "noisy")])
    err = capsys.readouterr().err
    assert code == 1 and err.strip().splitlines()[-1].startswith("error: gate failed for ")
    v = _report(out)["validations"][-1]
    assert v["eager"]["top1"] == 100.0 and not v["passed"]
    assert {a["name"] for a in v["artifacts"] if a["passed"] is False} == expected_failures
    assert "- result: **FAILED**" in (out / REPORT_MD).read_text()
    assert problems(out) == []


# ---- fast: a set exported from an in-memory model (ONNX only), bad input


@pytest.fixture(scope="module")
def memory_set(tmp_path_factory) -> dict:
    """A random tiny CAS-ViT with ten classes exported from memory (ONNX at 64x64), its
    weights saved as a checkpoint, and the held-out digits as an ImageFolder."""
    from export.api import export_model

    tmp = tmp_path_factory.mktemp("val_memory")
    torch.manual_seed(0)
    model = create_model("tiny", num_classes=10).eval()
    torch.save({"model": model.state_dict()}, tmp / "same_weights.pth")
    export_model(model, targets="onnx", out=tmp / "set", res=64, labels=[str(d) for d in range(10)])
    split = digits_split(64)
    write_image_folder(tmp / "val", split["test_rgb"][:60], split["test_y"][:60])
    return {"out": tmp / "set", "val": tmp / "val", "weights": tmp / "same_weights.pth"}


def _validate(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_set_from_an_in_memory_model_has_no_eager_row_unless_its_weights_are_given(memory_set, capsys):
    out, val = memory_set["out"], memory_set["val"]
    code, stdout, _ = _validate(capsys, out, "--val-dir", val, "--workers", "1")
    v = _report(out)["validations"][-1]
    assert code == 0 and v["eager"] is None and "in-memory model" in v["eager_note"]
    assert [a["passed"] for a in v["artifacts"]] == [None] and "agreement" not in v["artifacts"][0]
    assert "not gated" in stdout and "in-memory model" in stdout

    code, stdout, _ = _validate(capsys, out, "--val-dir", val, "--checkpoint", memory_set["weights"])
    v = _report(out)["validations"][-1]
    assert code == 0 and v["eager"]["images"] == 60 and "reproduces the set's golden logits" in v["eager_note"]
    assert v["artifacts"][0]["passed"] is True and v["artifacts"][0]["agreement"] == 100.0
    assert len(_report(out)["validations"]) == 2 and problems(out) == []

    before = (out / REPORT_JSON).read_bytes()
    code, _, err = _validate(capsys, out, "--val-dir", val, "--checkpoint", DIGITS_CHECKPOINT)
    assert code == 2 and "does not reproduce the set's golden logits" in err and len(err.strip().splitlines()) == 1
    assert (out / REPORT_JSON).read_bytes() == before


def test_bad_input_is_one_line_and_exit_2_and_leaves_the_report_alone(memory_set, tmp_path, capsys):
    out, val = memory_set["out"], memory_set["val"]
    wrong_class = tmp_path / "wrong"
    shutil.copytree(val, wrong_class)
    (wrong_class / "0").rename(wrong_class / "zero")
    altered = tmp_path / "altered"
    shutil.copytree(out, altered)
    onnx_file = next(altered.glob("*.onnx"))
    onnx_file.write_bytes(onnx_file.read_bytes() + b"\0")
    (tmp_path / "empty").mkdir()
    before = (out / REPORT_JSON).read_bytes()
    cases = [
        ([tmp_path / "missing", "--val-dir", val], "no such folder"),
        ([tmp_path / "empty", "--val-dir", val], "holds no exported set"),
        ([out], "--val-dir is required"),
        ([out, "--val-dir", wrong_class], "class folder(s) 'zero' not among the model's 10 labels"),
        ([altered, "--val-dir", val], "sha256 differs from the manifest"),
        ([out, "--val-dir", val, "--workers", "0"], "--workers 0: expected at least 1"),
        ([out, "--val-dir", val, "--val-count", "0"], "--val-count '0': expected at least 1"),
    ]
    for args, message in cases:
        code, stdout, err = _validate(capsys, *args)
        assert code == 2 and err.startswith("error: ") and message in err, (args, err)
        assert len(err.strip().splitlines()) == 1 and stdout == ""
    with output_lock_held(out):
        code, _, err = _validate(capsys, out, "--val-dir", val)
    assert code == 2 and "is in use by another run" in err
    assert (out / REPORT_JSON).read_bytes() == before


def test_make_help_lists_val_and_bench_of_a_set():
    text = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "make val VAL=images [OUT=out/xs_224] [VAL_COUNT=N]" in text
    assert "make bench OUT=folder: latency of the artifacts already exported in OUT" in text
    assert any(line.split()[:2] == ["make", "val"] for line in text.splitlines())
