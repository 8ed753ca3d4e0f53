"""The tools that read an export set (``android_assets``, ``verify_arm``) under hostile
conditions (issue 26): every path read from OUT stays inside OUT, what is copied is
what was checked, OUT's lock is taken on the resolved folder, a folder inside a set
is refused without leaving files in it, and a malformed manifest or report is exit
2 with one line, never a traceback. The sets are built by the real transaction
(``commit_set``) with stand-in model bytes: these tools never parse a model here."""

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from export import android_assets, golden
from export.outset import problems
from export.targets.tflite.metadata import SCHEMA
from export.verify_arm.__main__ import main as verify_arm

from .helpers import commit_set, in_private_mount, output_lock_held

MODEL = "casvit_tiny_64x64_fp32.tflite"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _description(**changes) -> bytes:
    meta = {"schema": SCHEMA, "model_file": MODEL, "labels_file": "labels.txt", **changes}
    return json.dumps(meta).encode()


def _model_set(out: Path, extra: dict[str, bytes] | None = None, **changes) -> Path:
    """An exported TFLite set: the model, its description and labels (and ``extra``), listed in the manifest."""
    files = {MODEL: b"model bytes", MODEL.replace(".tflite", ".json"): _description(**changes), "labels.txt": b"a\nb\n"}
    commit_set(out, {**files, **(extra or {})})
    return out


def _golden_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / golden.FILE_NAME
    rgb = np.zeros((1, 4, 4, 3), np.uint8)
    golden.write(path, ["x"], rgb, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), np.zeros((1, 2), np.float32))
    return path.read_bytes()


def _verify_set(tmp_path: Path, artifacts: list[dict] | None = None) -> Path:
    """A set verify-arm reads, up to the toolchain: golden data, a model, a report entry for it."""
    out = tmp_path / "out"
    commit_set(out, {golden.FILE_NAME: _golden_bytes(tmp_path), MODEL: b"model bytes"})
    entry = {"file": MODEL, "precision": "fp32", "input_convention": "unit"}
    report = json.loads((out / "report.json").read_text())
    (out / "report.json").write_text(json.dumps({**report, "artifacts": [entry] if artifacts is None else artifacts}))
    return out


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def _assets(out: Path, assets: Path, *extra: str) -> int:
    return android_assets.main(["--from", str(out), "--assets", str(assets), *extra])


def test_android_assets_copies_exactly_the_checked_files(tmp_path, capsys):
    out = _model_set(tmp_path / "out")
    assert _assets(out, tmp_path / "assets") == 0
    assert (tmp_path / "assets" / "model.tflite").read_bytes() == b"model bytes"
    assert (tmp_path / "assets" / "labels.txt").read_bytes() == b"a\nb\n"
    assert json.loads((tmp_path / "assets" / "model.json").read_text())["model_file"] == "model.tflite"
    assert capsys.readouterr().out.startswith(f"copied {MODEL} -> ")


@pytest.mark.parametrize("where", ["absolute", "parent", "symlink"])
def test_android_assets_never_copies_a_file_outside_out(tmp_path, capsys, where):
    """Item 4: labels_file pointing outside OUT, while a decoy of the same name inside OUT
    is listed with its sha256 (the check used to run on the decoy, the copy on the other)."""
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours to copy")
    labels_file = {"absolute": str(secret), "parent": "../secret.txt", "symlink": "link.txt"}[where]
    out = _model_set(tmp_path / "out", {"secret.txt": b"decoy\n"}, labels_file=labels_file)
    if where == "symlink":
        os.symlink(secret, out / "link.txt")
        manifest = json.loads((out / "manifest.json").read_text())
        manifest["files"].append({"path": "link.txt", "sha256": _sha256(secret)})
        (out / "manifest.json").write_text(json.dumps(manifest))
    assert _assets(out, tmp_path / "assets") == 2
    line = _one_error_line(capsys)
    expected = "leads outside" if where == "symlink" else "is not a relative path inside the folder"
    assert expected in line and "labels_file" in line
    assert not (tmp_path / "assets").exists()


def test_a_manifest_entry_leaving_out_is_refused_by_both_tools(tmp_path, capsys):
    """Item 4: a manifest entry ``../outside/x.tflite`` is neither verified nor counted."""
    out = _verify_set(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.tflite").write_bytes(b"elsewhere")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"].append({"path": "../outside/x.tflite", "sha256": _sha256(outside / "x.tflite")})
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert verify_arm([str(out), "--cache", str(tmp_path / "no-cache")]) == 2
    assert "files[2].path '../outside/x.tflite' is not a relative path inside the set" in _one_error_line(capsys)
    assert _assets(out, tmp_path / "assets") == 2
    assert "'../outside/x.tflite' is not a relative path inside the set" in _one_error_line(capsys)
    assert not (tmp_path / "no-cache").exists() and not (out / "verify-arm.json").exists()


def test_android_assets_waits_for_no_one_it_refuses_while_an_export_holds_out(tmp_path, capsys):
    """Item 5: android_assets holds OUT's lock while it reads (the export's lock)."""
    out = _model_set(tmp_path / "out")
    with output_lock_held(out) as holder:
        assert _assets(out, tmp_path / "assets") == 2
    assert _one_error_line(capsys) == f"error: {out} is in use by another run (PID {holder.pid}); wait for it to finish"
    assert not (tmp_path / "assets").exists()


