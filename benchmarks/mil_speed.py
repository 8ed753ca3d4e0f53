"""Seconds per image of the Core ML reference interpreter (``export.targets.coreml.mil``)
against eager PyTorch and against an earlier commit's interpreter, interleaved round by
round so all see the same machine load; and how far the logits are from the earlier
interpreter's.

    python -m benchmarks.mil_speed PACKAGE.mlpackage ... [--baseline COMMIT] [--variant xs]
        [--images 16] [--batch 16] [--rounds 5] [--out benchmarks/results]

Eager is the variant's eval model (seeded weights; the time does not depend on them) on
the same batch, one torch thread, as the export's accuracy check runs it. Agreement with
the baseline, per package: fp32 programs as max |new - old| / max |old| (asked: 1e-6 at
most), fp16 programs (w8a8 included) as the largest difference in fp16 spacings at the
scale of the image's largest logit (asked: one; see ``agreement``). A package the baseline cannot run (it
lacks an op) is timed against eager only. The baseline is extracted with ``git
archive`` into a temporary folder and imported under another name, so nothing in the
working tree changes. Results: ``mil_speed.json`` and ``mil_speed.md`` in ``--out``.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
IMAGE, LOGITS = "image", "logits"
# Where the interpreter lived: today, and before the per-target packages.
MIL_PATHS = ("export/targets/coreml/mil", "export/mil")


def baseline_package(commit: str, into: Path):
    """The interpreter as it was at ``commit``, imported as the package ``baseline_mil``."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-tree", "--name-only", commit, *MIL_PATHS],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    folder = next(p for p in MIL_PATHS if p in listed)
    data = subprocess.run(["git", "-C", str(ROOT), "archive", commit, folder], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    init = into / folder / "__init__.py"
    spec = importlib.util.spec_from_file_location("baseline_mil", init, submodule_search_locations=[str(init.parent)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["baseline_mil"] = module
    spec.loader.exec_module(module)
    return module


def batched(program, x: np.ndarray, batch: int) -> np.ndarray:
    return np.concatenate([program.run({IMAGE: x[i : i + batch]}, [LOGITS])[LOGITS] for i in range(0, len(x), batch)])


def eager_runner(variant: str, x: np.ndarray, batch: int):
    """Eager PyTorch on ``x`` (0-255 pixels, normalized here as the accuracy check does)."""
    import torch

    from casvit import create_model
    from export.inputs import to_convention

    model = create_model(variant).eval()
    normalized = torch.from_numpy(to_convention(x.transpose(0, 2, 3, 1).astype(np.uint8), "normalized"))

    @torch.no_grad()
    def run():
        return np.concatenate([model(normalized[i : i + batch]).numpy() for i in range(0, len(x), batch)])

    return run


def agreement(new: np.ndarray, old: np.ndarray, fp32: bool) -> dict:
    """How far the current interpreter's logits are from the baseline's. For fp16 programs
    in fp16 spacings (ulps) at the scale of each image's largest |logit| (where the last
    conv's sums are rounded; a logit near zero is a cancellation, whose own spacing is
    far finer than its rounding error), and the share of logits more than one spacing
    at their own value apart."""
    new, old = new.astype(np.float64), old.astype(np.float64)
    diff = np.abs(new - old)
    out = {
        "max_abs": float(diff.max()),
        "max_rel": float(diff.max() / np.abs(old).max()),
        "top1_equal": float(np.mean(new.argmax(1) == old.argmax(1))),
    }
    if not fp32:
        row_ulp = np.spacing(np.abs(old).max(1, keepdims=True).astype(np.float16)).astype(np.float64)
        own_ulp = np.spacing(np.abs(old).astype(np.float16)).astype(np.float64)
        out["max_fp16_ulps"] = float((diff / row_ulp).max())
        out["share_beyond_own_ulp"] = float(np.mean(diff > own_ulp))
    out["within_asked"] = out["max_rel"] <= 1e-6 if fp32 else out["max_fp16_ulps"] <= 1.0
    return out


def timed(fn) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def measure(package: Path, old_mil, args) -> dict:
    """Interleaved rounds of eager, the current interpreter and (when it runs the package)
    the baseline's; medians in seconds per image."""
    import torch

    from export.targets.coreml.mil import Program

    current = Program.load(package)
    try:
        old = old_mil.Program.load(package)
    except old_mil.ProgramError as e:
        old, why = None, str(e).split(" (supported")[0]
    _, _, h, w = (d.constant.size for d in current.inputs[IMAGE].tensorType.dimensions)
    x = np.random.default_rng(0).integers(0, 256, (args.images, 3, h, w)).astype(np.float32)
    eager = eager_runner(args.variant, x, args.batch)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runners = {"eager": eager, "current": lambda: batched(current, x, args.batch)}
        if old is not None:
            runners["baseline"] = lambda: batched(old, x, args.batch)
        for run in runners.values():  # warm-up: first-touch page faults, kernel selection
            run()
        times = {name: [] for name in runners}
        outputs = {}
        for r in range(args.rounds):
            for name, run in runners.items():
                seconds, outputs[name] = timed(run)
                times[name].append(seconds / len(x))
            print(
                f"{package.name} round {r + 1}: "
                + ", ".join(f"{name} {t[-1]:.4f} s/image" for name, t in times.items()),
                flush=True,
            )
    finally:
        torch.set_num_threads(threads)
    med = {name: float(np.median(t)) for name, t in times.items()}
    kind = _kind(current)
    return {
        "package": package.name,
        "program": kind,
        "images": len(x),
        "batch": args.batch,
        "seconds_per_image": med,
        "rounds": times,
        "interpreter_over_eager": med["current"] / med["eager"],
        "speedup_over_baseline": med["baseline"] / med["current"] if old is not None else None,
        "agreement_with_baseline": agreement(outputs["current"], outputs["baseline"], kind == "fp32")
        if old is not None
        else None,
        "baseline_cannot_run": None if old is not None else why,
    }


def _kind(program) -> str:
    """fp32, fp16 or w8a8, from the program's ops."""
    from export.targets.coreml.mil import op_census

    types = set(op_census(program.spec))
    if "quantize" in types or "dequantize" in types:
        return "w8a8"
    return "fp16" if "cast" in types else "fp32"


def markdown(result: dict) -> str:
    from .report import _machine_line

    lines = [
        "# Core ML reference interpreter speed",
        "",
        _machine_line(result["machine"]),
        "",
        f"`{result['command']}`",
        "",
        f"Medians of {result['rounds']} interleaved rounds of {result['images']} images (batch "
        f"{result['batch']}, one torch thread); baseline: the interpreter of commit `{result['baseline']}`.",
        "",
        "| package | program | eager s/image | interpreter s/image | interpreter / eager | baseline s/image "
        "| speed-up | agreement with the baseline |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in result["packages"]:
        s = row["seconds_per_image"]
        a = row["agreement_with_baseline"]
        if a is None:
            agree = f"baseline cannot run it ({row['baseline_cannot_run']})"
        elif "max_fp16_ulps" in a:
            agree = (
                f"max {a['max_fp16_ulps']:.2g} fp16 ulp of the largest logit ({a['max_abs']:.2g}), "
                f"{a['share_beyond_own_ulp']:.1%} of logits over one ulp of their own, top-1 {a['top1_equal']:.0%}"
            )
        else:
            agree = f"max rel {a['max_rel']:.2g}, top-1 {a['top1_equal']:.0%}"
        lines.append(
            f"| {row['package']} | {row['program']} | {s['eager']:.4f} | {s['current']:.4f} | "
            f"{row['interpreter_over_eager']:.2f} | {s.get('baseline', float('nan')):.4f} | "
            f"{'' if row['speedup_over_baseline'] is None else format(row['speedup_over_baseline'], '.1f') + 'x'} "
            f"| {agree} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.mil_speed", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("packages", nargs="+", type=Path, help=".mlpackage files with an RGB image input and 'logits'")
    p.add_argument("--baseline", default="9d2d29c", help="commit whose interpreter is the baseline")
    p.add_argument("--variant", default="xs", help="the packages' variant (eager PyTorch runs its eval model)")
    p.add_argument("--images", type=int, default=16, help="images per timed run")
    p.add_argument("--batch", type=int, default=16, help="images per interpreter run and per eager call")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (eager, current, baseline per round)")
    p.add_argument("--out", type=Path, default=None, help="write mil_speed.json and mil_speed.md into this folder")
    args = p.parse_args(argv)

    from .report import machine, write_json

    with tempfile.TemporaryDirectory() as tmp:
        old_mil = baseline_package(args.baseline, Path(tmp))
    result = {
        "machine": machine(),
        "command": "python -m benchmarks.mil_speed " + " ".join(sys.argv[1:] if argv is None else argv),
        "baseline": args.baseline,
        "images": args.images,
        "batch": args.batch,
        "rounds": args.rounds,
        "packages": [measure(package, old_mil, args) for package in args.packages],
    }
    print(markdown(result))
    if args.out is not None:
        from export.fsutil import atomic_write

        args.out.mkdir(parents=True, exist_ok=True)
        write_json(args.out / "mil_speed.json", result)
        atomic_write(args.out / "mil_speed.md", markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
