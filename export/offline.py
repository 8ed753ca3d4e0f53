"""Offline guarantees of an export, at two levels.

- Telemetry switched off at its source: ONNX Runtime (>= 1.29 on Linux/macOS)
  uploads 1DS telemetry to ``mobile.events.data.microsoft.com`` from native
  threads, invisible to Python. ``ORT_DISABLE_TELEMETRY=1`` in the environment
  before its first session is its full opt-out (no uploader, no device id);
  :func:`disable_telemetry` sets it when the ``export`` package is imported, so
  child processes inherit it too. TensorFlow, onnx2tf, coremltools and PyTorch
  were traced and send nothing (tests/test_offline_trace.py).
- A Python audit hook (:func:`no_network`) refuses and records any Python socket
  connection or host lookup during an export.

The OS-level proof is tests/test_offline_trace.py: a real export traced with
``strace -f -e trace=connect,sendto,sendmsg`` must show no AF_INET/AF_INET6
traffic and no DNS query."""

from __future__ import annotations

import contextlib
import os
import sys

from .errors import ExportError

# Environment switches that turn library telemetry off, with what they silence.
TELEMETRY_SWITCHES = {"ORT_DISABLE_TELEMETRY": ("1", "ONNX Runtime 1DS telemetry (mobile.events.data.microsoft.com)")}

_state = {"active": False, "attempts": []}
_EVENTS = ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto")
_LOCAL_FAMILIES = {1}  # AF_UNIX


class NetworkBlocked(ExportError):
    """Raised inside a guarded block on any network attempt."""


def disable_telemetry() -> None:
    """Set every telemetry switch (overriding a user value: exports are offline)."""
    for name, (value, _) in TELEMETRY_SWITCHES.items():
        os.environ[name] = value


def offline_checks(attempts: list[str]) -> dict:
    """What was checked during this run, for the report."""
    return {
        "python_audit_hook": {"events": list(_EVENTS), "attempts": len(attempts)},
        "telemetry_switched_off": {
            name: f"{os.environ.get(name)} ({what})" for name, (_, what) in TELEMETRY_SWITCHES.items()
        },
        "os_level": "not traced in this run; tests/test_offline_trace.py traces a real export with strace "
        "(connect/sendto/sendmsg: no AF_INET/AF_INET6 traffic, no DNS query)",
    }


def _hook(event: str, args: tuple) -> None:
    if not _state["active"] or event not in _EVENTS:
        return
    if event == "socket.connect" and getattr(args[0], "family", None) in _LOCAL_FAMILIES:
        return
    target = args[1] if event == "socket.connect" else args[0]
    _state["attempts"].append(f"{event} {target!r}")
    raise NetworkBlocked(f"network access attempted during export ({event} {target!r}); exports must run offline")


_installed = False


def record(attempts: list[str]) -> None:
    """Add attempts seen elsewhere (a converter's child process) to the active record."""
    if _state["active"]:
        _state["attempts"].extend(attempts)


@contextlib.contextmanager
def no_network():
    """Block and record network attempts for the duration; yields the attempt list."""
    global _installed
    if not _installed:
        sys.addaudithook(_hook)  # audit hooks cannot be removed: it is switched by _state
        _installed = True
    previous = _state["active"]
    _state["active"], _state["attempts"] = True, []
    try:
        yield _state["attempts"]
    finally:
        _state["active"] = previous
