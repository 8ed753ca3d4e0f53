"""``python -m export``: the command line over ``export.api.export_model``. Its options
are the declarations of ``export.spec.ExportSpec`` and of each target's option record
(``export.options``); nothing is listed here by hand."""

from __future__ import annotations

import argparse
import sys
import traceback

from . import interrupts, options, targets
from .errors import EXIT_PASSED, GateFailure, OneLineParser, outcome
from .render import console_table
from .spec import ExportSpec, spec_from

DESCRIPTION = (
    "Export CAS-ViT to ONNX, TFLite and Core ML, audit the op set and verify parity against eager PyTorch. "
    "OUT changes as one transaction: it holds the previous or the new complete set (manifest.json lists every "
    "file with its sha256), never a mix."
)
EPILOG = (
    "exit codes (one line on stderr, no traceback): 0 passed; 1 an artifact failed its audit, parity or accuracy "
    "gate (the previous set in OUT is kept, this run's files and report go to OUT/rejected); 2 bad input (or OUT in "
    "use by another run); 3 the environment failed mid-run (disk full, out of memory, permission lost); 4 internal "
    "error (a bug; --debug shows the traceback); 5 a converter (torch.onnx.export, onnxsim, onnx2tf, coremltools) "
    "crashed on input the tool accepted; 129 hung up (SIGHUP); 130 interrupted (Ctrl-C); 143 terminated "
    "(SIGTERM). Through make the status is make's own (2 for any failed recipe): scripts that branch on these "
    "codes call python -m export."
)


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m export", description=DESCRIPTION, epilog=EPILOG)
    options.add_arguments(p, ExportSpec, "model, input and output")
    for target in targets.records():
        if target.options is not None:
            options.add_arguments(p, target.options, f"{target.name} target")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return p


def spec_of(argv: list[str]) -> ExportSpec:
    """The spec a command line describes (before the model source completes it)."""
    values = vars(build_parser().parse_args(argv))
    values.pop("debug")
    return spec_from(values)


def main(argv: list[str] | None = None) -> int:
    """Parse, run, and map the outcome to an exit code (``export.errors.outcome``)."""
    values = vars(build_parser().parse_args(argv))
    debug = values.pop("debug")
    previous_handlers = {}
    try:
        from . import pipeline  # noqa: F401 -- its heavy imports before signals raise (python -m export exits at once until here)
        from .api import export_model

        previous_handlers = interrupts.install()
        result = export_model(**values)
    except BaseException as e:  # noqa: BLE001 -- every ending becomes one line and a documented code
        if debug and not isinstance(e, KeyboardInterrupt):
            traceback.print_exc()
        if isinstance(e, GateFailure) and e.report:
            print(console_table(e.report, e.where))
        code, message = outcome(e)
        print(f"error: {message}", file=sys.stderr)
        return code
    finally:
        interrupts.restore(previous_handlers)
    print(console_table(result.report, result.out_dir))
    return EXIT_PASSED
