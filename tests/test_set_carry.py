"""Exports of different targets coexist in one OUT (export.carry): a run replaces only
the artifacts of the targets it produces, carries the others of a set with the same
identity (files, manifest records, report entries), refuses a set of another identity
unless --replace-set, and OUT stays one consistent set after any failure."""

import json
import subprocess

import pytest

from export import targets
from export.cli import main
from export.manifest import set_problems
from export.outset import problems
from export.report import ArtifactReport

from .helpers import ROOT
from .test_outset import _cli, _converter_started, _error_lines, _snapshot

TINY = ["--variant", "tiny", "--res", "64"]
TOY = "tests.toy_target"


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(targets.REGISTRY, "toy", TOY)


def _export(capsys, out, *args) -> tuple[int, str, str]:
    code = main([*TINY, "--out", str(out), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _report(out) -> dict:
    return json.loads((out / "report.json").read_text())


def _entries(out) -> dict[str, dict]:
    return {a["name"]: a for a in _report(out)["artifacts"]}


def _changes(stdout: str) -> dict[str, str]:
    """The kept/replaced/removed lines of a run's console, without their time stamps."""
    lines = [line.split("] ", 1)[1] for line in stdout.splitlines() if line.startswith("[")]
    return dict(line.split(": ", 1) for line in lines if line.split(": ", 1)[0] in ("kept", "replaced", "removed"))


@pytest.mark.slow
def test_onnx_then_coreml_keeps_both_and_a_rerun_replaces_only_its_target(tmp_path, capsys):
    out = tmp_path / "out"
    assert _export(capsys, out, "--target", "onnx")[0] == 0
    first = _report(out)
    onnx_first = _entries(out)["onnx"]

    code, stdout, _ = _export(capsys, out, "--target", "coreml")
    assert code == 0
    assert _changes(stdout) == {"kept": "onnx", "replaced": "none", "removed": "none"}
    entries = _entries(out)
    assert set(entries) == {"onnx", "coreml-fp16"}
    assert (out / onnx_first["file"]).is_file() and (out / entries["coreml-fp16"]["file"]).is_dir()
    assert problems(out) == [] and set_problems(out, rejected=False) == []
    kept = entries["onnx"]
    assert kept["status"] == "kept" and kept["carried_from"] == first["run_id"]
    assert {k: v for k, v in kept.items() if k not in ("status", "carried_from")} == {
        k: v for k, v in onnx_first.items() if k not in ("status", "carried_from")
    }  # its sha256, files and verification evidence (audit, parity) carried as they were
    markdown = (out / "report.md").read_text()
    assert onnx_first["file"] in markdown and entries["coreml-fp16"]["file"] in markdown
    coreml, second_run = entries["coreml-fp16"], _report(out)["run_id"]
    assert ArtifactReport.from_json(coreml).to_json() == coreml

    coreml_files = _snapshot(out / coreml["file"])
    code, stdout, _ = _export(capsys, out, "--target", "onnx")
    assert code == 0
    assert _changes(stdout) == {"kept": "coreml-fp16", "replaced": "onnx", "removed": "none"}
    entries = _entries(out)
    assert entries["onnx"]["status"] == "promoted" and entries["coreml-fp16"]["status"] == "kept"
    assert entries["coreml-fp16"]["carried_from"] == second_run  # the run that verified it
    assert _snapshot(out / coreml["file"]) == coreml_files
    assert problems(out) == [] and set_problems(out, rejected=False) == []


def test_another_seed_is_refused_and_replace_set_replaces_the_whole_set(toy, tmp_path, capsys):
    out = tmp_path / "out"
    assert _export(capsys, out, "--target", "onnx")[0] == 0
    assert _export(capsys, out, "--target", "toy")[0] == 0
    before = _snapshot(out)

    code, stdout, stderr = _export(capsys, out, "--target", "toy", "--seed", "1")
    assert code == 2
    (line,) = _error_lines(stderr)
    assert "differs in weights (random, seed 0 -> random, seed 1)" in line and "--replace-set" in line
    assert "converting" not in stdout  # refused before any conversion
    assert _snapshot(out) == before

    code, stdout, _ = _export(capsys, out, "--target", "toy", "--seed", "1", "--replace-set")
    assert code == 0
    assert _changes(stdout) == {"kept": "none", "replaced": "toy-fp32", "removed": "onnx"}
    assert set(_entries(out)) == {"toy-fp32"} and not list(out.glob("*.onnx"))
    assert _report(out)["set_identity"]["weights"] == "random, seed 1"
    assert problems(out) == []


def test_other_labels_are_refused(toy, tmp_path, capsys):
    out = tmp_path / "out"
    assert _export(capsys, out, "--target", "toy", "--num-classes", "3")[0] == 0
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\nbird\n")
    code, _, stderr = _export(capsys, out, "--target", "toy", "--labels", str(labels))
    assert code == 2 and "differs in labels" in _error_lines(stderr)[0]


def test_make_passes_replace_set():
    dry = subprocess.run(
        ["make", "-n", "-o", ".venv/.installed", "export", "REPLACE=1"], cwd=ROOT, capture_output=True, text=True
    )
    assert dry.returncode == 0 and "--replace-set" in dry.stdout


def test_a_tampered_carried_artifact_is_refused(toy, tmp_path, capsys):
    out = tmp_path / "out"
    assert _export(capsys, out, "--target", "onnx")[0] == 0
    onnx_file = out / _entries(out)["onnx"]["file"]
    onnx_file.write_bytes(onnx_file.read_bytes() + b"\0")
    before = _snapshot(out)
    code, stdout, stderr = _export(capsys, out, "--target", "toy")
    assert code == 2
    assert _error_lines(stderr) == [
        f"error: {onnx_file} changed since its set was written (sha256 differs from the manifest); "
        "re-export its target, or --replace-set to replace the whole set"
    ]
    assert "converting" not in stdout and _snapshot(out) == before


@pytest.mark.slow
def test_a_kill_while_the_second_target_converts_leaves_the_first_set(tmp_path, capsys):
    out = tmp_path / "out"
    assert _export(capsys, out, "--target", "onnx")[0] == 0
    before = _snapshot(out)
    proc = _cli("--target", "coreml", *TINY, "--out", str(out))
    child = _converter_started(proc, out, "coremltools")
    proc.kill()  # SIGKILL: no clean-up code runs
    proc.communicate()
    child.wait(timeout=10)
    assert _snapshot(out) == before
    assert problems(out) == [f"leftover transaction folder {out.parent}/.out.txn-{proc.pid}"]
    code, stdout, _ = _export(capsys, out, "--target", "coreml")
    assert code == 0 and _changes(stdout)["kept"] == "onnx"
    assert problems(out) == [] and set(_entries(out)) == {"onnx", "coreml-fp16"}
