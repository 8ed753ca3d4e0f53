"""Smaller hostile inputs (issue 26, item 12): a truncated calibration image fails
before any conversion, labels split on ``\\n`` only, names with control characters
are shown escaped on one line, a zip-bomb checkpoint is refused before it inflates,
and the console keeps progress on stdout, warnings and the error line on stderr."""

import io
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from casvit import CheckpointError
from casvit.checkpoint import MAX_INFLATION, read_checkpoint
from export import pipeline, progress
from export.cli import main
from export.errors import shown
from export.labels import read_labels_file

TINY = ["--variant", "tiny", "--res", "64"]


@pytest.fixture
def no_model(monkeypatch):
    """Building the model means the bad input was found too late."""

    def too_late(spec):
        raise AssertionError("the model was built before the bad input was found")

    monkeypatch.setattr(pipeline, "build_model", too_late)


def _one_error_line(capsys) -> tuple[str, str]:
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0], out


def test_a_truncated_calibration_image_fails_before_any_conversion(tmp_path, capsys, no_model):
    calib = tmp_path / "calib"
    calib.mkdir()
    Image.fromarray(np.full((40, 30, 3), 90, np.uint8)).save(calib / "a.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 200, 3), np.uint8)).save(calib / "b.jpg")
    data = (calib / "b.jpg").read_bytes()
    (calib / "b.jpg").write_bytes(data[: len(data) // 2])
    assert main(["--target", "tflite", *TINY, "--calib", str(calib), "--out", str(tmp_path / "o")]) == 2
    line, out = _one_error_line(capsys)
    assert line.startswith(f"error: calibration image {calib / 'b.jpg'} cannot be read: image file is truncated")
    assert "converting" not in out and not (tmp_path / "o").exists()


def test_labels_split_on_newlines_only(tmp_path):
    """Form feed, NEL and U+2028 are characters of a name (Python's splitlines splits on them)."""
    names = ["page\x0cbreak", "next\x85line", "para\u2028sep", "plain"]
    path = tmp_path / "labels.txt"
    path.write_bytes(("\r\n".join(names) + "\r\n\n").encode())
    assert list(read_labels_file(path)) == names


def test_names_with_control_characters_are_shown_escaped_on_one_line(tmp_path, capsys, no_model):
    checkpoint = tmp_path / "two\nlines\x1b[31m.pth"
    assert main(["--target", "onnx", *TINY, "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o")]) == 2
    line, _ = _one_error_line(capsys)
    assert line == f"error: checkpoint not found: {tmp_path}/two\\nlines\\x1b[31m.pth"
    out = tmp_path / "o"
    out.mkdir()
    (out / "mine\n.txt").write_text("x")
    assert main(["--target", "onnx", *TINY, "--out", str(out)]) == 2
    line, _ = _one_error_line(capsys)
    assert "holds files this tool did not write (mine\\n.txt)" in line
    progress.log("stage of a\nname")
    assert capsys.readouterr().out.endswith("] stage of a\\nname\n")
    assert shown("é, 名前 and spaces stay") == "é, 名前 and spaces stay"


def _bomb(path, floats: int) -> int:
    """A checkpoint as torch.save writes it, its records then deflated: a small file
    that inflates to ``floats`` float32 zeros. Returns the inflated bytes."""
    buffer = io.BytesIO()
    torch.save({"model": {"w": torch.zeros(floats)}}, buffer)
    plain = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bomb:
        for info in plain.infolist():
            bomb.writestr(info.filename, plain.read(info.filename))
    return sum(info.file_size for info in plain.infolist())


def test_a_zip_bomb_checkpoint_is_refused_before_it_inflates(tmp_path, monkeypatch):
    path = tmp_path / "bomb.pth"
    inflated = _bomb(path, 2**24)
    assert inflated > MAX_INFLATION * path.stat().st_size
    assert torch.load(path, weights_only=True)["model"]["w"].numel() == 2**24  # torch would inflate it

    def never(*args, **kwargs):
        raise AssertionError("torch.load was called: the records were inflated")

    monkeypatch.setattr(torch, "load", never)
    with pytest.raises(CheckpointError, match=r"refused: its records inflate to 64 MiB from a 0\.\d MiB file"):
        read_checkpoint(path)


def test_a_checkpoint_recompressed_a_little_still_loads(tmp_path):
    """Float weights deflate by little: a recompressed real checkpoint is not a bomb."""
    path = tmp_path / "deflated.pth"
    buffer = io.BytesIO()
    torch.save({"model": {"w": torch.randn(4096, generator=torch.Generator().manual_seed(0))}}, buffer)
    plain = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as deflated:
        for info in plain.infolist():
            deflated.writestr(info.filename, plain.read(info.filename))
    assert read_checkpoint(path)["model"]["w"].shape == (4096,)


@pytest.mark.slow
def test_stderr_carries_only_warnings_and_the_error_line(tmp_path, capsys):
    """A real run: progress on stdout, only WARNING lines on stderr; a failing run adds its error line."""
    assert main(["--target", "onnx", *TINY, "--out", str(tmp_path / "o")]) == 0
    out, err = capsys.readouterr()
    assert err.splitlines() and all("] WARNING: " in line for line in err.splitlines()), err
    assert "onnx: converting" in out and "report: " in out
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "x").write_text("mine")
    assert main(["--target", "onnx", *TINY, "--out", str(tmp_path / "p")]) == 2
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert lines[-1].startswith("error: ") and all("] WARNING: " in line for line in lines[:-1]), err
