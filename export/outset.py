"""The output folder ``OUT`` as one transaction.

After any run, whatever ended it (pass, gate failure, bad input, exception,
SIGINT/SIGTERM/SIGHUP/SIGKILL at any moment, a full disk), ``OUT`` holds either the
complete previous set or the complete new one, and every entry of ``OUT`` that this
tool did not write is still there.

``OUT`` is one folder whatever its spelling: every tool (export, verify-arm,
android-assets) resolves it (symbolic links, ``..``) before taking its lock.
Layout beside it (same filesystem, so every rename below is atomic)::

    .<name>.lock           flock()ed by the tool using OUT, holds the PID of its holder
    .<name>.txn-<pid>/     this run's transaction folder, mode 700
        txn.json           its marker: tool, OUT and PID (removed last)
        work/              the converters' scratch (``ctx.workdir``), their TMPDIR too
        new/               the set being assembled
        old/               only without RENAME_EXCHANGE: the set being replaced
        journal.json       written just before the swap: where the set went

A run assembles its whole set in ``new/``: artifacts and companions, golden data,
``report.json``, ``report.md`` and, last, ``manifest.json`` (every file with its
sha256). A passing run then swaps ``new/`` with ``OUT`` in one
``renameat2(RENAME_EXCHANGE)``; the replaced set lands in ``new/``. A run whose gate
failed leaves the set at the top of ``OUT`` alone and swaps its own set (``"rejected":
true`` in its manifest and report) into ``OUT/rejected/`` the same way. Every other
ending swaps nothing.

What a run may delete: only entries of the replaced set that this tool wrote
(``manifest.our_entries``: the names its manifest lists, its records and check
reports, our ``rejected/``, converter logs with our marker) and its own transaction
folders. Right after the swap every other entry of the replaced set (a file a user
put into ``OUT``, before or during the run, with or without ``--force``) is moved
back into the swapped-in folder (``_settle``); then the transaction folder goes
(``txnfolder.remove``, the one place that deletes). A run refuses an ``OUT`` holding entries of
others unless ``--force``, and any run refuses to overwrite one (checked at the start
and again just before the swap).

Recovery after a kill (SIGKILL, power cut excepted): the next tool that takes the
lock finishes what the killed run left, but only in transaction folders that this
user created for this ``OUT``: exact name, a real folder owned by this user that
nobody else may write, and its marker (``txnfolder.is_ours``). The journal says only whether
the swap went to ``OUT`` or ``OUT/rejected``; no path is ever read from a file. A
folder that only looks like ours is left alone with a warning. Holding the lock
means no live run owns a transaction folder of ``OUT`` (no PID-liveness guess).

``OUT`` must not be a mount point nor hold one (both are renamed). Without
RENAME_EXCHANGE (a filesystem refusing it) the swap is two renames, ``OUT -> old/``
then ``new/ -> OUT``; the next run renames ``old/`` back when a kill fell between
them. Power loss is not covered (no directory fsync); kills are.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import uuid
from pathlib import Path

from .errors import ExportError, disk_full_error
from .fsutil import atomic_write, sha256_of, size_of
from .manifest import (
    MANIFEST,
    REJECTED,
    TOOL,
    converter_log,
    is_marked_log,
    listed,
    log_marker,
    our_entries,
    read_manifest,
    set_problems,
)
from .outlock import OutputLock, resolved
from .progress import warn
from .txnfolder import create, is_ours, remove, transaction_folders, txn_folder_name

JOURNAL = "journal.json"


def _settle(replaced: Path, target: Path) -> list[str]:
    """Move every entry of a replaced set that this tool did not write back into
    ``target`` (where that set was), recreating ``target`` if it is gone; returns the
    names that could not go back (taken there)."""
    if not replaced.is_dir() or replaced.is_symlink():
        return []
    keep = sorted(set(os.listdir(replaced)) - our_entries(replaced))
    if keep:
        target.mkdir(parents=True, exist_ok=True)
    stranded = []
    for name in keep:
        if os.path.lexists(target / name):
            stranded.append(name)
        else:
            os.rename(replaced / name, target / name)
    return stranded


def _swap_target(out_dir: Path, rejected: bool) -> Path:
    return out_dir / REJECTED if rejected else out_dir


def _finish(folder: Path, out_dir: Path) -> None:
    """Complete what the run of a transaction folder left and remove the folder: the
    replaced set renamed back if the swap stopped between its two renames, and entries
    that are not ours moved back where they were."""
    try:
        journal = json.loads((folder / JOURNAL).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        journal = None
    if isinstance(journal, dict) and isinstance(journal.get("rejected"), bool):
        target, old = _swap_target(out_dir, journal["rejected"]), folder / "old"
        if old.is_dir() and not os.path.lexists(target):
            os.rename(old, target)
        stranded = [name for replaced in (folder / "new", old) for name in _settle(replaced, target)]
        if stranded:
            raise ExportError(
                f"{folder} holds files of yours ({', '.join(stranded)}) whose names are taken in {target}; "
                f"move them yourself, then remove {folder}"
            )
    remove(folder, out_dir)


def recover_stale(out_dir: Path) -> None:
    """Finish what killed runs on ``out_dir`` left (call with its lock held), in the
    transaction folders this user created for it; others are left alone, with a warning."""
    for folder in transaction_folders(out_dir):
        if is_ours(folder, out_dir):
            _finish(folder, out_dir)
        else:
            warn(f"left alone: {folder} is named like a transaction folder of {out_dir}, but not created by this user")


def problems(out_dir: Path, foreign_ok: bool = False) -> list[str]:
    """Why ``out_dir`` is not one consistent set ([] when it is): every listed file
    present with its sha256, nothing unlisted (unless ``foreign_ok``), report and
    manifest of the same run, ``rejected/`` a consistent rejected set, no leftover
    transaction folder."""
    out_dir = Path(out_dir)
    found = [f"leftover transaction folder {p}" for p in transaction_folders(out_dir)]
    if not out_dir.is_dir():
        return found + [f"{out_dir} is not a folder"]
    found += set_problems(out_dir, rejected=False)
    if (out_dir / REJECTED).exists():
        found += [f"{REJECTED}/{p}" for p in set_problems(out_dir / REJECTED, rejected=True)]
    if not foreign_ok:
        found += [
            f"{name}: not listed in the manifest" for name in sorted(set(os.listdir(out_dir)) - our_entries(out_dir))
        ]
    return found


def _exchange(a: Path, b: Path) -> None:
    """Swap two paths atomically: Linux renameat2(RENAME_EXCHANGE) through ctypes
    (Python's os module has no binding for it; glibc >= 2.28 exports it)."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available", str(a))
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), rename_exchange) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(a), None, str(b))


