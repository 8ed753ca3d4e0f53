"""The output folder ``OUT`` as one transaction.

After any run, whatever ended it (pass, gate failure, bad input, exception,
SIGINT/SIGTERM/SIGKILL at any moment, a full disk), ``OUT`` holds either the
complete previous set or the complete new one.

Layout beside ``OUT`` (same filesystem, so every rename below is atomic)::

    .<name>.lock           flock()ed for the whole run, holds the PID of its holder
    .<name>.txn-<pid>/     this run's transaction folder
        work/              the converters' scratch (``ctx.workdir``), their TMPDIR too
        new/               the set being assembled
        old/               only without RENAME_EXCHANGE: the set being replaced
        journal.json       written just before the swap: what to put back after a kill

A run assembles its whole set in ``new/``: artifacts and companions, golden data,
``report.json``, ``report.md`` and, last, ``manifest.json`` (every file with its
sha256). A passing run then swaps ``new/`` with ``OUT`` in one
``renameat2(RENAME_EXCHANGE)``; the old set, an older ``rejected/`` included, lands
in ``new/`` and goes with the transaction folder. A run whose gate failed leaves
the set at the top of ``OUT`` alone and swaps its own set (``"rejected": true`` in
its manifest and report) into ``OUT/rejected/`` the same way, so a rejected file can
never be mistaken for a deliverable nor make the previous set look replaced. Every
other ending swaps nothing. The transaction folder is removed on the way out; after
a SIGKILL the next run on ``OUT`` removes it: that run holds the lock, so no live
run owns any transaction folder of ``OUT`` (no PID-liveness guess is needed).

Entries of ``OUT`` we did not write (not in its manifest, not our reports, logs or
``rejected/``) are never deleted: a run refuses such a folder unless ``--force``,
which keeps them (moved back into ``OUT`` right after the swap; the journal lets
the next run finish that move after a kill) and refuses to overwrite one of them.

``OUT`` must not be a mount point (it is renamed); a folder inside one is fine.
Without RENAME_EXCHANGE (a filesystem refusing it) the swap is two renames,
``OUT -> old/`` then ``new/ -> OUT``; the next run renames ``old/`` back when a kill
fell between them. Power loss is not covered (no directory fsync); kills are.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import shutil
import uuid
from pathlib import Path

from . import targets
from .errors import ExportError
from .fsutil import atomic_write, sha256_of, size_of

MANIFEST, REPORT_JSON, REPORT_MD = "manifest.json", "report.json", "report.md"
RECORDS = (MANIFEST, REPORT_JSON, REPORT_MD)
REJECTED = "rejected"


def converter_log(target: str) -> str:
    """The name of a target's converter log, kept in OUT when its conversion fails (no set is swapped then)."""
    return f"{target}-converter.log"


# Reports that later checks write beside a set: ours, replaced with the set.
VERIFY_ARM_REPORTS = ("verify-arm.json", "verify-arm.md")  # make verify-arm
BENCH_REPORTS = ("bench.json", "bench.md")  # make bench OUT=... (python -m benchmarks.exported)
CHECK_REPORTS = VERIFY_ARM_REPORTS + BENCH_REPORTS
TOOL = "casvit-deploy"


def lock_path(out_dir: Path) -> Path:
    return out_dir.parent / f".{out_dir.name}.lock"


def transaction_folders(out_dir: Path) -> list[Path]:
    """Transaction folders of ``out_dir`` (ours, live or stale) and staging folders
    an older version of this tool left inside it."""
    found = list(out_dir.parent.glob(f".{out_dir.name}.txn-*"))
    if out_dir.is_dir():
        found += list(out_dir.glob(".staging-*"))
    return sorted(found)


