"""The output transaction under hostile conditions (issue 26): folders planted by
another user are never trusted, no file of a user is ever deleted (present at the
start, appearing during the run, or named like the tool's own), and no state needs
manual action before the next run."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from export import outset, txnfolder
from export.cli import main
from export.errors import ExportError
from export.manifest import converter_log, log_marker
from export.outset import problems
from export.txnfolder import is_ours, transaction_folders

from .helpers import ROOT, commit_set, in_private_mount

TINY = ["--variant", "tiny", "--res", "64"]
OTHER_UID = 65534  # "nobody" on Debian; any uid other than ours would do


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _as_other_user(action) -> None:
    """Run ``action()`` in a forked child as another user (the test runs as root)."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.setgid(OTHER_UID)
            os.setuid(OTHER_UID)
            action()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the second user's step failed"


@pytest.fixture
def shared():
    """A world-writable sticky folder as /tmp is, that another user can write into."""
    if os.geteuid() != 0:
        pytest.skip("acting as a second user needs root (setuid in a forked child)")
    folder = Path(tempfile.mkdtemp(prefix="casvit-shared-", dir="/tmp"))
    os.chmod(folder, 0o1777)
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def test_a_journal_planted_by_another_user_is_never_followed(shared, tmp_path, capsys):
    """Issue 26, item 1: the attacker's journal names a victim path; the run goes on,
    leaves the planted folder alone with one warning and creates nothing there."""
    victim = tmp_path / "victim-path"
    planted = shared / ".vout.txn-1"

    def plant():
        (planted / "old").mkdir(parents=True)
        (planted / "old" / "payload").write_text("attacker")
        (planted / "journal.json").write_text(json.dumps({"target": str(victim), "foreign": ["payload"]}))
        (planted / "txn.json").write_text(json.dumps({"tool": "casvit-deploy", "out": str(shared / "vout"), "pid": 1}))
        os.chmod(planted, 0o777)

    _as_other_user(plant)
    before = _snapshot(planted)
    for _ in range(2):  # and again on the rerun: never stuck
        assert main(["--target", "onnx", *TINY, "--out", str(shared / "vout")]) == 0
        err = capsys.readouterr().err
        assert not os.path.lexists(victim) and _snapshot(planted) == before
        assert f"WARNING: left alone: {planted} is named like a transaction folder" in err
        assert len([line for line in err.splitlines() if "left alone" in line]) == 1
    assert problems(shared / "vout") == [f"leftover transaction folder {planted}"]


