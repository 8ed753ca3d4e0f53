"""SIGINT and SIGTERM as one clean interruption path: both raise in the main
thread (KeyboardInterrupt, Terminated), and a library that swallows that exception
(onnx2tf and others have bare ``except:``) cannot turn the run into a success:
``raise_if_interrupted`` raises again before anything is promoted."""

from __future__ import annotations

import contextlib
import signal
import threading

from .errors import Terminated

_received: list[int] = []
_deferring: list[bool] = []


def _on_signal(signum, frame) -> None:
    _received.append(signum)
    if not _deferring:
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


@contextlib.contextmanager
def deferred():
    """Signals during the block are recorded, not raised: the block (the final swap)
    runs to its end, so "interrupted" always means "the output folder is unchanged"."""
    _deferring.append(True)
    try:
        yield
    finally:
        _deferring.pop()


def install() -> dict:
    """Route SIGINT and SIGTERM to ``_on_signal`` (main thread only); returns the
    previous handlers for ``restore``."""
    _received.clear()
    if threading.current_thread() is not threading.main_thread():
        return {}  # only the main thread may set handlers; Python's defaults stay
    return {signum: signal.signal(signum, _on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}


def restore(previous: dict) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def raise_if_interrupted() -> None:
    if _received:
        raise Terminated() if _received[-1] == signal.SIGTERM else KeyboardInterrupt()