@pytest.mark.parametrize("spelling", ["symlink", "dotdot"])
def test_one_lock_per_resolved_folder(tmp_path, capsys, spelling):
    """Item 6: a symlinked or otherwise respelled OUT is the same OUT for every tool."""
    out = _verify_set(tmp_path)
    if spelling == "symlink":
        os.symlink(out, tmp_path / "link")
        other = tmp_path / "link"
    else:
        other = out / ".." / "out"
    for held, used in ((out, other), (other, out)):
        with output_lock_held(held) as holder:
            assert verify_arm([str(used), "--cache", str(tmp_path / "no-cache")]) == 2
            assert f"in use by another run (PID {holder.pid})" in _one_error_line(capsys)
            assert _assets(used, tmp_path / "assets") == 2
            assert f"in use by another run (PID {holder.pid})" in _one_error_line(capsys)
    assert sorted(p.name for p in tmp_path.glob(".*.lock")) == [".out.lock"]


def test_a_rejected_set_is_refused_without_leaving_files_in_out(tmp_path, capsys):
    """Item 6: ``verify_arm OUT/rejected`` left OUT/.rejected.lock and unlisted reports."""
    out = _verify_set(tmp_path)
    commit_set(out, {"a.tflite": b"x"}, rejected=True)
    before = sorted(os.listdir(out))
    assert verify_arm([str(out / "rejected"), "--cache", str(tmp_path / "no-cache")]) == 2
    assert "is a rejected set (its gate failed)" in _one_error_line(capsys)
    assert _assets(out / "rejected", tmp_path / "assets") == 2
    assert "is a rejected set (its gate failed)" in _one_error_line(capsys)
    assert sorted(os.listdir(out)) == before and problems(out) == []


@pytest.mark.parametrize(
    "manifest, expected",
    [
        ([], "not a JSON object (found list)"),
        ({"tool": "casvit-deploy", "files": ["x.tflite"]}, "files[0] is not an object with path and sha256"),
        ({"tool": "casvit-deploy", "files": [{"path": MODEL}]}, "files[0].sha256 is not a sha256 hex digest"),
        ({"tool": "casvit-deploy", "files": "x"}, "no 'files' list"),
        ({"tool": "someone else", "files": []}, "not written by casvit-deploy"),
    ],
)
def test_malformed_manifests_are_exit_2_with_one_line(tmp_path, capsys, manifest, expected):
    """Item 11."""
    out = _verify_set(tmp_path)
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert verify_arm([str(out), "--cache", str(tmp_path / "no-cache")]) == 2
    assert _one_error_line(capsys) == f"error: {out / 'manifest.json'}: {expected}"
    assert _assets(out, tmp_path / "assets") == 2
    assert _one_error_line(capsys) == f"error: {out / 'manifest.json'}: {expected}"


@pytest.mark.parametrize(
    "artifacts, expected",
    [
        ("not a list", "report.json: no 'artifacts' list of objects"),
        (["a string"], "report.json: no 'artifacts' list of objects"),
        ([{"file": MODEL, "input_convention": "unit"}], f"the artifact entry of {MODEL} has precision None"),
        ([{"file": MODEL, "precision": "fp32"}], f"the artifact entry of {MODEL} has input_convention None"),
        ([], f"no artifact entry for {MODEL}"),
    ],
)
def test_malformed_reports_are_exit_2_with_one_line(tmp_path, capsys, artifacts, expected):
    """Item 11: exit 1 is verify-arm's missed gate, never a malformed report."""
    out = _verify_set(tmp_path, artifacts)
    assert verify_arm([str(out), "--cache", str(tmp_path / "no-cache")]) == 2
    assert expected in _one_error_line(capsys)
    assert not (out / "verify-arm.json").exists() and not (tmp_path / "no-cache").exists()


def test_a_report_that_is_not_an_object_is_exit_2(tmp_path, capsys):
    out = _verify_set(tmp_path)
    (out / "report.json").write_text("[]")
    assert verify_arm([str(out), "--cache", str(tmp_path / "no-cache")]) == 2
    assert "report.json: no 'artifacts' list of objects" in _one_error_line(capsys)


def test_android_assets_reads_a_set_on_a_read_only_mount(tmp_path):
    """The lock is taken read-only where its file cannot be written (no PID recorded)."""
    exports = tmp_path / "exports"
    _model_set(exports / "out")
    script = (
        f"mount --bind -o ro '{exports}' '{exports}' && "
        f"'{sys.executable}' -m export.android_assets --from '{exports}/out' --assets '{tmp_path}/assets'"
    )
    done = in_private_mount(script)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert (tmp_path / "assets" / "model.tflite").read_bytes() == b"model bytes"


def test_a_folder_inside_a_set_is_refused_but_a_set_nested_in_out_is_read(tmp_path, capsys):
    out = _verify_set(tmp_path)
    commit_set(out, {"m.mlpackage": b"x"})  # stands for a listed artifact folder
    (out / "m.mlpackage").unlink()
    (out / "m.mlpackage").mkdir()
    assert verify_arm([str(out / "m.mlpackage"), "--cache", str(tmp_path / "no-cache")]) == 2
    assert f"is a part of the export set in {out}" in _one_error_line(capsys)
    nested = _model_set(out / "nested")  # an export into OUT/nested, kept beside the set with --force
    assert _assets(nested, tmp_path / "assets") == 0
    assert (tmp_path / "assets" / "model.tflite").read_bytes() == b"model bytes"
