"""The argument parser of every ``python -m export...`` command."""
from __future__ import annotations

import argparse


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr pointing at
    ``--help`` (exit 2), instead of argparse's usage block."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")
