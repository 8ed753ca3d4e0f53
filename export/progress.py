"""Console lines of a run: progress on stdout (``log``), warnings on stderr
(``warn``), so stderr carries only warnings and the error line. Each line starts
with the seconds since start; names in it show control characters escaped. During
long stages a progress line comes at least every 10 s: a daemon thread repeats the
current stage with its elapsed time while the stage runs (converters in child
processes write to their own logs, so the console would otherwise go silent)."""

from __future__ import annotations

import contextlib
import sys
import threading
import time

from .errors import shown

_T0 = time.perf_counter()


def log(message: str) -> None:
    """A progress line on stdout, with the seconds since start."""
    _line(sys.stdout, message)


def warn(message: str) -> None:
    """A warning line on stderr, with the seconds since start."""
    _line(sys.stderr, f"WARNING: {message}")


def _line(stream, message: str) -> None:
    print(f"[{time.perf_counter() - _T0:7.1f}s] {shown(message)}", file=stream, flush=True)


INTERVAL_SECONDS = 9.0  # below the promised 10 s, leaving room for scheduling delays


@contextlib.contextmanager
def stage(name: str, interval: float = INTERVAL_SECONDS, announce: bool = True):
    """Log ``name`` now (if ``announce``), then ``name: still running (N s)`` every
    ``interval`` until the block ends, on the stdout of the block's start (a library
    silenced with ``redirect_stdout`` inside the block does not silence the beat)."""
    if announce:
        log(name)
    done, start, console = threading.Event(), time.monotonic(), sys.stdout

    def beat() -> None:
        while not done.wait(interval):
            _line(console, f"{name}: still running ({time.monotonic() - start:.0f} s)")

    thread = threading.Thread(target=beat, name="progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
