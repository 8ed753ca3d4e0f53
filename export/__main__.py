"""``python -m export``: signals are handled from here on (``export.interrupts``)."""

from . import interrupts

interrupts.exit_at_once()  # before the heavy imports below

import sys  # noqa: E402

from .cli import main  # noqa: E402

code = main()
interrupts.ignore()
sys.exit(code)
