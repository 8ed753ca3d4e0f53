"""Transaction folders beside OUT (``.<OUT>.txn-<pid>/``, see ``export.outset``):
their exact name, their creation (new, owner-only, with the tool's marker), the
check that one is ours, and ``remove``, the one place the output transaction
deletes anything."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
from pathlib import Path

from .errors import ExportError
from .fsutil import atomic_write, temporary_of
from .manifest import TOOL

MARKER = "txn.json"


def txn_folder_name(out_name: str, pid: int | str) -> str:
    """The name of the transaction folder of a run (its PID) on OUT, beside OUT."""
    return f".{out_name}.txn-{pid}"


def _txn_pattern(out_dir: Path) -> re.Pattern:
    return re.compile(re.escape(txn_folder_name(out_dir.name, "")) + r"([1-9][0-9]*)")


def transaction_folders(out_dir: Path) -> list[Path]:
    """Entries beside ``out_dir`` named exactly like its transaction folders, ours or not."""
    pattern = _txn_pattern(out_dir)
    try:
        names = os.listdir(out_dir.parent)
    except OSError:
        return []
    return sorted(out_dir.parent / name for name in names if pattern.fullmatch(name))


def _marker(out_dir: Path, pid: int) -> dict:
    return {"tool": TOOL, "out": str(out_dir), "pid": pid}


def is_ours(folder: Path, out_dir: Path) -> bool:
    """``folder`` is a transaction folder of ``out_dir`` that this user created: its exact
    name, a real folder owned by this user and writable by nobody else, holding our
    marker for this OUT and PID; or, without a marker, holding nothing but the marker's
    temporary file (a run stopped while creating it, or a removal after it)."""
    match = _txn_pattern(out_dir).fullmatch(folder.name)
    if folder.parent != out_dir.parent or not match:
        return False
    try:
        st = os.lstat(folder)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return False
        marker = folder / MARKER
        mst = os.lstat(marker)
        if not stat.S_ISREG(mst.st_mode) or mst.st_uid != os.geteuid():
            return False
        return json.loads(marker.read_text(encoding="utf-8")) == _marker(out_dir, int(match.group(1)))
    except FileNotFoundError:
        return os.path.isdir(folder) and all(temporary_of(MARKER, name) for name in os.listdir(folder))
    except (OSError, ValueError):
        return False


def create(root: Path, out_dir: Path) -> None:
    """This run's transaction folder: new (never an existing one), owner-only, marked."""
    try:
        os.mkdir(root, 0o700)
    except FileExistsError:
        raise ExportError(
            f"{root} exists but this user's runs did not create it (left alone); remove it or choose another --out"
        ) from None
    try:
        os.chmod(root, 0o700)  # whatever the umask
        atomic_write(root / MARKER, json.dumps(_marker(out_dir, os.getpid())))
    except BaseException:
        remove(root, out_dir)  # still empty
        raise


def remove(path: Path, out_dir: Path) -> None:
    """The only deletion of the output transaction: ``path`` is a transaction folder of
    ``out_dir`` that ``is_ours``, or lies inside one. Users' entries are moved out of a
    replaced set (``_settle``) before its transaction folder goes; the marker goes
    last, so a removal cut short is finished by the next run."""
    try:
        root = out_dir.parent / path.relative_to(out_dir.parent).parts[0]
    except (ValueError, IndexError):
        root = None
    if root is None or not is_ours(root, out_dir):
        raise RuntimeError(f"refusing to delete {path}: not inside a transaction folder of this user for {out_dir}")
    if path != root:
        shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else os.unlink(path)
        return
    for entry in os.scandir(root):
        if entry.name != MARKER:
            shutil.rmtree(entry.path) if entry.is_dir(follow_symlinks=False) else os.unlink(entry.path)
    (root / MARKER).unlink(missing_ok=True)
    os.rmdir(root)
