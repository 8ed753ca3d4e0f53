"""Signals from the first instruction of ``python -m export`` to its exit (issue 26,
item 9): SIGINT, SIGTERM and SIGHUP during start-up or the run end it with 130, 143
or 129 and exactly one error line, a second Ctrl-C changes nothing, and no
transaction folder is left behind."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from export.errors import Terminated, outcome
from export.txnfolder import transaction_folders

from .helpers import ROOT

TINY = ["--variant", "tiny", "--res", "64"]
CODES = {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGHUP: 129}


def _expected_line(signum: int) -> str:
    exc = KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)
    return f"error: {outcome(exc)[1]}"


def _export(out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "export", "--target", "onnx", *TINY, "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )


def _caught(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1], 16)


def _wait_until(proc: subprocess.Popen, ready) -> None:
    deadline = time.monotonic() + 120
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "never ready"
        time.sleep(0.01)


def _ended_with_one_line(proc: subprocess.Popen, signum: int, out: Path) -> None:
    _, err = proc.communicate(timeout=60)
    errors = [line for line in err.splitlines() if not line.startswith("[")]  # timestamped lines are warnings
    assert proc.returncode == CODES[signum] and errors == [_expected_line(signum)], err
    assert transaction_folders(out) == [] and not out.exists()


@pytest.mark.parametrize("delay", [0.0, 1.0])
@pytest.mark.parametrize("signum", list(CODES))
def test_a_signal_during_start_up_ends_the_run_with_its_code_and_one_line(tmp_path, signum, delay):
    """From the moment ``python -m export`` handles signals (its first instruction after
    the interpreter's own start), through the heavy imports and the start of the run."""
    out = tmp_path / "out"
    proc = _export(out)
    handled = (1 << signal.SIGTERM - 1) | (1 << signal.SIGHUP - 1)  # Python alone catches only SIGINT
    _wait_until(proc, lambda: _caught(proc.pid) & handled == handled)
    time.sleep(delay)
    os.killpg(proc.pid, signum)
    _ended_with_one_line(proc, signum, out)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP])
def test_a_second_signal_during_the_clean_up_changes_nothing(tmp_path, signum):
    """Two Ctrl-C (or a hang-up and its repeat) during the run: one line, no debris."""
    out = tmp_path / "out"
    proc = _export(out)
    _wait_until(proc, lambda: bool(transaction_folders(out)))  # the run's transaction exists
    os.killpg(proc.pid, signum)
    time.sleep(0.02)
    os.killpg(proc.pid, signum)
    _ended_with_one_line(proc, signum, out)


def test_a_signal_the_caller_ignores_stays_ignored(tmp_path):
    """``nohup python -m export ...`` keeps running when the terminal hangs up."""
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "export", "--target", "onnx", *TINY, "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN),
    )
    _wait_until(proc, lambda: _caught(proc.pid) & (1 << signal.SIGTERM - 1))
    proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    _ended_with_one_line(proc, signal.SIGTERM, out)
