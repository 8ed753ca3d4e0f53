"""verify-arm: the shared real tiny 64x64 TFLite export (fp32, fp16, int8-dynamic, int8) run in
LiteRT 1.4.0 on emulated ARM64 and on x86 and gated against its golden data; a
consistent but wrong reference fails the gate (exit 1); an altered, truncated or
missing golden file is bad input (exit 2) and leaves no report behind.

The first run builds the toolchain into the project's .cache/arm64 (apt-installs
qemu-user-static and mmdebstrap when missing, downloads the pinned wheels)."""

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from export import golden
from export.fsutil import sha256_of
from export.verify_arm import LITERT_VERSION
from export.verify_arm.__main__ import JSON_NAME, MD_NAME

from .helpers import ROOT, output_lock_held


def test_app_and_verify_arm_use_one_litert_version():
    versions = tomllib.loads((ROOT / "android_app/gradle/libs.versions.toml").read_text())["versions"]
    assert versions["litert"] == LITERT_VERSION


@pytest.mark.parametrize("convention", ["normalized", "unit", "byte"])
def test_runner_builds_the_same_input_as_the_export(convention):
    """runner.py is self-contained (it runs in the ARM64 root): its input builder
    must stay equal to the export's, bit for bit."""
    from casvit.preprocess import official_default
    from export.inputs import CONVENTIONS, parity_images, to_convention
    from export.verify_arm.runner import CONVENTIONS as RUNNER_CONVENTIONS
    from export.verify_arm.runner import model_input

    assert RUNNER_CONVENTIONS == CONVENTIONS
    for record in (official_default(64, 64), official_default(64, 64, imagenet_mean_std=False)):
        _, rgb = parity_images(record, noise=1)
        mean, std = np.asarray(record.mean, np.float32), np.asarray(record.std, np.float32)
        expected = to_convention(rgb, convention, record.mean, record.std).transpose(0, 2, 3, 1)
        assert np.array_equal(model_input(rgb, convention, mean, std), expected)


def _verify(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "export.verify_arm", str(out), *extra], cwd=ROOT, capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def exported(tiny_tflite_export, tmp_path_factory) -> Path:
    """A copy of the shared tiny export (all four precisions): verify-arm writes its
    reports into the set and the last test replaces the set."""
    assert tiny_tflite_export["report"]["passed"], "the exporter's own parity gate failed"
    out = tmp_path_factory.mktemp("verify_arm") / "out"
    shutil.copytree(tiny_tflite_export["out"], out)
    return out


@pytest.fixture(scope="module")
def verified(exported) -> dict:
    done = _verify(exported)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("verify-arm: 4 models passed") and done.stderr == ""
    return json.loads((exported / JSON_NAME).read_text())


@pytest.mark.slow
def test_every_precision_passes_on_arm64_and_x86(verified, exported):
    assert verified["passed"]
    assert [m["precision"] for m in verified["models"]] == ["fp32", "fp16", "int8-dynamic", "int8"]
    for model in verified["models"]:
        for side in ("arm64", "x86_64"):
            check = model[side]
            assert check["passed"] and not check["misses"], (model["file"], side)
            assert check["metrics"]["samples"] == verified["golden"]["samples"] == 6
            assert check["tolerance"]["min_cosine"] > 0  # the export's gate for this precision was applied
    assert (exported / MD_NAME).read_text().count("| ok |") >= 8


