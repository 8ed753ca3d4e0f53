"""Run a converter in a child process, so that it cannot swallow the parent's
Ctrl-C (onnx2tf has bare ``except:``), change the parent's working folder or file
descriptors (onnx2tf) or its temp folder (coremltools).

The child (``python -m export.isolate JOB RESULT``) runs in its own session, so a
terminal's SIGINT reaches only the parent; the parent kills the child's whole
process group with SIGKILL when it is interrupted or terminated, then re-raises.
The kernel kills the child when the parent dies (even by SIGKILL).
The function and its arguments travel as a pickle file, the outcome comes back
the same way. The child's TMPDIR is a folder inside the run's transaction folder,
so nothing it leaves behind outlives the run (or the next run's clean-up). The
child runs under the same Python-level network guard as the parent; its attempts
are added to the parent's record."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import pickle
import signal
import subprocess
import sys
import traceback
from pathlib import Path

from . import offline
from .errors import (
    ENVIRONMENT_ERRNOS,
    ConverterCrash,
    EnvironmentFailure,
    ExportError,
    describe_os_error,
    disk_full_error,
    first_line,
    nearly_full,
)


def call(func, args: tuple, *, workdir: Path, label: str, log_path: Path, stage: str = "converting"):
    """``func(*args)`` in a child process with ``workdir`` as its working folder; its
    stdout/stderr go to ``log_path``. Raises ExportError for bad input, EnvironmentFailure
    for lost memory or a child killed by the system, OSError ENOSPC naming the path for a
    full disk (also when the child could not even write its log or result), ConverterCrash
    (naming ``label`` and ``stage``) when the converter raised or died otherwise."""
    job, result = workdir / f".{label}.job.pkl", workdir / f".{label}.result.pkl"
    tmp = workdir / f"tmp-{label}"
    tmp.mkdir(parents=True, exist_ok=True)
    with open(job, "wb") as f:
        pickle.dump((func, args), f)
    result.unlink(missing_ok=True)
    # PYTHONHASHSEED fixed: converters iterate over sets of names, and identical runs must give identical bytes
    env = {
        **os.environ,
        "TMPDIR": str(tmp),
        "PYTHONPATH": _import_path(),
        "PYTHONHASHSEED": "0",
        PARENT_ENV: str(os.getpid()),
    }
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "export.isolate", str(job), str(result)],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    try:
        code = proc.wait()
    except BaseException:  # Ctrl-C, SIGTERM: take the whole converter down, then go on unwinding
        _kill_group(proc)
        raise
    try:
        return _outcome(label, stage, code, result)
    except ExportError as e:
        if nearly_full(workdir) or DISK_FULL_TEXT in _tail(log_path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(workdir)) from e
        raise


DISK_FULL_TEXT = os.strerror(errno.ENOSPC)  # "No space left on device", as tracebacks and C libraries print it


def _tail(path: Path, size: int = 1 << 16) -> str:
    """The end of a log (empty when unreadable)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - size))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


PARENT_ENV = "CASVIT_EXPORT_PARENT_PID"


def _import_path() -> str:
    """The parent's import roots first, so the child imports the same ``export``."""
    here = str(Path(__file__).resolve().parents[1])
    return os.pathsep.join([here, *filter(None, [os.environ.get("PYTHONPATH")])])


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _outcome(label: str, stage: str, code: int, result: Path):
    try:
        with open(result, "rb") as f:
            status, value, attempts = pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError):
        if -code == signal.SIGKILL:
            raise EnvironmentFailure(
                f"{label}: the converter process was killed by the system (SIGKILL: out of memory?)"
            ) from None
        how = f"killed by signal {-code}" if code < 0 else f"exited with status {code} without a result"
        raise ConverterCrash(label, stage, f"the converter process was {how}") from None
    offline.record(attempts)
    if status == "ok":
        return value
    kind, message = value
    if kind == "disk_full":
        number, path = message
        raise OSError(number, os.strerror(number), path)
    if kind == "environment":
        raise EnvironmentFailure(f"{label}: {message}")
    if kind == "input":
        raise ExportError(message)
    raise ConverterCrash(label, stage, message)


def _describe(exc: BaseException) -> tuple[str, object]:
    """(kind, one-line message) of an exception in the child; ("disk_full", (errno, path))
    when a full disk caused it, seen through the exception chain (onnx2tf turns
    errors into sys.exit)."""
    full = disk_full_error(exc, os.getcwd())
    if full is not None:
        return "disk_full", (full.errno, full.filename)
    if isinstance(exc, MemoryError):
        return "environment", "out of memory"
    if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
        return "environment", describe_os_error(exc)
    if isinstance(exc, EnvironmentFailure):
        return "environment", first_line(exc)
    if isinstance(exc, ExportError):
        return "input", first_line(exc)
    return "failed", f"{type(exc).__name__}: {first_line(exc)}"


def _die_with_parent() -> None:
    """Have the kernel SIGKILL this child when its parent dies, even by SIGKILL, so no
    orphaned converter keeps writing (Linux prctl(PR_SET_PDEATHSIG); no library wraps it)."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if str(os.getppid()) != os.environ.get(PARENT_ENV):
        os._exit(1)  # the parent died before prctl took effect


def _child(job: str, result: str) -> None:
    _die_with_parent()
    with open(job, "rb") as f:
        func, args = pickle.load(f)
    with offline.no_network() as attempts:
        try:
            outcome = ("ok", func(*args))
        except BaseException as e:  # noqa: BLE001 -- everything is reported to the parent (onnx2tf uses sys.exit)
            with contextlib.suppress(OSError):  # a full disk may refuse the log too
                traceback.print_exc()
            outcome = ("error", _describe(e))
        attempts = list(attempts)
    tmp = f"{result}.tmp"
    with open(tmp, "wb") as f:
        pickle.dump((*outcome, attempts), f)
    os.replace(tmp, result)


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])
