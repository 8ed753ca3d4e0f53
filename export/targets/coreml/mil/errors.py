"""Errors of the reference interpreter."""


class ProgramError(ValueError):
    """The saved program cannot be interpreted (malformed, or outside what is supported)."""


class UnsupportedOpError(ProgramError):
    """The program uses an op the reference interpreter does not implement."""
