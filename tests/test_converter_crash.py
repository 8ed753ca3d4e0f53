"""A converter that raises on input the tool accepted is its own ending: ConverterCrash,
exit 5, one line naming the converter and the stage, nothing written to OUT (the
onnx2tf child process case is in tests/test_tflite.py)."""

from __future__ import annotations

import onnxsim
import pytest
import torch

from export import cli
from export.api import export_model
from export.errors import EXIT_CONVERTER, ConverterCrash, ExportError, converter_step, outcome

TINY = ["--target", "onnx", "--variant", "tiny", "--res", "64"]


def crash(*args, **kwargs):
    raise RuntimeError("unsupported node\nsecond line of the converter's message")


@pytest.mark.parametrize(
    ("module", "name", "converter", "stage"),
    [
        (onnxsim, "simplify", "onnxsim", "simplifying the ONNX model"),
        (torch.onnx, "export", "torch.onnx.export", "tracing the model to ONNX"),
    ],
)
def test_converter_crash_is_exit_5_in_one_line(tmp_path, monkeypatch, capsys, module, name, converter, stage):
    monkeypatch.setattr(module, name, crash)
    out = tmp_path / "out"
    assert cli.main([*TINY, "--out", str(out)]) == EXIT_CONVERTER == 5
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {converter} crashed while {stage}: RuntimeError: unsupported node"]
    assert not out.exists() or not any(p.name != ".lock" for p in out.iterdir())


def test_export_model_raises_converter_crash_with_its_exit_code(tmp_path, monkeypatch):
    monkeypatch.setattr(onnxsim, "simplify", crash)
    with pytest.raises(ConverterCrash) as failure:
        export_model(targets="onnx", variant="tiny", res=64, out=tmp_path / "out")
    e = failure.value
    assert (e.converter, e.stage, e.exit_code) == ("onnxsim", "simplifying the ONNX model", EXIT_CONVERTER)
    assert isinstance(e.__cause__, RuntimeError)


def test_converter_step_lets_the_tools_own_errors_and_the_machines_pass():
    for error in (ExportError("bad input"), MemoryError(), OSError(28, "No space left on device")):
        with pytest.raises(type(error)), converter_step("onnxsim", "simplifying the ONNX model"):
            raise error
    with pytest.raises(ConverterCrash) as failure, converter_step("coremltools", "converting"):
        raise ValueError("op not supported")
    assert outcome(failure.value) == (5, "coremltools crashed while converting: ValueError: op not supported")
