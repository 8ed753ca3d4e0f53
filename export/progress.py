"""A progress line at least every 10 s during long stages: a daemon thread repeats
the current stage with its elapsed time while the stage runs (converters in child
processes write to their own logs, so the console would otherwise go silent)."""

from __future__ import annotations

import contextlib
import threading
import time

from .context import log

INTERVAL_SECONDS = 9.0  # below the promised 10 s, leaving room for scheduling delays


@contextlib.contextmanager
def stage(name: str, interval: float = INTERVAL_SECONDS, announce: bool = True):
    """Log ``name`` now (if ``announce``), then ``name: still running (N s)`` every
    ``interval`` until the block ends."""
    if announce:
        log(name)
    done, start = threading.Event(), time.monotonic()

    def beat() -> None:
        while not done.wait(interval):
            log(f"{name}: still running ({time.monotonic() - start:.0f} s)")

    thread = threading.Thread(target=beat, name="progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
