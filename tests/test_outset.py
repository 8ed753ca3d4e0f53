"""The output folder as one transaction (export.outset): whatever ends a run (gate
failure, full disk, SIGKILL, Ctrl-C, SIGTERM, a concurrent run), OUT holds one
complete, consistent set afterwards, and the next run leaves no staging behind."""

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from casvit import create_model
from export import outset, progress
from export.cli import main
from export.errors import EnvironmentFailure, ExportError, GateFailure, Terminated, outcome
from export.outset import Transaction, problems, transaction_folders

from .helpers import ROOT, output_lock_held

TINY = ["--variant", "tiny", "--res", "64"]


@pytest.fixture(scope="module")
def onnx_set(tmp_path_factory):
    """One passing ONNX export: the 'previous set' every scenario starts from."""
    out = tmp_path_factory.mktemp("base") / "out"
    assert main(["--target", "onnx", *TINY, "--out", str(out)]) == 0
    assert problems(out) == []
    return out


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def _snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``folder``."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _cli(*args, **popen):
    return subprocess.Popen(
        [sys.executable, "-m", "export", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def _commit(out: Path, files: dict[str, bytes], force: bool = False, rejected: bool = False) -> None:
    """A minimal run through the transaction: write ``files`` and a report, commit."""
    with Transaction(out, force=force) as txn:
        for name, data in files.items():
            (txn.new_dir / name).write_bytes(data)
            txn.add_written(name)
        (txn.new_dir / "report.json").write_text(json.dumps({"run_id": txn.run_id}))
        (txn.new_dir / "report.md").write_text("report")
        txn.commit({}, rejected=rejected)


def _nan_checkpoint(path: Path) -> Path:
    state = create_model("tiny", num_classes=1000).state_dict()
    name = next(k for k, v in state.items() if v.is_floating_point() and v.ndim == 4)
    state[name].view(-1)[0] = float("nan")
    torch.save({"model": state}, path)
    return path


@pytest.mark.slow
def test_nan_weight_rerun_keeps_the_previous_set_and_a_passing_run_drops_rejected(onnx_set, tmp_path):
    out = _copy(onnx_set, tmp_path / "out")
    before = _snapshot(out)
    checkpoint = _nan_checkpoint(tmp_path / "nan.pth")
    assert main(["--target", "onnx", *TINY, "--checkpoint", str(checkpoint), "--out", str(out)]) == 1
    assert {k: v for k, v in _snapshot(out).items() if not k.startswith("rejected/")} == before
    assert problems(out) == []
    report = json.loads((out / "rejected" / "report.json").read_text())
    assert report["rejected"] and not report["passed"] and report["previous_set_kept"]
    assert (out / "rejected" / "casvit_tiny_64x64.onnx").is_file()
    assert main(["--target", "onnx", *TINY, "--seed", "3", "--out", str(out)]) == 0
    assert not (out / "rejected").exists() and problems(out) == [] and transaction_folders(out) == []
    assert json.loads((out / "report.json").read_text())["spec"]["seed"] == 3


@pytest.mark.slow
def test_disk_full_while_writing_the_report_gives_exit_3_and_keeps_the_set(onnx_set, tmp_path, monkeypatch, capsys):
    """Injected ENOSPC at the report (the last writes of a run): nothing of the run is promoted."""
    from export import pipeline

    def full(folder, report):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder / "report.json"))

    out = _copy(onnx_set, tmp_path / "out")
    before = _snapshot(out)
    monkeypatch.setattr(pipeline, "write_reports", full)
    assert main(["--target", "onnx", *TINY, "--seed", "4", "--out", str(out)]) == 3
    err = capsys.readouterr().err
    assert (
        _error_lines(err)
        == [
            f"error: the environment failed mid-run: No space left on device: {out.parent}/"
            f".out.txn-{os.getpid()}/new/report.json"
        ]
        and "Traceback" not in err
    )
    assert _snapshot(out) == before and problems(out) == []


