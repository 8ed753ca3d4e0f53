"""A fifth format registered from a test only (``tests/toy_target.py``): it flows
through the CLI, validation, the pipeline, the audit, the report and the
benchmarks without an edit to any other module."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from export import cli, targets
from export.errors import GateFailure
from export.pipeline import run
from export.spec import parse_targets

from .helpers import make_spec

ROOT = Path(__file__).resolve().parents[1]
TOY = "tests.toy_target"


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(targets.REGISTRY, "toy", TOY)
    return targets.get("toy")


def test_cli_lists_and_runs_the_toy_target(toy, tmp_path, capsys):
    help_text = cli.build_parser().format_help()
    assert "toy target" in help_text and "--toy-float16" in help_text
    assert parse_targets("all")[-1] == "toy"
    assert (
        cli.main(["--target", "toy", "--variant", "tiny", "--res", "64", "--toy-float16", "--out", str(tmp_path)]) == 0
    )
    report = json.loads((tmp_path / "report.json").read_text())
    (entry,) = report["artifacts"]
    assert entry["name"] == "toy-fp16" and entry["format"] == "toy" and entry["status"] == "promoted"
    assert entry["audit"]["passed"] and entry["audit"]["census"]["Conv2d"] > 0
    assert entry["parity"]["passed"] and entry["parity"]["tolerance"]  # fp16 gate of the parity module
    assert entry["runtime_facts"]["interpreter_seconds_per_image"] > 0  # filled by the toy load()
    assert entry["details"]["interpreter_seconds_per_image"] == entry["runtime_facts"]["interpreter_seconds_per_image"]
    assert (tmp_path / "casvit_tiny_64x64_fp16.npz").is_file()
    assert "toy-fp16" in (tmp_path / "report.md").read_text()
    assert "casvit_tiny_64x64_fp16.npz" in capsys.readouterr().out
    assert report["versions"]["numpy"] == np.__version__  # the record's tools are reported


def test_a_denied_op_fails_the_toy_gate_with_the_shared_summary(toy, tmp_path, monkeypatch):
    import tests.toy_target

    monkeypatch.setattr(tests.toy_target, "TARGET", replace(toy, census=lambda artifact: {"Conv2d": 3, "Linear": 1}))
    with pytest.raises(GateFailure, match=r"toy-fp32 \(audit: denied ops: Linear\)"):
        run(make_spec(targets=("toy",), variant="tiny", res=(64, 64), out_dir=tmp_path))
    (entry,) = json.loads((tmp_path / "rejected" / "report.json").read_text())["artifacts"]
    assert entry["parity"] is None and not entry["passed"]


def test_benchmarks_export_and_time_the_toy_target(toy, tmp_path, monkeypatch):
    """The export subprocess registers the toy through a sitecustomize module on its path."""
    from benchmarks import accuracy, artifacts, bench, runners

    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(f"from export import targets\ntargets.REGISTRY['toy'] = {TOY!r}\n")
    monkeypatch.setenv("PYTHONPATH", f"{site}:{ROOT}")
    configs, _, missing = bench._variant_configs(
        "tiny", 64, [1], tmp_path / "work", ["toy"], [], False, log=lambda message: None
    )
    assert not missing
    ((config, facts),) = [(c, f) for c, f in configs if c.runtime == "toy-torch"]
    assert config.name == "toy-fp32" and config.runner == "tests.toy_target:bench_runner" and facts["family"] == "toy"
    logits = runners.make_runner(config)()
    assert tuple(logits.shape) == (1, 1000)
    result = artifacts.export("toy", "tiny", 64, tmp_path / "again", ["--toy-float16"])
    (entry,) = artifacts.entries(result)
    x = runners.sample_input(64, entry["input_convention"])
    row = accuracy.evaluate_entry(entry, result["out_dir"], lambda convention: x, np.array([0]), np.array([0]))
    assert row["status"] == "promoted" and "top1" in row, row