def test_a_folder_planted_under_this_runs_name_stops_the_run_with_exit_2(shared, capsys):
    planted = shared / f".vout.txn-{os.getpid()}"
    _as_other_user(lambda: planted.mkdir(mode=0o777))
    assert main(["--target", "onnx", *TINY, "--out", str(shared / "vout")]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()[-1:]
    assert line == f"error: {planted} exists but this user's runs did not create it (left alone); " + (
        "remove it or choose another --out"
    )
    assert planted.is_dir() and not (shared / "vout").exists()


def test_a_planted_lock_symlink_is_refused_and_its_target_untouched(shared, tmp_path, capsys):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    _as_other_user(lambda: os.symlink(precious, shared / ".vout.lock"))
    assert main(["--target", "onnx", *TINY, "--out", str(shared / "vout")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: {shared / '.vout.lock'} is a symbolic link; a lock file never is: remove it"
    )
    assert precious.read_text() == "keep me"


def _txn_like(out: Path, name: str, mode: int = 0o700, marker: dict | None = None) -> Path:
    folder = out.parent / name
    folder.mkdir()
    os.chmod(folder, mode)
    if marker is not None:
        (folder / "txn.json").write_text(json.dumps(marker))
    return folder


def test_ownership_check_of_transaction_folders(tmp_path):
    """Only an exact name, a folder nobody else may write, and a marker for this OUT and PID make a folder ours."""
    out = tmp_path / "out"
    ok = {"tool": "casvit-deploy", "out": str(out), "pid": 12}
    assert is_ours(_txn_like(out, ".out.txn-12", marker=ok), out)
    assert not is_ours(_txn_like(out, ".out.txn-13", marker=ok), out)  # the PID differs from its name
    assert not is_ours(_txn_like(out, ".out.txn-14", 0o777, {**ok, "pid": 14}), out)  # writable by others
    assert not is_ours(_txn_like(out, ".out.txn-15", marker={**ok, "pid": 15, "out": "/else"}), out)
    assert not is_ours(_txn_like(out, ".out.txn-backup", marker=ok), out)  # not the exact name
    held = _txn_like(out, ".out.txn-16")
    (held / "notes.txt").write_text("a user's")  # no marker and not empty
    assert not is_ours(held, out)
    assert is_ours(_txn_like(out, ".out.txn-17"), out)  # empty: a removal stopped after its marker
    (_txn_like(out, ".out.txn-20") / ".txn.json.k2x9.tmp").write_text("{")  # stopped while writing the marker
    assert is_ours(out.parent / ".out.txn-20", out)
    os.symlink(tmp_path / ".out.txn-12", tmp_path / ".out.txn-18")
    assert not is_ours(tmp_path / ".out.txn-18", out)
    foreign = _txn_like(out, ".out.txn-19", marker={**ok, "pid": 19})
    os.chown(foreign, OTHER_UID, OTHER_UID) if os.geteuid() == 0 else None
    assert is_ours(foreign, out) == (os.geteuid() != 0)


def test_files_that_appear_in_out_during_a_run_are_kept(tmp_path):
    """Item 2: the foreign-entry check holds at the swap, not only at the start."""
    out = tmp_path / "out"
    commit_set(out, {"a.onnx": b"1"})
    commit_set(out, {"b.onnx": b"2"}, during=lambda txn: (out / "notes.txt").write_text("mine"))
    assert (out / "notes.txt").read_text() == "mine" and (out / "b.onnx").read_bytes() == b"2"
    assert not (out / "a.onnx").exists() and problems(out, foreign_ok=True) == []

    def in_the_way(txn):
        (out / "c.onnx").mkdir()
        (out / "c.onnx" / "x").write_text("mine")

    with pytest.raises(ExportError, match=r"c\.onnx is in the way and was not written by this tool"):
        commit_set(out, {"c.onnx": b"3"}, force=True, during=in_the_way)
    assert (out / "c.onnx" / "x").read_text() == "mine" and (out / "b.onnx").read_bytes() == b"2"
    assert transaction_folders(out) == []


def test_an_export_finished_inside_out_during_a_run_is_kept(tmp_path):
    """Item 2: nest/out/tiny_64 exported while an export into nest/out runs."""
    outer, inner = tmp_path / "nest" / "out", tmp_path / "nest" / "out" / "tiny_64"
    commit_set(outer, {"a.onnx": b"1"})
    commit_set(outer, {"b.onnx": b"2"}, during=lambda txn: commit_set(inner, {"c.onnx": b"3"}))
    assert problems(inner) == [] and (inner / "c.onnx").read_bytes() == b"3"
    assert sorted(os.listdir(outer)) == [
        ".tiny_64.lock",
        "b.onnx",
        "manifest.json",
        "report.json",
        "report.md",
        "tiny_64",
    ]


def test_names_like_the_tools_own_are_not_deleted(tmp_path):
    """Item 3: only exact names with the tool's marker are removed."""
    out = tmp_path / "symt"
    commit_set(out, {"a.onnx": b"1"})
    (out / ".staging-mynotes").mkdir()
    (out / ".staging-mynotes" / "n.txt").write_text("mine")
    (out / converter_log("tflite")).write_text("my own log, not the tool's")
    beside = tmp_path / ".symt.txn-backup"
    beside.mkdir()
    (beside / "b.txt").write_text("mine")
    exact = _txn_like(out, ".symt.txn-77")
    (exact / "c.txt").write_text("mine")
    with pytest.raises(ExportError, match=r"holds files this tool did not write \(.staging-mynotes, tflite-converter"):
        commit_set(out, {"b.onnx": b"2"})
    commit_set(out, {"b.onnx": b"2"}, force=True)
    assert (out / ".staging-mynotes" / "n.txt").read_text() == "mine"
    assert (out / converter_log("tflite")).read_text() == "my own log, not the tool's"
    assert (beside / "b.txt").read_text() == "mine" and (exact / "c.txt").read_text() == "mine"
    assert (out / "b.onnx").read_bytes() == b"2" and not (out / "a.onnx").exists()


def test_a_converter_log_with_the_tools_marker_is_replaced_with_the_set(tmp_path):
    out = tmp_path / "out"
    log = tmp_path / "onnx2tf.log"
    log.write_text("onnx2tf said no\n")
    kept = outset.keep_converter_log(out, "tflite", log)
    assert Path(kept).read_bytes() == log_marker("tflite") + b"onnx2tf said no\n"
    commit_set(out, {"a.onnx": b"1"})  # no --force needed: the log is ours
    assert sorted(os.listdir(out)) == ["a.onnx", "manifest.json", "report.json", "report.md"]
    (out / converter_log("coreml")).write_text("a file of mine")
    assert (
        outset.keep_converter_log(out, "coreml", log)
        == f"not kept ({out / converter_log('coreml')} is not this tool's)"
    )
    assert (out / converter_log("coreml")).read_text() == "a file of mine"


_KILL_AFTER_THE_SWAP = """
import os, sys
from pathlib import Path
from export import outset, txnfolder
from tests.helpers import commit_set
outset._settle = lambda *args: os._exit(9)  # SIGKILL-like: the swap is done, nothing is moved back
commit_set(Path(sys.argv[1]), {"b.onnx": b"2"}, force=True)
"""


def test_a_force_run_killed_after_the_swap_then_out_deleted_recovers_without_manual_action(tmp_path):
    """Item 7: the user's files wait in the transaction folder; the next run puts them back."""
    out = tmp_path / "out"
    commit_set(out, {"a.onnx": b"1"})
    (out / "notes.txt").write_text("mine")
    done = subprocess.run([sys.executable, "-c", _KILL_AFTER_THE_SWAP, str(out)], cwd=ROOT)
    assert done.returncode == 9 and not (out / "notes.txt").exists()
    shutil.rmtree(out)  # the user removes OUT
    commit_set(out, {"c.onnx": b"3"}, force=True)
    assert (out / "notes.txt").read_text() == "mine" and (out / "c.onnx").read_bytes() == b"3"
    assert transaction_folders(out) == [] and problems(out, foreign_ok=True) == []


def test_a_mount_point_inside_out_is_refused_before_any_work(tmp_path):
    """Item 7: a mount inside OUT would be stranded in a transaction folder by the swap."""
    out = tmp_path / "out"
    commit_set(out, {"a.onnx": b"1"})
    (out / "mnt").mkdir()
    script = (
        f"mount -t tmpfs -o size=64k none '{out}/mnt' && echo data > '{out}/mnt/f' && "
        f"'{sys.executable}' -m export --target onnx {' '.join(TINY)} --force --out '{out}'; echo \"exit=$?\" >&2; "
        f"cat '{out}/mnt/f'"
    )
    r = in_private_mount(script)
    assert r.stderr.strip().splitlines() == [
        f"error: --out {out}: {out}/mnt is a mount point inside it; a run moves the entries of OUT, "
        "which a mount point refuses: unmount it or choose another --out",
        "exit=2",
    ]
    assert r.stdout == "data\n" and transaction_folders(out) == [] and (out / "a.onnx").read_bytes() == b"1"


def test_out_under_a_file_names_the_file(tmp_path, capsys):
    """Item 12: ``--out afile/sub``."""
    (tmp_path / "afile").write_text("x")
    assert main(["--target", "onnx", *TINY, "--out", str(tmp_path / "afile" / "sub")]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: --out {tmp_path}/afile/sub: {tmp_path}/afile is a file, not a folder"
    )


_FULL_DISK = {
    # stage: (tmpfs size in KiB, wait for this text in the converter's log before filling the disk)
    "onnx intermediate": (512, None),  # the exporter's own ONNX writes
    "numpy arrays": (3072, None),  # np.save of the calibration arrays (a short write without errno)
    "converter child": (65536, "Model conversion started"),  # onnx2tf in its child process, log and result too
}


@pytest.mark.slow
@pytest.mark.parametrize("stage", list(_FULL_DISK))
def test_disk_full_at_every_stage_is_exit_3_naming_the_path(tmp_path, stage):
    """Item 8: the same full disk gave exit 2, 3 without a path or 4 depending on the stage."""
    kib, marker = _FULL_DISK[stage]
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    fill = (
        f"while ! grep -qs '{marker}' '{mnt}'/.out.txn-*/work/onnx2tf/onnx2tf.log; do "
        f"kill -0 $pid 2>/dev/null || break; sleep 0.2; done; dd if=/dev/zero of='{mnt}/filler' bs=64k 2>/dev/null; "
        if marker
        else ""
    )
    script = (
        f"mount -t tmpfs -o size={kib}k none '{mnt}' && mkdir '{mnt}/out' && echo mine > '{mnt}/out/notes.txt' && "
        f"{{ '{sys.executable}' -m export --target tflite --tflite-precisions fp32 {' '.join(TINY)} --force "
        f"--out '{mnt}/out' > /dev/null & pid=$!; {fill}wait $pid; echo \"exit=$?\" >&2; }}; rm -f '{mnt}/filler'; "
        f"LC_ALL=C ls -A '{mnt}' '{mnt}/out'"
    )
    r = in_private_mount(script, timeout=900)
    lines = [line for line in r.stderr.splitlines() if "WARNING" not in line]
    assert len(lines) == 2 and lines[1] == "exit=3", r.stderr
    assert lines[0].startswith(f"error: the environment failed mid-run: No space left on device: {mnt}/"), r.stderr
    assert "Traceback" not in r.stderr
    assert r.stdout.split() == [f"{mnt}:", ".out.lock", "out", f"{mnt}/out:", "notes.txt"], r.stdout


def test_an_interruption_while_the_transaction_folder_is_made_leaves_nothing(tmp_path, monkeypatch):
    """A signal can land while the marker is written (the folder then holds its temporary file)."""

    def interrupted(path, data):
        (path.parent / f".{path.name}.k2x9.tmp").write_text("{")  # atomic_write's temporary file
        raise KeyboardInterrupt

    monkeypatch.setattr(txnfolder, "atomic_write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        outset.Transaction(tmp_path / "out").__enter__()
    assert transaction_folders(tmp_path / "out") == []
