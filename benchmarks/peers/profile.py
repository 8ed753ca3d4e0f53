"""Per-op profile of the deploy graph inside XNNPACK, fp32 or PT2E int8 (run in .venv-peers):
``python -m benchmarks.peers.profile --variant xs --res 224 --threads 1 --runs 20 [--precision int8] --out DIR``.

LiteRT 2.3.0's Python API has no op profiler (its C API has ``LiteRtCompiledModelGetProfiler``
but the runtime option that switches profiling on is not exported from ``libLiteRt.so``),
so the per-op times come from XNNPACK's own runtime profiling as ExecuTorch records it in
an ETDump: every XNNPACK operator of the delegated graph (the same XNNPACK kernels LiteRT's
delegate runs) and every op left outside it, per run. Writes ``profile.json`` and
``profile.md`` with the share of time per op class."""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

from . import Peer

# XNNPACK operator names (e.g. "Convolution (NHWC, F32) DWConv #3") -> op class.
CLASSES = (
    ("depthwise", r"DWConv"),
    ("conv", r"^Convolution|^Fully Connected"),
    ("sigmoid", r"^Sigmoid"),
    ("GELU", r"^GELU"),
    ("mean", r"^Mean"),
    ("elementwise", r"^(Add|Multiply|Subtract|Divide)"),
    ("transpose/copy", r"^(Transpose|Copy|Constant Pad|Slice|Concatenate)"),
)
RUNTIME_EVENTS = ("Method::init", "Program::load_method", "Method::execute")


def op_class(event_name: str, delegated: bool) -> str:
    """The class of one profiled op: XNNPACK operators by name, ops outside the delegate as ``portable``."""
    if not delegated:
        return "delegate call overhead" if event_name == "DELEGATE_CALL" else "portable (outside XNNPACK)"
    return next((cls for cls, pattern in CLASSES if re.search(pattern, event_name)), "other")


def class_shares(events: list[tuple[str, bool, float]]) -> dict:
    """Per op class: summed median ms and its share of the summed op time.

    ``events`` are (name, delegated, median ms). ``DELEGATE_CALL`` and ``OPERATOR_CALL``
    are spans around the ops, not ops: they are left out here (see :func:`call_overhead_ms`)."""
    totals: dict[str, float] = {}
    for name, delegated, ms in events:
        if name not in ("DELEGATE_CALL", "OPERATOR_CALL"):
            cls = op_class(name, delegated)
            totals[cls] = totals.get(cls, 0.0) + ms
    whole = sum(totals.values()) or 1.0
    return {
        cls: {"ms": round(ms, 3), "share": round(ms / whole, 4)}
        for cls, ms in sorted(totals.items(), key=lambda kv: -kv[1])
    }


def call_overhead_ms(events: list[tuple[str, bool, float]]) -> float:
    """What the ``DELEGATE_CALL`` spans hold beyond their XNNPACK operators."""
    calls = sum(ms for name, _, ms in events if name == "DELEGATE_CALL")
    return round(max(0.0, calls - sum(ms for _, delegated, ms in events if delegated)), 3)


def profile(variant: str, res: int, threads: int, runs: int, precision: str = "fp32") -> dict:
    """Convert the deploy form with ExecuTorch (XNNPACK; int8 calibrated on our default
    calibration set), run it ``runs`` times with ETDump on."""
    import torch
    from executorch.devtools import Inspector
    from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
    from executorch.runtime import Runtime

    from .convert import calibration_batches, convert_executorch, seeded_model

    model = seeded_model(variant, "deploy")
    x = torch.randn(1, 3, res, res, generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory() as tmp:
        pte, etdump = Path(tmp) / "model.pte", Path(tmp) / "run.etdp"
        calibration = calibration_batches(res) if precision == "int8" else []
        partitions = convert_executorch(Peer("executorch", "deploy", precision), model, x, calibration, pte)[
            "partitions"
        ]
        _unsafe_reset_threadpool(threads)
        program = Runtime.get().load_program(str(pte), enable_etdump=True)
        method = program.load_method("forward")
        method.execute([x])  # warm-up run, dropped below
        walls = []
        for _ in range(runs):
            start = time.perf_counter()
            method.execute([x])
            walls.append((time.perf_counter() - start) * 1e3)
        program.write_etdump_result_to_file(str(etdump), str(Path(tmp) / "debug.bin"))
        frame = Inspector(etdump_path=str(etdump)).to_dataframe()
    events = [
        (row.event_name, bool(row.is_delegated_op), statistics.median(row.raw[1:] or row.raw))
        for row in frame.itertuples()
        if row.event_name not in RUNTIME_EVENTS
    ]
    ops = [(n, d, ms) for n, d, ms in events if n not in ("DELEGATE_CALL", "OPERATOR_CALL")]
    return {
        "variant": variant,
        "resolution": res,
        "precision": precision,
        "threads": threads,
        "runs": runs,
        "partitions": partitions,
        "wall_median_ms": round(statistics.median(walls), 3),
        "summed_median_ms": round(sum(ms for name, _, ms in events if name in ("DELEGATE_CALL", "OPERATOR_CALL")), 3),
        "classes": class_shares(events),
        "delegate_call_overhead_ms": call_overhead_ms(events),
        "xnnpack_ops": len([1 for _, d, _ in ops if d]),
    }


def markdown(result: dict) -> str:
    lines = [
        f"## {result.get('precision', 'fp32')} per-op profile, {result['variant']}@{result['resolution']}, "
        f"{result['threads']} thread(s)",
        "",
        f"XNNPACK per-operator times from ExecuTorch's ETDump (median of {result['runs']} runs per op), "
        f"{result['xnnpack_ops']} XNNPACK operators in {result['partitions']['delegated']} delegated "
        f"subgraphs; {result['summed_median_ms']} ms summed over the delegate and operator calls, "
        f"{result['wall_median_ms']} ms median wall time of one run (ETDump on); the delegate calls hold "
        f"{result['delegate_call_overhead_ms']} ms beyond their operators. Shares are of the summed op time.",
        "",
        "| op class | ms | share |",
        "|---|---:|---:|",
    ]
    lines += [f"| {cls} | {v['ms']:.3f} | {100 * v['share']:.1f} % |" for cls, v in result["classes"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.peers.profile", description=__doc__)
    p.add_argument("--variant", default="xs")
    p.add_argument("--res", type=int, default=224)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--precision", choices=("fp32", "int8"), default="fp32")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = p.parse_args(argv)
    from export.fsutil import atomic_write

    result = profile(args.variant, args.res, args.threads, args.runs, args.precision)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "profile" if args.precision == "fp32" else f"profile_{args.precision}"
    atomic_write(args.out / f"{stem}.json", json.dumps(result, indent=2) + "\n")
    atomic_write(args.out / f"{stem}.md", markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