@pytest.mark.slow
def test_full_tmpfs_gives_exit_3_one_line_and_a_consistent_out(onnx_set, tmp_path):
    if os.geteuid() != 0 or subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root and unshare --mount")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    kib = sum(p.stat().st_size for p in onnx_set.rglob("*") if p.is_file()) // 1024 + 256  # the set + 256 KiB
    check = (
        "import json, sys; from pathlib import Path; from export.outset import problems; "
        "out = Path(sys.argv[1]); print(json.dumps(problems(out)))"
    )
    script = (
        f"mount -t tmpfs -o size={kib}k none '{mnt}' && cp -a '{onnx_set}' '{mnt}/out' && "
        f"'{sys.executable}' -m export --target onnx {' '.join(TINY)} --seed 5 --out '{mnt}/out'; "
        f"echo \"exit=$?\" >&2; '{sys.executable}' -c '{check}' '{mnt}/out' && LC_ALL=C ls -A '{mnt}' && "
        f"sha256sum '{mnt}/out/casvit_tiny_64x64.onnx'"
    )
    r = subprocess.run(
        ["unshare", "--mount", "bash", "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=600
    )
    assert "exit=3" in r.stderr, r.stderr
    (line,) = _error_lines(r.stderr)
    assert "No space left on device" in line and "Traceback" not in r.stderr
    lines = r.stdout.splitlines()
    assert json.loads(lines[0]) == [] and lines[1:3] == [".out.lock", "out"], r.stdout  # no transaction folder
    assert lines[3].split()[0] == _snapshot(onnx_set)["casvit_tiny_64x64.onnx"]


def test_second_concurrent_run_is_refused_at_once_naming_the_holder(tmp_path):
    out = tmp_path / "out"
    with output_lock_held(out) as holder:
        start = time.monotonic()
        second = _cli("--target", "onnx", *TINY, "--out", str(out))
        _, err = second.communicate(timeout=120)
        print(f"\nsecond run refused after {time.monotonic() - start:.1f} s (interpreter start and imports included)")
    assert second.returncode == 2
    assert err.strip().splitlines() == [
        f"error: {out} is in use by another run (PID {holder.pid}); wait for it to finish or choose another --out"
    ]


def _converter_started(proc: subprocess.Popen, out: Path, label: str, marker: str | None = None) -> psutil.Process:
    """Wait until ``proc``'s converter child runs (and its log shows ``marker``); return the child."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        children = psutil.Process(proc.pid).children()
        jobs = list(out.parent.glob(f".{out.name}.txn-{proc.pid}/work/**/.{label}.job.pkl"))
        logs = [j.parent / f"{label}.log" for j in jobs]
        if (
            children
            and jobs
            and (marker is None or any(marker in p.read_text(errors="replace") for p in logs if p.is_file()))
        ):
            return children[0]
        time.sleep(0.5)
    raise AssertionError(f"{label} never started")


@pytest.mark.slow
def test_sigkill_during_onnx2tf_and_coreml_leaves_out_consistent_and_the_next_run_cleans_up(onnx_set, tmp_path):
    out = _copy(onnx_set, tmp_path / "out")
    before = _snapshot(out)
    for target, label in (("tflite", "onnx2tf"), ("coreml", "coremltools")):
        proc = _cli("--target", target, *TINY, "--tflite-precisions", "fp32", "--seed", "6", "--out", str(out))
        child = _converter_started(proc, out, label)
        proc.kill()  # SIGKILL, as the OOM killer or `kill -9` sends it: no clean-up code runs
        proc.communicate()
        child.wait(timeout=10)  # the converter dies with its parent (PR_SET_PDEATHSIG)
        assert _snapshot(out) == before
        assert problems(out) == [f"leftover transaction folder {out.parent}/.out.txn-{proc.pid}"]
    assert main(["--target", "onnx", *TINY, "--seed", "7", "--out", str(out)]) == 0
    assert problems(out) == [] and transaction_folders(out) == []
    assert not list(out.parent.glob(".out.txn-*"))


@pytest.mark.slow
@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_or_sigterm_during_onnx2tf_ends_the_run_within_10_s(onnx_set, tmp_path, signum, code):
    """SIGINT goes to the whole process group, as a terminal sends it; SIGTERM to the
    export alone, as `timeout` and `docker stop` send it."""
    out = _copy(onnx_set, tmp_path / "out")
    before = _snapshot(out)
    proc = _cli("--target", "tflite", *TINY, "--tflite-precisions", "fp32", "--out", str(out), start_new_session=True)
    child = _converter_started(proc, out, "onnx2tf", marker="Model conversion started")
    start = time.monotonic()
    os.killpg(proc.pid, signum) if signum == signal.SIGINT else proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    latency = time.monotonic() - start
    print(f"\n{signal.Signals(signum).name} during onnx2tf: exit {proc.returncode} after {latency:.1f} s")
    assert latency < 10 and proc.returncode == code, err
    assert _error_lines(err) == [f"error: {outcome(Terminated() if code == 143 else KeyboardInterrupt())[1]}"]
    assert "Traceback" not in err and not child.is_running()
    assert _snapshot(out) == before and problems(out) == []
    stamps = [float(line[1 : line.index("s]")]) for line in err.splitlines() if line.startswith("[")]
    assert max(b - a for a, b in zip(stamps, stamps[1:])) <= 10.5, err  # a progress line at least every 10 s


def test_files_we_did_not_write_are_refused_unless_force_and_never_overwritten(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match=r"holds files this tool did not write \(notes.txt\).*--force"):
        _commit(out, {"a.onnx": b"1"})
    _commit(out, {"a.onnx": b"1"}, force=True)
    assert (out / "notes.txt").read_text() == "mine" and (out / "a.onnx").read_bytes() == b"1"
    assert problems(out, foreign_ok=True) == [] and problems(out) == ["notes.txt: not listed in the manifest"]
    (out / "b.onnx").mkdir()  # the user's folder where the next set puts a file
    with pytest.raises(ExportError, match="b.onnx is in the way"):
        _commit(out, {"b.onnx": b"2"}, force=True)
    assert (out / "b.onnx").is_dir() and (out / "a.onnx").read_bytes() == b"1"
    _commit(out, {"c.onnx": b"3"}, force=True)  # foreign entries survive a replacing swap
    assert sorted(os.listdir(out)) == ["b.onnx", "c.onnx", "manifest.json", "notes.txt", "report.json", "report.md"]


def test_a_mount_point_as_out_is_refused_up_front():
    with pytest.raises(ExportError, match="/dev is a mount point; .* use a folder inside it"):
        Transaction(Path("/dev")).__enter__()


def test_a_kill_between_the_two_fallback_renames_is_undone(tmp_path, monkeypatch):
    """Without RENAME_EXCHANGE the swap is OUT -> old/, new/ -> OUT; an interruption
    between them must not lose the previous set."""
    out = tmp_path / "out"
    _commit(out, {"a.onnx": b"1"})
    monkeypatch.setattr(outset, "_exchange", lambda a, b: (_ for _ in ()).throw(OSError(errno.EINVAL, "no")))
    real_rename, calls = os.rename, []

    def rename(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt  # between the renames
        real_rename(src, dst)

    monkeypatch.setattr(outset.os, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        _commit(out, {"b.onnx": b"2"})
    monkeypatch.setattr(outset.os, "rename", real_rename)
    assert sorted(os.listdir(out)) == ["a.onnx", "manifest.json", "report.json", "report.md"]
    assert problems(out) == []
    _commit(out, {"b.onnx": b"2"})  # the fallback path, to the end
    assert sorted(os.listdir(out)) == ["b.onnx", "manifest.json", "report.json", "report.md"] and problems(out) == []


@pytest.mark.slow
def test_consistency_check_finds_edited_unlisted_and_mixed_files(onnx_set, tmp_path):
    out = _copy(onnx_set, tmp_path / "out")
    (out / "casvit_tiny_64x64.onnx").write_bytes(b"edited")
    (out / "casvit_tiny_64x64_fp32.tflite").write_bytes(b"stale")
    report = json.loads((out / "report.json").read_text())
    (out / "report.json").write_text(json.dumps({**report, "run_id": "another run"}))
    assert problems(out) == [
        "casvit_tiny_64x64.onnx: sha256 differs from the manifest",
        "report.json and manifest.json come from different runs",
        "casvit_tiny_64x64_fp32.tflite: not listed in the manifest",
    ]


def test_exit_codes_are_mapped_in_one_place():
    assert outcome(GateFailure("x"))[0] == 1 and outcome(ExportError("x"))[0] == 2
    assert outcome(EnvironmentFailure("x"))[0] == 3 and outcome(MemoryError())[0] == 3
    assert (
        outcome(OSError(errno.EDQUOT, "Disk quota exceeded", "/o/f"))[1]
        == "the environment failed mid-run: Disk quota exceeded: /o/f"
    )
    assert outcome(KeyboardInterrupt())[0] == 130 and outcome(Terminated())[0] == 143
    assert outcome(RuntimeError("bug\nmore"))[0] == 4 and "\n" not in outcome(RuntimeError("bug\nmore"))[1]


def test_progress_repeats_the_stage_while_it_runs(capsys):
    with progress.stage("converting", interval=0.05):
        time.sleep(0.3)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].endswith("] converting") and len(lines) >= 4
    assert all("converting: still running" in line for line in lines[1:])


@pytest.mark.parametrize("debug", [False, True])
def test_unexpected_error_is_one_line_exit_4_and_debug_shows_the_traceback(monkeypatch, capsys, tmp_path, debug):
    from export import pipeline

    def broken(*args, **kwargs):
        raise RuntimeError("something broke\nsecond line")

    monkeypatch.setattr(pipeline, "run", broken)
    assert main(["--target", "onnx", *TINY, "--out", str(tmp_path), *(["--debug"] if debug else [])]) == 4
    err = capsys.readouterr().err
    assert _error_lines(err) == [
        "error: internal error (RuntimeError: something broke); rerun with --debug for the traceback"
    ]
    assert ("Traceback" in err) == debug


def test_atomic_copy_and_write_are_all_or_nothing(tmp_path, monkeypatch):
    """A failed copy or write leaves the destination as it was and no temporary file beside it."""
    from export import fsutil

    src, dst = tmp_path / "src.bin", tmp_path / "dst.bin"
    src.write_bytes(b"new")
    os.chmod(src, 0o640)
    dst.write_bytes(b"old")
    fsutil.atomic_copy(src, dst)
    assert dst.read_bytes() == b"new" and (dst.stat().st_mode & 0o777) == 0o640  # contents and permission bits

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fsutil.shutil, "copy", disk_full)
    with pytest.raises(OSError):
        fsutil.atomic_copy(tmp_path / "other.bin", dst)
    monkeypatch.setattr(fsutil.os, "fsync", disk_full)
    with pytest.raises(OSError):
        fsutil.atomic_write(dst, b"partial")
    assert dst.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["dst.bin", "src.bin"]


@pytest.mark.parametrize("hint, expected", [(None, "see python -m tool --help"), ("see make help", "see make help")])
def test_one_line_parser_errors_are_one_line_exit_2_with_a_hint(hint, expected, capsys):
    from export.errors import OneLineParser

    parser = OneLineParser(prog="python -m tool", hint=hint)
    parser.add_argument("--count", type=int)
    with pytest.raises(SystemExit) as done:
        parser.parse_args(["--count", "x"])
    assert done.value.code == 2
    assert capsys.readouterr().err == f"error: argument --count: invalid int value: 'x' ({expected})\n"