def read_manifest(folder: Path) -> dict | None:
    """The manifest of one of our sets in ``folder``, or None."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ours = (
        isinstance(manifest, dict)
        and isinstance(manifest.get("files"), list)
        and (manifest.get("tool") == TOOL or "versions" in manifest)
    )  # "versions": manifests before "tool"
    return manifest if ours else None


def our_entries(folder: Path) -> set[str]:
    """Top-level names in ``folder`` this tool wrote: records, logs, listed files, our rejected/."""
    names = {converter_log(name) for name in targets.names()}
    manifest = read_manifest(folder)
    if manifest is not None:
        names.update(RECORDS, CHECK_REPORTS)
        names.update(Path(f["path"]).parts[0] for f in manifest["files"] if isinstance(f, dict) and f.get("path"))
    if (folder / REJECTED).is_dir() and (manifest is not None or read_manifest(folder / REJECTED) is not None):
        names.add(REJECTED)  # ours: a rejected set, or an older version's rejected/ beside our manifest
    return names


def problems(out_dir: Path, foreign_ok: bool = False) -> list[str]:
    """Why ``out_dir`` is not one consistent set ([] when it is): every listed file
    present with its sha256, nothing unlisted (unless ``foreign_ok``), report and
    manifest of the same run, ``rejected/`` a consistent rejected set, no staging."""
    out_dir = Path(out_dir)
    found = [f"leftover transaction folder {p}" for p in transaction_folders(out_dir)]
    if not out_dir.is_dir():
        return found + [f"{out_dir} is not a folder"]
    found += _set_problems(out_dir, rejected=False)
    if (out_dir / REJECTED).exists():
        found += [f"{REJECTED}/{p}" for p in _set_problems(out_dir / REJECTED, rejected=True)]
    if not foreign_ok:
        found += [
            f"{name}: not listed in the manifest" for name in sorted(set(os.listdir(out_dir)) - our_entries(out_dir))
        ]
    return found


def _set_problems(folder: Path, rejected: bool) -> list[str]:
    manifest = read_manifest(folder)
    if manifest is None:
        has_records = any((folder / name).exists() for name in RECORDS)
        return [f"{MANIFEST} missing or not ours"] if has_records or rejected else []
    found = []
    if bool(manifest.get("rejected")) != rejected:
        found.append(f"{MANIFEST} says rejected={manifest.get('rejected')}")
    for record in manifest["files"]:
        path = folder / record["path"]
        if not path.exists():
            found.append(f"{record['path']}: listed but missing")
        elif sha256_of(path) != record["sha256"]:
            found.append(f"{record['path']}: sha256 differs from the manifest")
    if rejected:
        listed = {Path(f["path"]).parts[0] for f in manifest["files"]} | set(RECORDS)
        found += [f"{name}: not listed in the manifest" for name in sorted(set(os.listdir(folder)) - listed)]
    try:
        report = json.loads((folder / REPORT_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return found + [f"{REPORT_JSON} missing or unreadable"]
    if "run_id" in manifest and report.get("run_id") != manifest["run_id"]:
        found.append(f"{REPORT_JSON} and {MANIFEST} come from different runs")
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


class OutputLock:
    """``flock()`` on OUT's lock file, held by every run that writes into OUT: an
    export for its whole transaction, ``make verify-arm`` while it checks a set and
    writes its reports beside it. A second run is refused at once, naming the holder."""

    def __init__(self, out_dir: Path, advice: str):
        self.out_dir, self.advice = Path(out_dir), advice
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        fd = os.open(lock_path(self.out_dir), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ExportError(f"{self.out_dir} is in use by another run (PID {holder}){self.advice}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock; the file stays (deleting it would race)
            self._fd = None

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class Transaction:
    """``with Transaction(out_dir, force) as txn``: lock, clean-up of stale
    transactions, the foreign-entry check; then ``txn.workdir`` for converters,
    ``txn.add``/``txn.add_written`` to build the set and ``txn.commit`` to swap it in."""

    def __init__(self, out_dir: Path, force: bool = False):
        self.out_dir = Path(out_dir)
        self.force = force
        self.run_id = uuid.uuid4().hex
        self.root = self.out_dir.parent / f".{self.out_dir.name}.txn-{os.getpid()}"
        self.new_dir, self.workdir = self.root / "new", self.root / "work"
        self.records: list[dict] = []
        self.foreign: list[str] = []
        self._lock = OutputLock(self.out_dir, "; wait for it to finish or choose another --out")

    def __enter__(self) -> Transaction:
        out = self.out_dir
        if out.is_dir() and (os.path.ismount(out) or out.stat().st_dev != out.parent.stat().st_dev):
            raise ExportError(
                f"--out {out} is a mount point; the new set replaces it by a rename on one "
                f"filesystem, so use a folder inside it (e.g. {out / 'export'})"
            )
        try:
            self.out_dir.parent.mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
        except OSError as e:
            raise ExportError(
                f"output folder {self.out_dir} is not writable (its lock and staging folder live "
                f"beside it, in {self.out_dir.parent}): {e.strerror or e}"
            ) from None
        try:
            recover_stale(self.out_dir)
            self.foreign = self._inspect()
            self.new_dir.mkdir(parents=True)
            self.workdir.mkdir()
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Remove the transaction folder (undoing a swap interrupted between its two
        renames) and release the lock; a second call does nothing."""
        if not self._lock.held:
            return
        try:
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
            shutil.rmtree(src) if Path(src).is_dir() else os.unlink(src)
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
        """Write the manifest (last) and swap the set in: as OUT, or as OUT/rejected."""
        in_the_way = sorted(set(os.listdir(self.new_dir)) & set(self.foreign)) if not rejected else []
        if in_the_way:
            raise ExportError(
                f"{self.out_dir / in_the_way[0]} is in the way and was not written by this tool; "
                "move it or choose another --out"
            )
        atomic_write(
            self.new_dir / MANIFEST,
            json.dumps(
                {"tool": TOOL, "run_id": self.run_id, "rejected": rejected, **manifest, "files": self.records}, indent=2
            )
            + "\n",
        )
        target = self.out_dir / REJECTED if rejected else self.out_dir
        if rejected:
            self.out_dir.mkdir(exist_ok=True)
            if os.path.lexists(target) and REJECTED in self.foreign:
                raise ExportError(
                    f"{target} is in the way and was not written by this tool; move it or choose another --out"
                )
        atomic_write(
            self.root / "journal.json", json.dumps({"target": str(target), "foreign": [] if rejected else self.foreign})
        )
        _swap_in(self.new_dir, target, self.root / "old")
        if not rejected:
            _put_back(self.foreign, [self.new_dir, self.root / "old"], self.out_dir)
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


