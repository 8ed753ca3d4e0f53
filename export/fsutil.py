"""Atomic writes: a file or folder appears under its final name only when complete."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import nearly_full

_UMASK = os.umask(0)
os.umask(_UMASK)


_TMP = ".tmp"


def temporary_of(name: str, candidate: str) -> bool:
    """``candidate`` is the name of a temporary file ``atomic_write`` uses for ``name``."""
    return candidate.startswith(f".{name}.") and candidate.endswith(_TMP)


@contextmanager
def _replacing(path: Path):
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on any
    failure it is removed and ``path`` is left as it was."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_TMP)
    os.close(fd)
    try:
        with _naming(path):
            yield tmp
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def _naming(path: Path):
    """An OSError in the block names ``path``: a failed write() names no file, and
    NumPy reports a short write with neither errno nor path (taken for ENOSPC when the
    disk is nearly full)."""
    try:
        yield
    except OSError as e:
        if e.errno is None and nearly_full(Path(path).parent):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from e
        if e.filename is None and e.errno is not None:
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise


def atomic_write(path: Path, data: bytes | str) -> None:
    with _replacing(Path(path)) as tmp:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)


def atomic_copy(src: Path, dst: Path) -> None:
    """Copy a file's contents and permission bits to ``dst``, atomically."""
    with _replacing(Path(dst)) as tmp:
        shutil.copy(src, tmp)


def save_array(path: Path, array) -> None:
    """``np.save`` whose errors name the file (see ``_naming``)."""
    import numpy as np

    with _naming(path):
        np.save(path, array)


def sha256_of(path: Path) -> str:
    """sha256 of a file, or of a folder's files (relative names and contents, sorted)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def size_of(path: Path) -> int:
    path = Path(path)
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
