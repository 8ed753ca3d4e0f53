"""Errors the CLI turns into a one-line message and a non-zero exit."""


class ExportError(Exception):
    """Bad input or a failed stage; the message is shown to the user as is."""


class GateFailure(ExportError):
    """An artifact failed its audit or parity gate (exit code 1, report kept)."""