@pytest.mark.slow
@pytest.mark.parametrize("side", ["arm64", "x86_64"])
def test_every_precision_runs_as_one_xnnpack_partition_in_the_app_litert(verified, exported, side):
    """LiteRT 1.4.0 (the app's), emulated ARM64 and x86: int8 and int8-dynamic included."""
    from export.verify_arm.sides import prepare

    runtime = dict(zip(("arm64", "x86_64"), prepare()))[side]
    models = sorted(str(p) for p in exported.glob("*.tflite"))
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(runtime.site), "PYTHONNOUSERSITE": "1"}
    done = subprocess.run(
        [*runtime.command, str(ROOT / "export" / "targets" / "tflite" / "partitions.py"), *models],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [line["model"] for line in lines] == models and len(models) == 4
    for line in lines:
        assert (line["partitions"], line["outside"]) == (1, {}), line


@pytest.mark.slow
def test_guest_is_arm64_with_fp16_dotprod_i8mm_and_both_sides_run_the_app_version(verified):
    arm, x86 = verified["arm64"], verified["x86_64"]
    assert arm["machine"] == "aarch64" and x86["machine"] == "x86_64"
    assert arm["ai_edge_litert"] == x86["ai_edge_litert"] == LITERT_VERSION
    assert {"fphp", "asimdhp", "asimddp", "i8mm"} <= set(arm["cpu_features"])


@pytest.mark.slow
def test_fp16_arithmetic_is_really_taken_on_arm64(verified):
    floats = [m for m in verified["models"] if m["precision"] in ("fp32", "fp16")]
    assert len(floats) == 2
    for model in floats:
        fp16 = model["arm64_fp16_arithmetic"]
        assert fp16["runtime"]["xnnpack_flags"] & 0x4  # FORCE_FP16 as the delegate reports it
        assert not fp16["gating"]
        # Half-precision arithmetic moves the output well beyond fp32 rounding noise,
        # while the default ARM64 run stays at the x86 result.
        assert fp16["max_abs_vs_default_arithmetic"] > 100 * model["arm64_vs_x86_64_max_abs"]
        assert fp16["metrics"]["max_abs"] > model["arm64"]["metrics"]["max_abs"]


def _copy_with_golden(
    exported: Path,
    dst: Path,
    logits=None,
    data: bytes | None = None,
    keep: str = "fp32.tflite",
    update_manifest: bool = True,
) -> Path:
    """A copy of the output set listing one model, with the golden file replaced by
    new logits or raw bytes; the manifest hash follows it when ``update_manifest``."""
    shutil.copytree(exported, dst)
    (dst / JSON_NAME).unlink(missing_ok=True)
    path = dst / golden.FILE_NAME
    if logits is not None:
        g = golden.read(path)
        golden.write(path, list(g["names"]), g["rgb"], g["mean"], g["std"], logits)
    if data is not None:
        path.write_bytes(data)
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["files"] = [f for f in manifest["files"] if not f["path"].endswith(".tflite") or f["path"].endswith(keep)]
    for f in manifest["files"]:
        if f["path"] == golden.FILE_NAME and update_manifest:
            f["sha256"] = sha256_of(path)
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


@pytest.mark.slow
def test_wrong_reference_logits_fail_the_gate_with_exit_1(exported, verified, tmp_path):
    logits = golden.read(exported / golden.FILE_NAME)["logits"]
    wrong = logits[:, ::-1].copy()  # every class renamed: same values, other ranking
    out = _copy_with_golden(exported, tmp_path / "wrong", logits=wrong)
    done = _verify(out, "--no-fp16-arithmetic")
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("verify-arm: FAILED: casvit_tiny_64x64_fp32.tflite")
    report = json.loads((out / JSON_NAME).read_text())
    assert not report["passed"]
    misses = report["models"][0]["arm64"]["misses"]
    assert any(m.startswith("top-1 agreement") for m in misses), misses


@pytest.mark.slow
def test_fp16_arithmetic_can_be_made_gating(exported, verified, tmp_path):
    """On the tiny random-weight model fp16 arithmetic misses the fp16 gate (see
    verify-arm.md); --gate-fp16-arithmetic turns that miss into exit 1."""
    fp16 = verified["models"][0]["arm64_fp16_arithmetic"]
    out = _copy_with_golden(exported, tmp_path / "gated")
    done = _verify(out, "--gate-fp16-arithmetic")
    assert done.returncode == (0 if fp16["passed"] else 1), done.stderr
    assert json.loads((out / JSON_NAME).read_text())["passed"] is fp16["passed"]


@pytest.mark.slow
@pytest.mark.parametrize("case", ["edited", "truncated", "unreadable", "missing", "no manifest"])
def test_bad_golden_data_is_exit_2_with_one_line_and_no_report(exported, tmp_path, case):
    raw = (exported / golden.FILE_NAME).read_bytes()
    if case == "edited":  # logits changed but the manifest still has the export's hash
        logits = golden.read(exported / golden.FILE_NAME)["logits"] + 1.0
        out = _copy_with_golden(exported, tmp_path / case, logits=logits, update_manifest=False)
    elif case == "truncated":
        out = _copy_with_golden(exported, tmp_path / case, data=raw[: len(raw) // 2], update_manifest=False)
    elif case == "unreadable":  # consistent with the manifest, but not an .npz
        out = _copy_with_golden(exported, tmp_path / case, data=raw[: len(raw) // 2])
    else:
        out = _copy_with_golden(exported, tmp_path / case)
        (out / (golden.FILE_NAME if case == "missing" else "manifest.json")).unlink()
    done = _verify(out)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    expected = {
        "edited": "sha256 differs from the manifest",
        "truncated": "sha256 differs from the manifest",
        "unreadable": "unreadable golden data",
        "missing": "listed in the manifest but missing",
        "no manifest": "no manifest.json",
    }[case]
    assert expected in lines[0]
    assert not (out / JSON_NAME).exists() and not list(out.glob(".verify-arm*"))


@pytest.mark.slow
def test_verified_set_stays_consistent_and_a_new_export_replaces_the_reports(verified, exported):
    """verify-arm's reports belong to the set: not foreign files, gone when the set is replaced."""
    from export import outset

    assert outset.problems(exported) == []
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "export",
            "--target",
            "onnx",
            "--variant",
            "tiny",
            "--res",
            "64",
            "--out",
            str(exported),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert not (exported / JSON_NAME).exists() and outset.problems(exported) == []


def test_a_set_in_use_by_an_export_is_refused_at_once_and_left_alone(tmp_path):
    """verify-arm takes OUT's lock before reading the set: an export holding it (here its
    transaction, as the exporter opens it) makes verify-arm exit 2 naming the holder,
    before any toolchain work and without writing a report."""
    out = tmp_path / "out"
    out.mkdir()
    with output_lock_held(out) as holder:
        done = _verify(out, "--cache", str(tmp_path / "no-cache"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {out} is in use by another run (PID {holder.pid}); wait for it to finish"
    ]
    assert os.listdir(out) == [] and not (tmp_path / "no-cache").exists()


def test_verify_arm_finishes_a_killed_exports_swap_before_reading(tmp_path):
    """A transaction folder left by a SIGKILLed export is cleaned up under the lock (as the
    next export would); an empty folder is then bad input (no manifest), exit 2."""
    from export import outset

    out = tmp_path / "out"
    out.mkdir()
    with output_lock_held(out) as holder:  # a transaction, SIGKILLed at the end of the block
        stale = tmp_path / f".out.txn-{holder.pid}"
    assert outset.problems(out) == [f"leftover transaction folder {stale}"]
    done = _verify(out, "--cache", str(tmp_path / "no-cache"))
    assert done.returncode == 2 and "no manifest.json" in done.stderr, done.stderr
    assert not stale.exists() and outset.problems(out) == []
