"""OUT's lock: one ``flock()``ed file beside OUT resolved, held by every tool that
uses OUT (export, verify-arm, android-assets). See ``export.outset`` for the
transaction it guards."""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

from .errors import ExportError


def resolved(out_dir: Path) -> Path:
    """OUT as one folder whatever its spelling (symbolic links and '..' resolved)."""
    return Path(os.path.realpath(out_dir))


def lock_path(out_dir: Path) -> Path:
    return out_dir.parent / f".{out_dir.name}.lock"


class OutputLock:
    """``flock()`` on OUT's lock file (OUT resolved: one lock per folder, whatever its
    spelling), held by every tool that uses OUT: an export for its whole transaction,
    ``make verify-arm`` while it checks a set and writes its reports beside it,
    ``make android-assets`` while it reads one. A second one is refused at once,
    naming the holder."""

    def __init__(self, out_dir: Path, advice: str, reader: bool = False):
        self.out_dir, self.advice, self.reader = resolved(out_dir), advice, reader
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock; a ``reader`` takes an existing lock file it may not write
        read-only (a set in a read-only place), without recording its PID."""
        path = lock_path(self.out_dir)
        writable = True
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        except OSError as e:
            if os.path.islink(path):  # ELOOP, or EACCES for a link planted in a sticky folder
                raise ExportError(f"{path} is a symbolic link; a lock file never is: remove it") from None
            if not (self.reader and e.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and path.is_file()):
                raise
            fd, writable = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), False
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ExportError(f"{path} is not a regular file; remove it or choose another folder")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ExportError(f"{self.out_dir} is in use by another run (PID {holder}){self.advice}") from None
        if writable:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock; the file stays (deleting it would race)
            self._fd = None
