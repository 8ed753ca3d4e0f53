"""The peer benchmark (benchmarks/peers): the parts that need no peer package run
here in the core environment; the conversion itself runs only where .venv-peers
exists (``make peers-setup``)."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from benchmarks.peers import PEERS
from benchmarks.peers.convert import nodes_outside_delegates
from benchmarks.peers.part import PEERS_PYTHON, run_peers
from benchmarks.peers.profile import call_overhead_ms, class_shares, op_class
from benchmarks.peers.run import time_all
from benchmarks.peers.table import markdown, parity_verdict, photos_centered_cosine

ROOT = Path(__file__).resolve().parents[1]


def _op(index, name, inputs, outputs):
    return {"index": index, "op_name": name, "inputs": np.array(inputs), "outputs": np.array(outputs)}


def test_nodes_outside_delegates_finds_the_node_between_two_partitions():
    # conv -> gelu -> conv, with XNNPACK taking each conv alone: LiteRT lists the three
    # original nodes and then the two DELEGATE nodes, which reuse the convs' tensors.
    ops = [
        _op(0, "CONV_2D", [0, 10], [1]),
        _op(1, "GELU", [1], [2]),
        _op(2, "CONV_2D", [2, 11], [3]),
        _op(3, "DELEGATE", [0], [1]),
        _op(4, "DELEGATE", [2], [3]),
    ]
    assert [op["op_name"] for op in nodes_outside_delegates(ops, graph_outputs=[3])] == ["GELU"]


def test_nodes_outside_delegates_is_empty_for_one_partition():
    ops = [_op(0, "CONV_2D", [0, 10], [1]), _op(1, "GELU", [1], [2]), _op(2, "DELEGATE", [0], [2])]
    assert nodes_outside_delegates(ops, graph_outputs=[2]) == []


def test_nodes_outside_delegates_without_delegate_is_every_node():
    ops = [_op(0, "PAD", [0], [1]), _op(1, "CONV_2D", [1, 10], [2])]
    assert [op["index"] for op in nodes_outside_delegates(ops, graph_outputs=[2])] == [0, 1]


def test_parity_verdict_times_only_what_passes_our_gate():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(6, 10))
    assert parity_verdict(reference, reference.copy(), "fp32")["status"] == "ok"
    off = reference + 1e-3 * np.abs(reference).max()  # max rel 1e-3 > the fp32 gate's 1e-5
    verdict = parity_verdict(reference, off, "fp32")
    assert verdict["status"].startswith("parity missed") and "max_rel" in verdict["status"]
    assert verdict["parity"]["max_rel"] == pytest.approx(1e-3)


def test_photos_centered_cosine_is_the_photo_rows_of_the_parity_metric():
    """Same centering as export.parity.compare: on a batch whose worst input is a photo
    the two agree; noise rows are left out of the photos figure."""
    from export.parity import compare

    rng = np.random.default_rng(1)
    reference = rng.normal(size=(6, 10))
    output = reference + rng.normal(scale=[[0.1], [0.2], [0.9], [0.1], [3.0], [3.0]], size=(6, 10))
    photos = np.array([True, True, True, True, False, False])
    verdict = parity_verdict(reference, output, "int8", photos)
    assert verdict["parity"]["photos_min_centered_cosine"] > verdict["parity"]["min_centered_cosine"]
    only_photos_worst = output.copy()
    only_photos_worst[4:] = reference[4:]
    assert photos_centered_cosine(reference, only_photos_worst, photos) == pytest.approx(
        compare(reference, only_photos_worst)["min_centered_cosine"]
    )


def test_rows_that_missed_parity_are_not_timed():
    rows = [
        {
            "format": "litert-torch-deploy-fp32",
            "status": "parity missed: max_rel 1e-3 > 1e-05",
            "runtime": "litert",
            "path": "unused.tflite",
        },
        {"format": "executorch-deploy-int8", "status": "convert failed", "runtime": "executorch"},
    ]
    job = {"variant": "tiny", "res": 64, "threads": [1], "repeats": 1, "warmup": 0, "round_size": 1}
    time_all(rows, job, np.zeros((1, 64, 64, 3), np.uint8))
    assert [r["timing"] for r in rows] == [{}, {}]


def test_missing_peers_environment_is_a_status_row_for_every_peer(tmp_path):
    job = {
        "variant": "xs",
        "res": 224,
        "threads": [1],
        "work": str(tmp_path),
        "ours": [{"format": "ours-tflite-fp32", "precision": "fp32", "path": "x.tflite"}],
    }
    result = run_peers(job, python=tmp_path / "no-such-env" / "bin" / "python")
    statuses = {r["format"]: r["status"] for r in result["rows"]}
    assert statuses == {"ours-tflite-fp32": "not timed (no peer run)", **{p.name: "not installed" for p in PEERS}}
    table = markdown(result)
    assert all(f"| {p.name} | {p.precision} |" in table and "not installed" in table for p in PEERS)


def test_table_ratio_is_peer_median_over_ours_at_the_same_precision_and_threads():
    rows = [
        {
            "format": "ours-tflite-fp32",
            "toolchain": "ours",
            "precision": "fp32",
            "runtime": "litert",
            "status": "ok",
            "timing": {"1": {"median_ms": 10.0}, "2": {"median_ms": 8.0}},
            "partitions": {"delegated": 1, "outside": 0, "outside_ops": {}},
        },
        {
            "format": "executorch-deploy-fp32",
            "toolchain": "executorch",
            "precision": "fp32",
            "runtime": "executorch",
            "status": "ok",
            "convert_seconds": 12.5,
            "timing": {"1": {"median_ms": 12.0}, "2": {"median_ms": 6.0}},
            "partitions": {"delegated": 11, "outside": 10, "outside_ops": {"split_copy": 10}},
        },
    ]
    lines = markdown({"variant": "xs", "resolution": 224, "threads": [1, 2], "rows": rows}).splitlines()
    peer = [ln for ln in lines if ln.startswith("| executorch-deploy-fp32 |")]
    assert [ln.split(" | ")[4] for ln in peer] == ["1.20", "0.75"]
    assert "11 subgraphs + 10 outside (10 split_copy)" in peer[0] and "| 12.5 |" in peer[0]


@pytest.mark.skipif(
    not PEERS_PYTHON.is_file(),
    reason=f"the peers environment {PEERS_PYTHON.parent.parent.name} is not installed "
    "(make peers-setup); it holds litert-torch and ExecuTorch",
)
def test_peers_convert_and_pass_parity_in_the_peers_environment(tmp_path):
    job = {
        "variant": "tiny",
        "res": 64,
        "threads": [1],
        "repeats": 1,
        "warmup": 0,
        "round_size": 1,
        "work": str(tmp_path),
        "ours": [],
        "peers": ["litert-torch-deploy-fp32", "executorch-deploy-fp32"],
    }
    (tmp_path / "job.json").write_text(json.dumps(job))
    subprocess.run(
        [
            str(PEERS_PYTHON),
            "-m",
            "benchmarks.peers.run",
            "convert",
            str(tmp_path / "job.json"),
            str(tmp_path / "out.json"),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=900,
    )
    rows = {r["format"]: r for r in json.loads((tmp_path / "out.json").read_text())["rows"]}
    assert {name: r["status"] for name, r in rows.items()} == {name: "ok" for name in job["peers"]}
    assert rows["litert-torch-deploy-fp32"]["partitions"]["delegated"] >= 1
    assert rows["executorch-deploy-fp32"]["partitions"]["delegated"] >= 1


def test_profile_classes_xnnpack_operator_names():
    assert op_class("Convolution (NHWC, F32) DWConv #3", True) == "depthwise"
    assert op_class("Convolution (NHWC, F32) IGEMM #1", True) == "conv"
    assert op_class("Fully Connected (NC, F32) GEMM #2", True) == "conv"  # 1x1 convolutions in NHWC
    assert op_class("Sigmoid (NC) #4", True) == "sigmoid"
    assert op_class("Mean (ND) Reduce2 #1", True) == "mean"
    assert op_class("Multiply (ND) #5", True) == "elementwise"
    assert op_class("native_call_split_with_sizes_copy.out", False) == "portable (outside XNNPACK)"


def test_profile_shares_are_of_op_time_and_spans_count_only_beyond_their_operators():
    events = [
        ("DELEGATE_CALL", False, 10.0),
        ("Convolution (NHWC, F32) IGEMM #1", True, 6.0),
        ("Convolution (NHWC, F32) DWConv #1", True, 2.0),
        ("OPERATOR_CALL", False, 1.2),
        ("native_call_split_with_sizes_copy.out", False, 1.0),
    ]
    shares = class_shares(events)
    # op time = 6 conv + 2 depthwise + 1 portable = 9 ms; the delegate span holds 10 - 8 = 2 ms more
    assert {k: v["ms"] for k, v in shares.items()} == {"conv": 6.0, "depthwise": 2.0, "portable (outside XNNPACK)": 1.0}
    assert shares["conv"]["share"] == pytest.approx(6 / 9, abs=1e-4)
    assert call_overhead_ms(events) == pytest.approx(2.0)