@contextlib.contextmanager
def held(out_dir: Path, advice: str):
    """OUT's lock for a tool that reads a set (and may write its check reports beside
    it), after finishing what a killed export left; yields OUT resolved. A folder
    inside a set (``OUT/rejected``...) is refused first: its lock file and reports
    would be files that set does not list."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise ExportError(f"{out_dir}: no such folder")
    real, own, parent = resolved(out_dir), read_manifest(out_dir), read_manifest(resolved(out_dir).parent)
    rejected = (own is not None and own.get("rejected")) or (parent is not None and real.name == REJECTED)
    if rejected or (parent is not None and real.name in {path.split("/")[0] for path in listed(parent)}):
        what = "a rejected set (its gate failed)" if rejected else f"a part of the export set in {real.parent}"
        raise ExportError(
            f"{out_dir} is {what}; give the deliverable set at the top of an export folder (the one holding {MANIFEST})"
        )
    lock = OutputLock(out_dir, advice, reader=True)
    try:
        lock.acquire()
    except OSError as e:
        raise ExportError(f"{out_dir}: its lock file cannot be written beside it: {e.strerror or e}") from None
    try:
        recover_stale(lock.out_dir)
        yield lock.out_dir
    finally:
        lock.release()


def _mount_points_in(out_dir: Path) -> list[str]:
    """Mount points at or below ``out_dir``, bind mounts of the same filesystem included
    (psutil reads the mount table)."""
    import psutil

    inside = str(out_dir).rstrip("/") + "/"
    found = {p.mountpoint for p in psutil.disk_partitions(all=True)}
    return sorted(m for m in found if m == str(out_dir) or m.startswith(inside))


def _existing_ancestor_problem(out_dir: Path) -> str | None:
    """'<path> is a file' when the nearest existing ancestor of OUT is not a folder."""
    for ancestor in out_dir.parents:
        if os.path.lexists(ancestor):
            return None if ancestor.is_dir() else f"--out {out_dir}: {ancestor} is a file, not a folder"
    return None


def keep_converter_log(out_dir: Path, target: str, log_path: Path) -> str:
    """Copy a failed converter's log into OUT (marked as ours) so the failure can be
    read; returns where it is. A file of the user's under that name is never replaced."""
    kept = resolved(out_dir) / converter_log(target)
    if os.path.lexists(kept) and not is_marked_log(kept, target):
        return f"not kept ({kept} is not this tool's)"
    if log_path.is_file():
        kept.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(kept, log_marker(target) + log_path.read_bytes())
    return str(kept)