def _put_back(names: list[str], sources: list[Path], out_dir: Path) -> None:
    """Move foreign entries (kept with --force) from the replaced set back into OUT."""
    for name in names:
        for source in sources:
            if os.path.lexists(source / name) and not os.path.lexists(out_dir / name):
                os.rename(source / name, out_dir / name)


def recover_stale(out_dir: Path) -> None:
    """Finish or undo what killed runs left (call with the lock held) and remove their
    transaction folders and the staging folders of older versions."""
    for folder in transaction_folders(out_dir):
        _finish(folder, out_dir)


def _finish(folder: Path, out_dir: Path) -> None:
    """Put a transaction folder's borrowed entries back where they belong, then remove it:
    the replaced set if the swap stopped between its two renames, and foreign entries."""
    try:
        journal = json.loads((folder / "journal.json").read_text())
    except (OSError, ValueError):
        journal = None
    if journal:
        target, old = Path(journal["target"]), folder / "old"
        if old.is_dir() and not os.path.lexists(target):
            os.rename(old, target)
        _put_back(journal.get("foreign", []), [folder / "new", old], out_dir)
        stranded = [
            n for n in journal.get("foreign", []) if os.path.lexists(folder / "new" / n) or os.path.lexists(old / n)
        ]
        if stranded:
            raise ExportError(
                f"{folder} holds files of yours ({', '.join(stranded)}) that could not be "
                f"moved back into {out_dir}; move them yourself, then remove {folder}"
            )
    shutil.rmtree(folder, ignore_errors=True)
