"""Library chatter kept off the console.

Native libraries write straight to file descriptors 1 and 2, where Python's own
redirects cannot reach them: TensorFlow's C++ logging when coremltools imports it,
LiteRT's note that it created the XNNPACK delegate. :func:`captured` points both
descriptors at a temporary file while such a call runs (Python's ``sys.stdout`` and
``sys.stderr`` and warnings with them) and hands back what was written, for a log or
the report; nothing reaches the console. Converters that run in a child process
(``export.isolate``) write to their own log instead."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator


class Captured:
    """What a captured block wrote (``text``, filled when the block ends)."""

    text: str = ""

    def lines(self) -> list[str]:
        return [line for line in self.text.splitlines() if line.strip()]


@contextlib.contextmanager
def captured() -> Iterator[Captured]:
    """Run the block with descriptors 1 and 2 (and ``sys.stdout``/``sys.stderr``, and
    Python warnings) sent to a temporary file; the result's ``text`` holds it afterwards."""
    result = Captured()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = [os.dup(fd) for fd in (1, 2)]
        buffer = io.StringIO()
        try:
            for fd in (1, 2):
                os.dup2(sink.fileno(), fd)
            with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield result
        finally:
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            result.text = buffer.getvalue() + sink.read().decode("utf-8", "replace")
