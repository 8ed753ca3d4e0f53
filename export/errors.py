"""Errors the CLI turns into a one-line message and an exit code.

The mapping from an exception to (exit code, message) lives here and only here
(``outcome``; ``EXIT_CODES`` is the table the docs show): 0 passed, 1 an artifact
failed its gate, 2 bad input, 3 the environment failed mid-run (disk full, quota,
read-only or lost permission, out of memory), 129/130/143 hung up, interrupted or
terminated (SIGHUP, SIGINT, SIGTERM), 4 an unexpected internal error (a bug:
``--debug`` shows its traceback), 5 a converter (torch.onnx
export, onnxsim, onnx2tf, coremltools) crashed on input the tool had accepted. Messages show control characters of names
escaped (``shown``), so the error is always one line."""

from __future__ import annotations

import argparse
import errno
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager

EXIT_PASSED, EXIT_GATE, EXIT_INPUT, EXIT_ENVIRONMENT, EXIT_INTERNAL = 0, 1, 2, 3, 4
EXIT_CONVERTER = 5
EXIT_SIGHUP, EXIT_SIGINT, EXIT_SIGTERM = 129, 130, 143  # 128 + signal number, as shells report them
EXIT_CODES = {
    EXIT_PASSED: "every artifact passed; the new set is in `OUT`",
    EXIT_GATE: "an artifact failed its audit, parity or accuracy gate: `OUT` keeps the previous set, "
    "the run is in `OUT/rejected/`",
    EXIT_INPUT: "bad input (unknown target or variant, missing checkpoint, resolution not a multiple of 32, "
    "output folder not writable or holding files of others, `OUT` or a mount point inside it, `OUT` in use "
    "by another run (an export, `make verify-arm` or `make android-assets`), ...)",
    EXIT_ENVIRONMENT: "the environment failed mid-run (disk full, quota, read-only or lost permission, out of "
    "memory), naming what and where; a full disk names the path, whatever the stage",
    EXIT_INTERNAL: "internal error (a bug; rerun with `--debug` for the traceback)",
    EXIT_CONVERTER: "a converter (torch.onnx.export, onnxsim, onnx2tf, coremltools) crashed on a model the tool "
    "accepted: one line naming the converter and the stage; onnx2tf's log is kept as `OUT/tflite-converter.log`",
    EXIT_SIGHUP: "hung up (SIGHUP, e.g. the terminal closed): handled like SIGTERM",
    EXIT_SIGINT: "interrupted (Ctrl-C; a second Ctrl-C during the clean-up changes nothing)",
    EXIT_SIGTERM: "terminated (SIGTERM, e.g. `timeout`, `docker stop`)",
}

# OSErrors that mean "the machine let us down", not "the user asked for something wrong".
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.ENOMEM}


def first_line(message: BaseException | str) -> str:
    """The first non-empty line of an exception's message or of a tool's output
    (tools raise multi-line errors and print banners)."""
    return (str(message).strip().splitlines() or [""])[0]


