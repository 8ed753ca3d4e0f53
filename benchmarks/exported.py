"""``python -m benchmarks.exported OUT`` (``make bench OUT=folder``): latency of every
artifact of an exported set, as it is (no re-export), each in its target's benchmark
runtime, timed interleaved exactly as ``make bench`` times its rows
(``benchmarks.bench.measure``), on the set's first parity photo (its golden data) in
the artifact's input convention. The result is the table of ``make bench``
(``benchmarks.report.bench_markdown``), printed and written beside the set as
bench.json and bench.md with OUT's lock held. An artifact whose format has no Linux
runtime (Core ML) is a row saying so, not a timing.

Exit codes: 0 measured (a runtime that cannot load an artifact is a row with the
error), 2 bad input (or OUT in use), 3 the environment failed, 4 internal error."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from casvit import VARIANTS
from export import golden
from export import targets as export_targets
from export.errors import ExportError, OneLineParser, outcome
from export.exported import ExportedSet, locked
from export.fsutil import atomic_write
from export.inputs import to_convention
from export.manifest import BENCH_REPORTS

from . import flops, report
from .bench import add_timing_arguments, measure
from .runners import Config

_T0 = time.perf_counter()


def log(message: str) -> None:
    print(f"[bench {time.perf_counter() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m benchmarks.exported",
        description="Latency of every artifact of an exported set in its own runtime, interleaved; the table of "
        "make bench, written beside the set as bench.json and bench.md.",
        epilog="exit codes: 0 measured; 2 bad input (or OUT in use); 3 the environment failed; 4 internal error",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("out", type=Path, metavar="OUT", help="the output folder of an export")
    add_timing_arguments(p.add_argument_group("timing (as python -m benchmarks)"))
    p.add_argument("--note", default="", help="a remark stored with the results (e.g. on machine load)")
    return p


def configs_of(exported: ExportedSet, threads: list[int]) -> tuple[list[tuple[Config, dict]], dict, list[dict]]:
    """(config, row facts) per artifact and thread count, each config's input, and the
    rows of artifacts whose format has no benchmark runtime."""
    photo = golden.read(exported.out_dir / golden.FILE_NAME)["rgb"][:1]
    variant, record = exported.spec["variant"], exported.record
    configs, inputs, untimed = [], {}, []
    for artifact in exported.artifacts:
        entry = exported.entry(artifact.name)
        facts = {
            "family": artifact.format,
            "precision": artifact.precision,
            "size_bytes": entry["size_bytes"],
            "status": entry["status"],
            "nodes": sum(entry["audit"]["census"].values()),
        }
        runtime = export_targets.get(artifact.format).bench
        if runtime is None:
            status = f"not timed: {artifact.format} has no Linux runtime (it runs on Apple devices)"
            untimed.append({"variant": variant, "format": artifact.name, **facts, "status": status})
            continue
        x = to_convention(photo, artifact.input_convention, record.mean, record.std)
        for t in threads:
            cfg = Config.for_runtime(
                runtime,
                name=artifact.name,
                variant=variant,
                res=record.height,
                threads=t,
                path=str(artifact.path),
                input_convention=artifact.input_convention,
            )
            configs.append((cfg, facts))
            inputs[cfg.key] = x
    return configs, inputs, untimed


def run(exported: ExportedSet, threads: list[int], repeats: int, warmup: int, round_size: int, memory: bool) -> dict:
    """The latency part of a bench result for the set (``bench.json``'s ``latency``)."""
    s, record = exported.spec, exported.record
    configs, inputs, untimed = configs_of(exported, threads)
    gmacs = {
        s["variant"]: round(flops.variant_gmacs(s["variant"], record.height, record.width, s["num_classes"]), 4)
        if s["variant"] in VARIANTS
        else None
    }
    timed = measure(configs, gmacs, threads, repeats, warmup, round_size, memory, log, inputs)
    published = flops.PUBLISHED_GMACS.get(s["variant"]) if s["resolution"] == "224x224" else None
    return {
        "set": str(exported.out_dir),
        "run_id": exported.report["run_id"],
        "resolution": s["resolution"],
        **timed,
        "published_gmacs": {s["variant"]: published} if published else {},
        "rows": timed["rows"] + untimed,
        "naive": {},
    }


def _threads(text: str) -> list[int]:
    try:
        threads = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        threads = []
    if not threads or min(threads) < 1:
        raise ExportError(f"--threads {text!r}: expected comma-separated thread counts of at least 1")
    return threads


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    json_name, md_name = BENCH_REPORTS
    try:
        threads = _threads(args.threads)
        if args.repeats < 1 or args.warmup < 0 or args.round_size < 1:
            raise ExportError("--repeats and --round-size must be at least 1, --warmup at least 0")
        with locked(args.out, "benchmarking it") as exported:
            log(f"{exported.out_dir}: {len(exported.artifacts)} artifacts, threads {threads}")
            latency = run(exported, threads, args.repeats, args.warmup, args.round_size, args.memory)
            result = {"machine": {**report.machine(), "note": args.note}, "latency": latency}
            report.write_json(args.out / json_name, result)
            atomic_write(args.out / md_name, report.bench_markdown(result))
    except BaseException as e:  # noqa: BLE001 -- every ending becomes one line and a documented code
        code, message = outcome(e)
        print(f"error: {message}", file=sys.stderr)
        return code
    print(report.bench_markdown(result))
    print(f"bench: {args.out / md_name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
