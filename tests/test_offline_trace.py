"""OS-level offline proof: the system calls of a real export (every target) are
traced with strace, and any IPv4/IPv6 socket traffic or DNS query fails the test.
The Python audit hook of export.offline cannot see native threads; this can."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from .helpers import ROOT

TRACED_CALLS = "connect,sendto,sendmsg"
NETWORK = re.compile(r"sa_family=AF_INET6?\b|htons\(53\)|\\6mobile\\6events")


def _strace_works() -> str | None:
    """None when strace can trace a child here, else why not (installed by tests/tools/ensure_strace.sh)."""
    if shutil.which("strace") is None:
        return "strace is not installed (make test installs it with tests/tools/ensure_strace.sh)"
    probe = subprocess.run(["strace", "-f", "-qq", "-o", os.devnull, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"ptrace is not permitted here: {probe.stderr.strip()[:200]}"
    return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_strace_works() is not None, reason=str(_strace_works()))]


def _trace(tmp_path, *command: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run ``command`` under strace; its result and the network lines of the trace."""
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}  # the code must set it itself
    log = tmp_path / "strace.log"
    result = subprocess.run(
        ["strace", "-f", "-qq", "-e", f"trace={TRACED_CALLS}", "-o", str(log), *command],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=900,
    )
    return result, [line for line in log.read_text(errors="replace").splitlines() if NETWORK.search(line)]


def test_trace_sees_a_udp_packet(tmp_path):
    """Positive control: the same trace and filter catch a datagram a process sends."""
    code = (
        "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "try: s.sendto(b'x', ('192.0.2.1', 9))\nexcept OSError: pass"
    )  # TEST-NET-1: goes nowhere
    result, network = _trace(tmp_path, sys.executable, "-c", code)
    assert result.returncode == 0, result.stderr
    assert network and "192.0.2.1" in network[0]


def test_real_export_sends_nothing(tmp_path):
    """onnx, tflite fp32 and Core ML fp16 of the tiny model: no IPv4/IPv6 traffic, no DNS query."""
    out = tmp_path / "out"
    result, network = _trace(
        tmp_path,
        sys.executable,
        "-m",
        "export",
        "--variant",
        "tiny",
        "--res",
        "64",
        "--target",
        "onnx,tflite,coreml",
        "--tflite-precisions",
        "fp32",
        "--coreml-precision",
        "fp16",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert network == [], "network traffic during the export:\n" + "\n".join(network[:10])
    report = (out / "report.md").read_text()
    assert "ORT_DISABLE_TELEMETRY=1" in report