def shown(text: str) -> str:
    """``text`` with control characters (newline, tab, escape, line separators...) as
    Python escapes: a name holding them stays on one line and cannot move the cursor."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr and exit 2:
    ``error: <message> (<hint>)``, the hint defaulting to ``see <prog> --help``."""

    def __init__(self, *args, hint: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.hint = hint or f"see {self.prog} --help"

    def error(self, message: str):
        self.exit(2, f"error: {message} ({self.hint})\n")


class ExportError(Exception):
    """Bad input (exit 2), and the base of the tool's other errors; the message is shown
    to the user as is."""

    exit_code = EXIT_INPUT


class GateFailure(ExportError):
    """An artifact failed its audit, parity or accuracy gate (exit code 1); the run's
    report (``export.report.RunReport``) and the folder its set went to (``where``) come with it."""

    exit_code = EXIT_GATE

    def __init__(self, message: str, report=None, where=None):
        super().__init__(message)
        self.report, self.where = report, where


class EnvironmentFailure(ExportError):
    """The machine failed the run (disk full, out of memory, permission lost): exit 3."""

    exit_code = EXIT_ENVIRONMENT


class InternalError(ExportError):
    """An unexpected error: a bug (exit 4); the original exception is its cause."""

    exit_code = EXIT_INTERNAL


class ConverterCrash(ExportError):
    """A converter raised (or its process died) on input the tool had accepted: exit 5.
    Its one line names the converter, the stage and the converter's own error."""

    exit_code = EXIT_CONVERTER

    def __init__(self, converter: str, stage: str, detail: str):
        super().__init__(f"{converter} crashed while {stage}: {detail}")
        self.converter, self.stage = converter, stage


@contextmanager
def converter_step(converter: str, stage: str) -> Iterator[None]:
    """Run one in-process converter call: an exception of the converter's own becomes a
    ConverterCrash; the tool's errors, interruptions, memory and disk failures pass as they are."""
    try:
        yield
    except (ExportError, KeyboardInterrupt, MemoryError):
        raise
    except OSError as e:
        if e.errno in ENVIRONMENT_ERRNOS:
            raise
        raise ConverterCrash(converter, stage, f"{type(e).__name__}: {first_line(e)}") from e
    except Exception as e:
        raise ConverterCrash(converter, stage, f"{type(e).__name__}: {first_line(e)}") from e


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, turned into the same clean interruption path as Ctrl-C (exit 143, 129)."""

    def __init__(self, signum: int = signal.SIGTERM):
        super().__init__()
        self.signum = signum


def describe_os_error(e: OSError) -> str:
    """'No space left on device: /out/x.onnx' from an OSError."""
    where = e.filename or ""
    if e.filename2:
        where = f"{where} -> {e.filename2}"
    return f"{e.strerror or e}" + (f": {where}" if where else "")


def outcome(exc: BaseException) -> tuple[int, str]:
    """Exit code and one-line message for an exception that ended a run."""
    code, message = _outcome(exc)
    return code, shown(message)


def _outcome(exc: BaseException) -> tuple[int, str]:
    if isinstance(exc, Terminated) and exc.signum == signal.SIGHUP:
        return EXIT_SIGHUP, "hung up (SIGHUP); the output folder is unchanged"
    if isinstance(exc, Terminated):
        return EXIT_SIGTERM, "terminated (SIGTERM); the output folder is unchanged"
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_SIGINT, "interrupted; the output folder is unchanged"
    if isinstance(exc, GateFailure):
        return EXIT_GATE, str(exc).strip()
    if isinstance(exc, EnvironmentFailure):
        return EXIT_ENVIRONMENT, str(exc).strip()
    if isinstance(exc, ConverterCrash):
        return EXIT_CONVERTER, first_line(exc)
    if isinstance(exc, InternalError):
        return EXIT_INTERNAL, f"{first_line(exc)}; rerun with --debug for the traceback"
    if isinstance(exc, ExportError):
        return EXIT_INPUT, str(exc).strip()  # our own wording: names in it are shown whole, escaped
    if isinstance(exc, MemoryError):
        return EXIT_ENVIRONMENT, "out of memory; try a smaller --res or --batch, or free memory"
    if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
        return EXIT_ENVIRONMENT, f"the environment failed mid-run: {describe_os_error(exc)}"
    return EXIT_INTERNAL, f"{internal_message(exc)}; rerun with --debug for the traceback"


def internal_message(exc: BaseException) -> str:
    """'internal error (RuntimeError: ...)': the one line of an unexpected exception."""
    return f"internal error ({type(exc).__name__}: {first_line(exc)})"


DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# A failure while the filesystem has less room than this is taken for a full disk: a
# write refused for lack of space has filled the filesystem up to its last blocks
# (a failing tool may report it without errno, e.g. NumPy's "N requested and M written").
NEARLY_FULL_BYTES = 1 << 20


def free_bytes(folder) -> int | None:
    """Bytes an unprivileged user may still write on the filesystem of ``folder`` (None if unknown)."""
    for path in (folder, os.path.dirname(os.fspath(folder))):
        try:
            st = os.statvfs(path)
        except OSError:
            continue
        return st.f_bavail * st.f_frsize
    return None


def disk_full_error(exc: BaseException, folder) -> OSError | None:
    """The disk-full OSError (ENOSPC or EDQUOT, naming a path: the failing file's, else
    ``folder``) behind a failure of a run writing into ``folder``; None when the failure
    has another cause. Seen through the exception chain (a library re-raising, onnx2tf
    turning errors into sys.exit), and any failure but bad input while ``folder``'s
    filesystem is nearly full (an errno-less short write, a converter whose own log
    could not be written)."""
    if isinstance(exc, (KeyboardInterrupt, GeneratorExit, GateFailure)):
        return None
    seen, e = [], exc
    while e is not None and e not in seen:
        seen.append(e)
        if isinstance(e, OSError) and e.errno in DISK_FULL_ERRNOS:
            return e if e.filename else OSError(e.errno, os.strerror(e.errno), os.fspath(folder))
        e = e.__cause__ or e.__context__
    bad_input = isinstance(exc, ExportError) and exc.exit_code == EXIT_INPUT
    if not bad_input and nearly_full(folder):
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(folder))
    return None


def nearly_full(folder) -> bool:
    free = free_bytes(folder)
    return free is not None and free < NEARLY_FULL_BYTES
