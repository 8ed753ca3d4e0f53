"""SIGINT and SIGTERM as one clean interruption path: both raise in the main
thread (KeyboardInterrupt, Terminated), and a library that swallows that exception
(onnx2tf and others have bare ``except:``) cannot turn the run into a success:
``raise_if_interrupted`` raises again before anything is promoted."""
from __future__ import annotations

import signal

from .errors import Terminated

_received: list[int] = []


def _on_signal(signum, frame) -> None:
    _received.append(signum)
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def install() -> None:
    """Route SIGINT and SIGTERM to ``_on_signal`` (main thread only)."""
    _received.clear()
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)


def raise_if_interrupted() -> None:
    if _received:
        raise Terminated() if _received[-1] == signal.SIGTERM else KeyboardInterrupt()