class Transaction:
    """``with Transaction(out_dir, force) as txn``: lock, recovery of killed runs, the
    checks of OUT; then ``txn.workdir`` for converters, ``txn.add``/``txn.add_written``
    to build the set and ``txn.commit`` to swap it in. A failure caused by a full
    filesystem leaves as the OSError (ENOSPC) naming the path (exit 3), whatever raised it."""

    def __init__(self, out_dir: Path, force: bool = False):
        self.out_dir = resolved(out_dir)
        self.force = force
        self.run_id = uuid.uuid4().hex
        self.root = self.out_dir.parent / txn_folder_name(self.out_dir.name, os.getpid())
        self.new_dir, self.workdir = self.root / "new", self.root / "work"
        self.records: list[dict] = []
        self.foreign: list[str] = []
        self._created = False
        self._lock = OutputLock(self.out_dir, "; wait for it to finish or choose another --out")

    def __enter__(self) -> Transaction:
        out = self.out_dir
        problem = _existing_ancestor_problem(out)
        if problem:
            raise ExportError(problem)
        mounted = _mount_points_in(out)
        if out.is_dir() and (str(out) in mounted or out.stat().st_dev != out.parent.stat().st_dev):
            raise ExportError(
                f"--out {out} is a mount point; the new set replaces it by a rename on one "
                f"filesystem, so use a folder inside it (e.g. {out / 'export'})"
            )
        if mounted:
            raise ExportError(
                f"--out {out}: {mounted[0]} is a mount point inside it; a run moves the entries of OUT, "
                "which a mount point refuses: unmount it or choose another --out"
            )
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
        except OSError as e:
            raise ExportError(
                f"output folder {out} is not writable (its lock and staging folder live "
                f"beside it, in {out.parent}): {e.strerror or e}"
            ) from None
        try:
            recover_stale(out)
            self.foreign = self._inspect()
            create(self.root, out)
            self._created = True
            self.new_dir.mkdir()
            self.workdir.mkdir()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        full = None if exc is None else disk_full_error(exc, self.root)  # before the clean-up frees space
        self.close()
        if full is not None and full is not exc:
            raise full from exc

    def close(self) -> None:
        """Finish and remove the transaction folder (undoing a swap interrupted between
        its two renames, moving users' entries back) and release the lock; a second
        call does nothing."""
        if not self._lock.held:
            return
        try:
            if self._created:
                self._created = False
                _finish(self.root, self.out_dir)
        finally:
            self._lock.release()

    def _inspect(self) -> list[str]:
        """Names in OUT this tool did not write; refused unless --force."""
        out = self.out_dir
        if os.path.lexists(out) and not out.is_dir():
            raise ExportError(f"--out {out} exists and is not a folder")
        if not out.is_dir():
            return []
        foreign = sorted(set(os.listdir(out)) - our_entries(out))
        if foreign and not self.force:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise ExportError(
                f"{out} holds files this tool did not write ({shown}); use an empty or new folder, "
                "or --force to write beside them (they are kept)"
            )
        return foreign

    def add(self, src: Path, name: str | None = None) -> dict:
        """Move a finished file or folder into the new set; returns its manifest record."""
        name = name or Path(src).name
        dst = self.new_dir / name
        if os.path.lexists(dst):
            if sha256_of(dst) != sha256_of(src):
                raise ExportError(f"two artifacts of this run want different {name} files")
            remove(Path(src), self.out_dir)
            return next(r for r in self.records if r["path"] == name)
        os.replace(src, dst)
        return self.add_written(name)

    def add_written(self, name: str) -> dict:
        """Record a file already written into ``new_dir``."""
        path = self.new_dir / name
        record = {"path": name, "sha256": sha256_of(path), "size_bytes": size_of(path)}
        self.records.append(record)
        return record

    def commit(self, manifest: dict, rejected: bool) -> Path:
        """Write the manifest (last) and swap the set in, as OUT or as OUT/rejected; then
        move every entry of the replaced set that this tool did not write back."""
        target = _swap_target(self.out_dir, rejected)
        if rejected:
            self.out_dir.mkdir(exist_ok=True)
            if os.path.lexists(target) and REJECTED not in our_entries(self.out_dir):
                raise ExportError(
                    f"{target} is in the way and was not written by this tool; move it or choose another --out"
                )
        theirs = set(os.listdir(target)) - our_entries(target) if target.is_dir() else set()
        in_the_way = sorted(set(os.listdir(self.new_dir)) & theirs)  # checked again now: OUT may have changed
        if in_the_way:
            raise ExportError(
                f"{target / in_the_way[0]} is in the way and was not written by this tool; "
                "move it or choose another --out"
            )
        atomic_write(
            self.new_dir / MANIFEST,
            json.dumps(
                {"tool": TOOL, "run_id": self.run_id, "rejected": rejected, **manifest, "files": self.records}, indent=2
            )
            + "\n",
        )
        atomic_write(self.root / JOURNAL, json.dumps({"rejected": rejected}))
        _swap_in(self.new_dir, target, self.root / "old")
        for replaced in (self.new_dir, self.root / "old"):
            _settle(replaced, target)  # a name taken meanwhile stays in the transaction folder: close() says so
        return target


def _swap_in(new: Path, target: Path, old: Path) -> None:
    if not os.path.lexists(target):
        os.rename(new, target)
        return
    try:
        _exchange(new, target)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
        os.rename(target, old)  # a kill between these two renames is undone by recover_stale
        os.rename(new, target)
