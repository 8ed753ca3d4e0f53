"""``python -m benchmarks`` (``make bench``): latency, size, memory and compute of
every format, the naive export next to ours, and top-1 on digits per format."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from casvit import VARIANTS

from .accuracy import ACCURACY_TARGETS
from .bench import LATENCY_TARGETS, add_timing_arguments

RESULTS = Path(__file__).resolve().parent / "results"
SMOKE = dict(
    variants="tiny",
    res=64,
    threads="1",
    repeats=1,
    warmup=1,
    round_size=1,
    targets="onnx,tflite",
    accuracy_variants="tiny",
    accuracy_targets="onnx",
    accuracy_res=64,
    epochs=1,
    train_limit=64,
    test_limit=40,
    naive=False,
)


def _list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    g = p.add_argument_group("latency")
    g.add_argument("--variants", default="xs,s,m,t", help=f"comma-separated, from {', '.join(VARIANTS)}")
    g.add_argument("--res", type=int, default=224, help="square input resolution (multiple of 32)")
    add_timing_arguments(g)
    g.add_argument(
        "--targets",
        default=",".join(LATENCY_TARGETS),
        help="export targets timed besides eager torch (Core ML has no Linux runtime; it is in the accuracy part)",
    )
    g.add_argument("--no-naive", dest="naive", action="store_false", help="skip the naive export comparison")
    g = p.add_argument_group("peer toolchains (litert-torch, ExecuTorch; needs `make peers-setup`)")
    g.add_argument(
        "--peers",
        action="store_true",
        help="also convert, check and time the peer toolchains next to "
        "our .tflite files (make bench PEERS=1); uses --res, --threads, --repeats, --warmup, --round-size",
    )
    g.add_argument("--peers-variant", default="xs", help="the variant the peers are converted from")
    g = p.add_argument_group("accuracy (scikit-learn digits)")
    g.add_argument("--accuracy-variants", default="xs,tiny", help="variants trained and evaluated on digits")
    g.add_argument("--accuracy-targets", default=",".join(ACCURACY_TARGETS), help="export targets evaluated")
    g.add_argument("--accuracy-res", type=int, default=64, help="digits are upsampled to this size")
    g.add_argument("--epochs", type=int, default=12, help="training epochs when a digits checkpoint is missing")
    g.add_argument("--train-threads", type=int, default=1, help="torch threads for training (part of reproducibility)")
    g.add_argument(
        "--checkpoint-dir",
        type=Path,
        default=Path("out/digits"),
        help="digits checkpoints are read from (or trained into) this folder",
    )
    g.add_argument("--calib-count", type=int, default=100, help="training images used for int8 calibration")
    g.add_argument("--train-limit", type=int, default=None, help="train on the first N training images only")
    g.add_argument("--test-limit", type=int, default=None, help="evaluate on the first N test images only")
    g = p.add_argument_group("run")
    what = g.add_mutually_exclusive_group()
    what.add_argument("--skip-accuracy", action="store_true", help="latency part only")
    what.add_argument("--only-accuracy", action="store_true", help="accuracy part only")
    what.add_argument(
        "--render-only",
        action="store_true",
        help="only rewrite the markdown and PNG files from the JSON files already in --out",
    )
    g.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"results folder (JSON, markdown, PNG) [{RESULTS}; with --smoke: out/bench-smoke]",
    )
    g.add_argument("--work", type=Path, default=Path("out/bench"), help="folder for exported artifacts")
    g.add_argument("--note", default="", help="a remark stored with the results (e.g. on machine load)")
    g.add_argument(
        "--smoke",
        action="store_true",
        help="one-minute check of the whole pipeline (what the tests run): "
        + ", ".join(f"{k}={v}" for k, v in SMOKE.items()),
    )
    return p


_T0 = time.perf_counter()


def log(message: str) -> None:
    print(f"[bench {time.perf_counter() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.smoke:
        for k, v in SMOKE.items():
            setattr(args, k, v)
    args.out = args.out or (Path("out/bench-smoke") if args.smoke else RESULTS)
    variants, acc_variants = _list(args.variants), _list(args.accuracy_variants)
    targets, acc_targets = _list(args.targets), _list(args.accuracy_targets)
    unknown = [v for v in variants + acc_variants if v not in VARIANTS]
    unknown += [t for t in targets if t not in LATENCY_TARGETS] + [t for t in acc_targets if t not in ACCURACY_TARGETS]
    unknown += [] if args.peers_variant in VARIANTS else [args.peers_variant]
    if unknown or args.res % 32 or args.accuracy_res % 32 or args.repeats < 1:
        parser.error(
            f"unknown (or, for latency, unsupported) variants/targets: {', '.join(unknown)}"
            if unknown
            else "resolutions must be multiples of 32 and --repeats at least 1"
        )
    from . import accuracy, bench, report
    from .train_digits import default_checkpoint

    if args.render_only:
        render(args.out)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    if args.smoke:  # never leave a smoke checkpoint where real runs would pick it up
        args.checkpoint_dir = args.out / "checkpoints"
    machine = {**report.machine(), "note": args.note}
    smoke_args = ["--tflite-precisions", "fp32"] if args.smoke else []
    if not args.only_accuracy:
        latency = bench.run(
            variants,
            args.res,
            [int(t) for t in _list(args.threads)],
            args.repeats,
            args.warmup,
            args.round_size,
            args.work / "latency",
            targets,
            smoke_args,
            args.naive,
            args.memory,
            log,
        )
        report.write_json(args.out / "bench.json", {"machine": machine, "latency": latency})
        render(args.out, "bench")
    if args.peers and not args.only_accuracy:
        from .peers import part

        result = part.run(
            args.peers_variant,
            args.res,
            [int(t) for t in _list(args.threads)],
            args.repeats,
            args.warmup,
            args.round_size,
            args.work / "peers",
            log,
        )
        report.write_json(args.out / "peers.json", {"machine": machine, **result})
        render(args.out, "peers")
    if not args.skip_accuracy:
        records = [
            accuracy.run(
                v,
                args.accuracy_res,
                args.work / "accuracy",
                default_checkpoint(v, args.checkpoint_dir),
                args.epochs,
                tuple(acc_targets),
                calib_count=args.calib_count,
                train_limit=args.train_limit,
                test_limit=args.test_limit,
                train_threads=args.train_threads,
                extra_args=smoke_args,
                log=log,
            )
            for v in acc_variants
        ]
        report.write_json(args.out / "accuracy.json", {"machine": machine, "accuracy": records})
        render(args.out, "accuracy")
    return 0


def render(out: Path, *parts: str) -> None:
    """Markdown and PNG from ``bench.json`` / ``accuracy.json`` / ``peers.json`` in ``out`` (those present)."""
    import json

    from export.fsutil import atomic_write

    from . import report

    for part in parts or ("bench", "accuracy", "peers"):
        path = out / f"{part}.json"
        if not path.is_file():
            continue
        result = json.loads(path.read_text())
        if part == "peers":
            from .peers import table

            atomic_write(out / "peers.md", report._machine_line(result["machine"]) + "\n\n" + table.markdown(result))
            table.plot(result, out / "peers.png")
        elif part == "bench":
            atomic_write(out / "bench.md", report.bench_markdown(result))
            report.latency_plot(result["latency"], out / "latency.png")
        else:
            atomic_write(out / "accuracy.md", report.accuracy_markdown(result))
            report.accuracy_plot(result["accuracy"], out / "accuracy_size.png")
        log(f"wrote {path}, {part}.md and its plot")


if __name__ == "__main__":
    sys.exit(main())
