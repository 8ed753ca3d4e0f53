"""Benchmarks: compute counting, the interleaved timer, the digits data and a
smoke run of ``python -m benchmarks`` that must write every results file."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from benchmarks.flops import PUBLISHED_GMACS, conv_macs, variant_gmacs
from benchmarks.latency import interleaved, summarize

from .helpers import ROOT


def test_conv_macs_match_hand_count():
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, stride=2, padding=1),
        torch.nn.Conv2d(8, 8, 3, padding=1, groups=8),
        torch.nn.Conv2d(8, 4, 1),
    )
    # 16x16 outputs: 8*256*(3*9) + 8*256*(1*9) + 4*256*8
    assert conv_macs(model, 32, 32) == 8 * 256 * 27 + 8 * 256 * 9 + 4 * 256 * 8


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["xs", "s", "m", "t"])
def test_gmacs_close_to_published(variant):
    assert variant_gmacs(variant, 224, 224) == pytest.approx(PUBLISHED_GMACS[variant], rel=0.05)


def test_interleaved_visits_configurations_round_robin():
    calls = []
    runners = {k: (lambda k=k: calls.append(k)) for k in "abc"}
    samples = interleaved(runners, repeats=4, warmup=1, round_size=2, log=lambda m: None)
    assert {k: len(v) for k, v in samples.items()} == {"a": 4, "b": 4, "c": 4}
    assert all(t >= 0 for v in samples.values() for t in v)
    # warm-up a b c; round 1: a x3 (re-warm + 2), b x3, c x3; round 2 starts one later: b, c, a
    assert "".join(calls) == "abc" + "aaabbbccc" + "bbbcccaaa"


def test_summarize_statistics():
    stats = summarize([1_000_000 * v for v in range(1, 11)], gmacs=0.5, core_peak_gflops=100.0, threads=2)
    assert stats["median_ms"] == 5.5 and stats["min_ms"] == 1.0 and stats["samples"] == 10
    assert stats["p90_ms"] == pytest.approx(9.1)
    assert stats["gflops"] == pytest.approx(2 * 0.5 / 5.5e-3, rel=1e-3)
    assert stats["core_peak_fraction"] == pytest.approx(stats["gflops"] / 200.0, rel=1e-3)


def test_digits_split_is_fixed_and_stratified():
    from benchmarks.digits import digits_split

    a, b = digits_split(64), digits_split(64)
    assert a["train_rgb"].shape == (1437, 64, 64, 3) and a["test_rgb"].shape == (360, 64, 64, 3)
    assert a["train_rgb"].dtype == np.uint8 and np.array_equal(a["test_y"], b["test_y"])
    assert np.array_equal(a["test_rgb"], b["test_rgb"])
    assert np.all(np.bincount(a["test_y"], minlength=10) >= 35)
    assert np.array_equal(a["train_rgb"][..., 0], a["train_rgb"][..., 2])  # gray replicated to RGB


@pytest.mark.slow
def test_smoke_run_writes_results(tmp_path):
    out, start = tmp_path / "results", time.perf_counter()
    work = os.path.relpath(tmp_path / "work", ROOT)  # relative, as `make bench` passes out/bench
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(out), "--work", work],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    print(f"smoke run: {time.perf_counter() - start:.1f}s")

    bench = json.loads((out / "bench.json").read_text())
    assert {"cpu", "logical_cores", "ram_gib", "date_utc"} <= set(bench["machine"])
    lat = bench["latency"]
    assert lat["matmul_peak_gflops"]["1"]["best"] > 0 and lat["gmacs"]["tiny"] > 0
    rows = {r["format"]: r for r in lat["rows"]}
    assert {"torch-eager", "torch-deploy", "onnx"} <= set(rows)
    timed = [r for r in lat["rows"] if "median_ms" in r]
    assert {r["format"] for r in timed} == {"torch-eager", "torch-deploy", "onnx", "tflite-fp32"}, lat["rows"]
    for r in timed:
        assert r["samples"] == 1 and 0 < r["median_ms"] <= r["p90_ms"]
        assert r["gflops"] > 0 and r["core_peak_fraction"] > 0 and r["size_bytes"] > 0
        assert r["peak_rss_mib"] > 0 and r["model_rss_mib"] >= 0 and r["threads"] == 1
    md = (out / "bench.md").read_text()
    assert "| variant | format | precision | threads | median ms |" in md and "| tiny | onnx |" in md

    acc = json.loads((out / "accuracy.json").read_text())["accuracy"]
    assert [rec["variant"] for rec in acc] == ["tiny"]
    by_name = {r["name"]: r for r in acc[0]["rows"]}
    assert by_name["torch-eager"]["top1"] == _eager_top1(out / "checkpoints" / "casvit_tiny_digits.pth", 40)
    assert by_name["onnx"]["agreement_with_eager"] >= 0.95  # fp32: same predictions as eager
    assert acc[0]["test_images"] == 40 and acc[0]["training"]["num_classes"] == 10
    assert (out / "checkpoints" / "casvit_tiny_digits.pth").is_file()
    assert "| onnx | onnx | fp32 |" in (out / "accuracy.md").read_text()
    for png in ("latency.png", "accuracy_size.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _eager_top1(checkpoint, count: int) -> float:
    """Top-1 of the saved checkpoint on the first ``count`` digits test images, computed here
    (ImageNet normalization by hand, plain argmax), not by the benchmark's own evaluate()."""
    from benchmarks.digits import digits_split
    from casvit import IMAGENET_MEAN, IMAGENET_STD, model_from_checkpoint

    data = digits_split(64)
    rgb, labels = data["test_rgb"][:count], data["test_y"][:count]
    x = (rgb.astype(np.float32) / 255 - np.float32(IMAGENET_MEAN)) / np.float32(IMAGENET_STD)
    with torch.no_grad():
        logits = model_from_checkpoint(checkpoint).eval()(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
    return float(np.mean(logits.argmax(1).numpy() == labels))


def test_naive_path_records_a_failing_stage_as_data(tmp_path):
    from benchmarks.naive import build

    result = build("no-such-variant", 64, tmp_path)
    assert result["onnx"]["ok"] is False and "unknown variant" in result["onnx"]["error"]


def test_failed_export_is_recorded_not_dropped(tmp_path):
    """One row per artifact the export would have made (names from the target's record)."""
    from benchmarks import artifacts

    args = ["--tflite-precisions", "int8,fp16", "--checkpoint", str(tmp_path / "missing.pth")]
    result = artifacts.export("tflite", "tiny", 64, tmp_path / "out", args)
    assert result["status"] == "export failed" and result["report"] is None
    assert "checkpoint not found" in result["error"]
    rows = artifacts.entries(result)
    assert [r["name"] for r in rows] == ["tflite-fp16", "tflite-int8"]
    assert all(r["status"] == "export failed" and r["error"] == result["error"] for r in rows)
