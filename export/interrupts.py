"""SIGINT, SIGTERM and SIGHUP as one clean interruption path, from the first
instruction of ``python -m export`` to its exit.

- Start-up (``exit_at_once``, before the heavy imports): nothing is written yet, so
  a signal prints the run's one error line and ends the process at once (an
  exception raised inside a library's import left tracebacks, RecursionErrors and
  aborts behind).
- The run (``install``): the first signal raises in the main thread
  (KeyboardInterrupt, Terminated) so the transaction cleans up; later ones are only
  recorded, so the clean-up runs to its end and the run ends with one line. A
  library that swallows the exception (onnx2tf and others have bare ``except:``)
  cannot turn the run into a success: ``raise_if_interrupted`` raises again before
  anything is promoted.
- After the run (``ignore``): the exit code of the finished run stands."""

from __future__ import annotations

import contextlib
import os
import signal
import threading

from .errors import Terminated, outcome

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_received: list[int] = []
_deferring: list[bool] = []


def _exception(signum: int) -> KeyboardInterrupt:
    return KeyboardInterrupt() if signum == signal.SIGINT else Terminated(signum)


def _on_signal(signum, frame) -> None:
    _received.append(signum)
    if not _deferring and len(_received) == 1:
        raise _exception(signum)


def _exit_now(signum, frame) -> None:
    code, message = outcome(_exception(signum))
    os.write(2, f"error: {message}\n".encode())
    os._exit(code)


@contextlib.contextmanager
def deferred():
    """Signals during the block are recorded, not raised: the block (the final swap)
    runs to its end, so "interrupted" always means "the output folder is unchanged"."""
    _deferring.append(True)
    try:
        yield
    finally:
        _deferring.pop()


def _route(handler) -> dict:
    """Route every handled signal to ``handler`` (main thread only), except those the
    caller ignores (``nohup``, a background job of a script); returns the previous
    handlers for ``restore``."""
    if threading.current_thread() is not threading.main_thread():
        return {}  # only the main thread may set handlers; Python's defaults stay
    return {
        signum: signal.signal(signum, handler) for signum in SIGNALS if signal.getsignal(signum) is not signal.SIG_IGN
    }


def exit_at_once() -> None:
    """Start-up: a signal ends the process at once with its exit code and one line."""
    _route(_exit_now)


def install() -> dict:
    """The run: a signal raises once (see the module docstring); returns the previous handlers."""
    _received.clear()
    return _route(_on_signal)


def ignore() -> None:
    """After the run: its exit code stands."""
    _route(signal.SIG_IGN)


def restore(previous: dict) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def raise_if_interrupted() -> None:
    if _received:
        raise _exception(_received[0])
