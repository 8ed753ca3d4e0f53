"""``python -m export``: one command for every target."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

from casvit import VARIANTS

from . import accuracy, interrupts, labelled_images, localize_report, preprocessing, targets
from .checks import failure_summary
from .errors import EXIT_PASSED, ExportError, GateFailure, OneLineParser, outcome
from .spec import ExportSpec, parse_resolution


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m export",
        description="Export CAS-ViT to ONNX, TFLite and Core ML, audit the op set and verify parity "
        "against eager PyTorch. OUT changes as one transaction: it holds the previous or the new "
        "complete set (manifest.json lists every file with its sha256), never a mix.",
        epilog="exit codes (one line on stderr, no traceback): 0 passed; 1 an artifact failed its audit, "
        "parity or accuracy gate (the previous set in OUT is kept, this run's files and report go to OUT/rejected); "
        "2 bad input (or OUT in use by another run); 3 the environment failed mid-run (disk full, "
        "out of memory, permission lost); 4 internal error (a bug; --debug shows the traceback); "
        "130 interrupted (Ctrl-C); 143 terminated (SIGTERM). Through make the status is make's own "
        "(2 for any failed recipe): scripts that branch on these codes call python -m export.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    g = p.add_argument_group("model")
    g.add_argument(
        "--target",
        default=",".join(targets.DEFAULT_TARGETS),
        help=f"comma-separated targets: {', '.join(targets.names())} or 'all'",
    )
    g.add_argument(
        "--variant",
        default="xs",
        choices=[*VARIANTS, "custom"],
        help="model variant ('tiny' is a test-only configuration; 'custom' takes the architecture from the checkpoint)",
    )
    g.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="official-format .pth (bare, {'model'}, {'model_ema'}, {'state_dict'}); without it "
        "seeded random weights are used and the report says NOT FOR DEPLOYMENT",
    )
    g.add_argument("--ema", action="store_true", help="use the checkpoint's 'model_ema' weights")
    g.add_argument(
        "--num-classes",
        type=int,
        default=None,
        help="class count, at least 1 (default: from the checkpoint, else 1000)",
    )
    g.add_argument(
        "--labels",
        type=Path,
        default=None,
        help="class names, one per line (default: ImageNet-1K names for 1000 classes)",
    )
    g.add_argument("--seed", type=int, default=0, help="seed for random weights and noise inputs (0 to 2**32-1)")
    g = p.add_argument_group("input and output")
    g.add_argument(
        "--res",
        default="224",
        help="input resolution, N or HxW; multiples of 32, bounded like --batch by the memory estimate "
        "and by 32-bit tensor sizes",
    )
    g.add_argument(
        "--batch",
        type=int,
        default=1,
        help="fixed batch size, 1 to 1024 (a memory estimate is printed for large runs; a run estimated "
        "over this machine's memory is refused)",
    )
    g.add_argument("--dynamic-batch", action="store_true", help="ONNX: dynamic batch dimension")
    g.add_argument(
        "--embed-normalization",
        action="store_true",
        help="put the record's mean/std inside the model: input is RGB in [0, --input-range] "
        "(Core ML image inputs and every .tflite always embed it)",
    )
    g.add_argument(
        "--input-range",
        type=float,
        default=1.0,
        choices=[1.0, 255.0],
        help="RGB scale of inputs with the normalization embedded (--embed-normalization, every .tflite)",
    )
    g.add_argument("--out", type=Path, default=Path("out"), help="output folder")
    g.add_argument(
        "--noise-inputs", type=int, default=2, help="seeded noise images added to the parity photos (0 to 256)"
    )
    g.add_argument(
        "--force",
        action="store_true",
        help="write into an OUT that holds files this tool did not write (they are kept, never "
        "overwritten); without it such a folder is refused",
    )
    g.add_argument("--debug", action="store_true", help="show the traceback of an error")
    g.add_argument(
        "--explain",
        action="store_true",
        help="per-layer localization (error against eager at every block boundary, report.md table and "
        "picture) for every artifact, not only for those that fail a gate",
    )
    labelled_images.add_arguments(p.add_argument_group("accuracy on your labelled images"))
    preprocessing.add_arguments(p.add_argument_group("preprocessing record (how images become inputs)"))
    for target in targets.records():
        if target.add_arguments is not None:
            target.add_arguments(p.add_argument_group(f"{target.name} target"))
    return p


def parse_targets(text: str) -> tuple[str, ...]:
    known = targets.names()
    names = [t.strip() for t in text.split(",") if t.strip()]
    if "all" in names:
        if names != ["all"]:
            raise ExportError(
                f"--target {text}: 'all' already means {','.join(known)}; give either all or a list of targets"
            )
        return known
    unknown = [t for t in names if t not in known]
    if unknown or not names:
        raise ExportError(f"unknown target {', '.join(unknown) or repr(text)}; choose from {', '.join(known)} or all")
    # registry order: a target comes after those whose artifacts it may reuse
    return tuple(t for t in known if t in names)


def spec_from_args(args: argparse.Namespace) -> ExportSpec:
    """The spec the arguments describe; ``export.preflight`` checks it (the pipeline calls it first)."""
    height, width = parse_resolution(args.res)
    generic = {
        "target",
        "variant",
        "checkpoint",
        "ema",
        "num_classes",
        "labels",
        "seed",
        "res",
        "batch",
        "dynamic_batch",
        "embed_normalization",
        "input_range",
        "out",
        "noise_inputs",
        "force",
        "debug",
        "explain",
    }
    return ExportSpec(
        targets=parse_targets(args.target),
        variant=args.variant,
        height=height,
        width=width,
        batch=args.batch,
        dynamic_batch=args.dynamic_batch,
        embed_normalization=args.embed_normalization,
        input_range=args.input_range,
        checkpoint=args.checkpoint,
        use_ema=args.ema,
        num_classes=args.num_classes,
        labels=args.labels,
        seed=args.seed,
        out_dir=args.out,
        noise_inputs=args.noise_inputs,
        force=args.force,
        explain=args.explain,
        options={k: v for k, v in vars(args).items() if k not in generic},
    )


def main(argv: list[str] | None = None) -> int:
    """Parse, run, and map the outcome to an exit code (``export.errors.outcome``)."""
    args = build_parser().parse_args(argv)
    previous_handlers = interrupts.install()
    try:
        from .pipeline import run

        spec = spec_from_args(args)
        report = run(spec)
    except BaseException as e:  # noqa: BLE001 -- every ending becomes one line and a documented code
        if args.debug and not isinstance(e, KeyboardInterrupt):
            traceback.print_exc()
        if isinstance(e, GateFailure) and e.report:
            print(summary_table(e.report, e.where))
        code, message = outcome(e)
        print(f"error: {message}", file=sys.stderr)
        return code
    finally:
        interrupts.restore(previous_handlers)
    print(summary_table(report, spec.out_dir))
    return EXIT_PASSED


def summary_table(report: dict, out_dir: Path) -> str:
    lines = [
        f"{'artifact':<46} {'size KiB':>9} {'max rel':>9} {'cosine':>10} {'centered':>9} "
        f"{'top-1':>6} {'top-5':>6}  status"
    ]
    for a in report["artifacts"]:
        m = a["parity"]["metrics"] if a.get("parity") else {}
        numbers = " ".join(
            f"{m[k]:>{w}.{p}}" if k in m else f"{'-':>{w}}"
            for k, w, p in (
                ("max_rel", 9, "2e"),
                ("min_cosine", 10, "6f"),
                ("min_centered_cosine", 9, "4f"),
                ("top1_agreement", 6, "2f"),
                ("top5_agreement", 6, "2f"),
            )
        )
        status = a["status"] + (f" ({failure_summary(a)})" if not a["passed"] else "")
        lines.append(f"{a['file']:<46} {a['size_bytes'] / 1024:>9.0f} {numbers}  {status}")
    if not report["weights"]["for_deployment"]:
        lines.append("NOTE: random weights -- these artifacts are NOT FOR DEPLOYMENT")
    lines += accuracy.console_lines(report)
    lines += localize_report.console_lines(report)
    lines.append(f"report: {out_dir / 'report.md'}")
    return "\n".join(lines)
