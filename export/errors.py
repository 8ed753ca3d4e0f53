"""Errors the CLI turns into a one-line message and an exit code.

The mapping from an exception to (exit code, message) lives here and only here
(``outcome``): 0 passed, 1 an artifact failed its gate, 2 bad input, 3 the
environment failed mid-run (disk full, quota, read-only or lost permission, out of
memory), 130 interrupted (SIGINT), 143 terminated (SIGTERM), 4 an unexpected
internal error (a bug: ``--debug`` shows its traceback), 5 a converter (torch.onnx
export, onnxsim, onnx2tf, coremltools) crashed on input the tool had accepted."""

from __future__ import annotations

import argparse
import errno
from collections.abc import Iterator
from contextlib import contextmanager

EXIT_PASSED, EXIT_GATE, EXIT_INPUT, EXIT_ENVIRONMENT, EXIT_INTERNAL = 0, 1, 2, 3, 4
EXIT_CONVERTER = 5
EXIT_SIGINT, EXIT_SIGTERM = 130, 143  # 128 + signal number, as shells report them

# OSErrors that mean "the machine let us down", not "the user asked for something wrong".
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.ENOMEM}


def first_line(message: BaseException | str) -> str:
    """The first non-empty line of an exception's message or of a tool's output
    (tools raise multi-line errors and print banners)."""
    return (str(message).strip().splitlines() or [""])[0]


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
    """SIGTERM, turned into the same clean interruption path as Ctrl-C (exit 143)."""


def describe_os_error(e: OSError) -> str:
    """'No space left on device: /out/x.onnx' from an OSError."""
    where = e.filename or ""
    if e.filename2:
        where = f"{where} -> {e.filename2}"
    return f"{e.strerror or e}" + (f": {where}" if where else "")


def outcome(exc: BaseException) -> tuple[int, str]:
    """Exit code and one-line message for an exception that ended a run."""
    if isinstance(exc, Terminated):
        return EXIT_SIGTERM, "terminated (SIGTERM); the output folder is unchanged"
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_SIGINT, "interrupted; the output folder is unchanged"
    if isinstance(exc, GateFailure):
        return EXIT_GATE, first_line(exc)
    if isinstance(exc, EnvironmentFailure):
        return EXIT_ENVIRONMENT, first_line(exc)
    if isinstance(exc, ConverterCrash):
        return EXIT_CONVERTER, first_line(exc)
    if isinstance(exc, InternalError):
        return EXIT_INTERNAL, f"{first_line(exc)}; rerun with --debug for the traceback"
    if isinstance(exc, ExportError):
        return EXIT_INPUT, first_line(exc)
    if isinstance(exc, MemoryError):
        return EXIT_ENVIRONMENT, "out of memory; try a smaller --res or --batch, or free memory"
    if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
        return EXIT_ENVIRONMENT, f"the environment failed mid-run: {describe_os_error(exc)}"
    return EXIT_INTERNAL, f"{internal_message(exc)}; rerun with --debug for the traceback"


def internal_message(exc: BaseException) -> str:
    """'internal error (RuntimeError: ...)': the one line of an unexpected exception."""
    return f"internal error ({type(exc).__name__}: {first_line(exc)})"
