"""Errors the CLI turns into a one-line message and a non-zero exit."""


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (tools raise multi-line errors)."""
    return (str(exc).strip().splitlines() or [""])[0]


class ExportError(Exception):
    """Bad input or a failed stage; the message is shown to the user as is."""


class GateFailure(ExportError):
    """An artifact failed its audit or parity gate (exit code 1, report kept)."""
