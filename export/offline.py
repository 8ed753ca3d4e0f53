"""Network guard: during an export any Python-level attempt to open a network
connection or resolve a host is refused and recorded, so an export provably
works with the network unreachable."""
from __future__ import annotations

import contextlib
import sys

from .errors import ExportError

_state = {"active": False, "attempts": []}
_EVENTS = {"socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto"}
_LOCAL_FAMILIES = {1}  # AF_UNIX


class NetworkBlocked(ExportError):
    """Raised inside a guarded block on any network attempt."""


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
