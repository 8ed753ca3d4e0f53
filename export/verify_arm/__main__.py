"""``python -m export.verify_arm OUT``. Exit codes: 0 every gate passed, 1 a model
missed a gate (or LiteRT could not run it), 2 bad input (a folder that is not a
deliverable export set, a malformed manifest or report, a path leaving OUT), OUT in
use or no toolchain, 3 the environment failed (disk full...), 4 internal error,
130 interrupted. Every failure is one line on stderr.

OUT's lock (the export's, on OUT resolved) is held from reading the set to writing
the reports, so an export cannot swap a new set in between (the reports would then
describe files no longer there)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import OneLineParser, outcome, shown
from ..fsutil import atomic_write
from ..manifest import VERIFY_ARM_REPORTS
from ..outset import held
from .evaluate import verify
from .outputset import load
from .render import render_markdown
from .sides import DEFAULT_CACHE, QEMU_CPU, prepare

JSON_NAME, MD_NAME = VERIFY_ARM_REPORTS


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m export.verify_arm",
        description=__doc__.split("``.", 1)[1].strip(),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "out", type=Path, help="an export output folder (manifest.json, report.json, parity_inputs.npz, .tflite)"
    )
    p.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the ARM64 root and the x86 LiteRT are kept")
    p.add_argument(
        "--qemu-cpu",
        default=QEMU_CPU,
        help="CPU model qemu emulates (e.g. cortex-a57: ARMv8.0, no FP16 arithmetic, no dot-product)",
    )
    p.add_argument(
        "--no-fp16-arithmetic",
        dest="fp16_arithmetic",
        action="store_false",
        help="skip the forced-fp16 XNNPACK run of the float models",
    )
    p.add_argument(
        "--gate-fp16-arithmetic",
        action="store_true",
        help="fail (exit 1) when a float model misses the fp16 gate in fp16 arithmetic",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with held(args.out, "; wait for it to finish") as out:
            return _verify_locked(out, args)
    except BaseException as e:  # noqa: BLE001 -- every ending is one line and a documented code
        code, message = outcome(e)
        print(f"error: {message}", file=sys.stderr)
        return code


def _verify_locked(out: Path, args) -> int:
    output_set = load(out)
    arm, x86 = prepare(args.cache, args.qemu_cpu)
    report = verify(output_set, arm, x86, args.fp16_arithmetic, args.gate_fp16_arithmetic)
    atomic_write(out / JSON_NAME, json.dumps(report, indent=2) + "\n")
    atomic_write(out / MD_NAME, render_markdown(report))
    failed = [m["file"] for m in report["models"] if not m["passed"]]
    if failed:
        print(shown(f"verify-arm: FAILED: {', '.join(failed)} missed a gate; see {out / MD_NAME}"), file=sys.stderr)
        return 1
    print(
        shown(
            f"verify-arm: {len(report['models'])} models passed on ARM64 and x86 LiteRT {report['litert_version']}; "
            f"report: {out / MD_NAME}"
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
