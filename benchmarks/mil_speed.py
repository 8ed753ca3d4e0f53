"""Seconds per image of the Core ML reference interpreter (``export.targets.coreml.mil``), this
tree's against an earlier commit's, interleaved round by round so both see the
same machine load; and how far their logits are apart.

    python -m benchmarks.mil_speed PACKAGE.mlpackage [--baseline COMMIT] [--images 16] [--batch 16] [--rounds 3]

The baseline is extracted with ``git archive`` into a temporary folder and
imported under another name, so nothing in the working tree changes.
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


def per_sample(program, x: np.ndarray) -> np.ndarray:
    """How the baseline runner fed the interpreter: one image per run, every output."""
    return np.concatenate([program.run({IMAGE: x[i : i + 1]})[LOGITS] for i in range(len(x))])


def batched(program, x: np.ndarray, batch: int) -> np.ndarray:
    return np.concatenate([program.run({IMAGE: x[i : i + batch]}, [LOGITS])[LOGITS] for i in range(0, len(x), batch)])


def timed(fn) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.mil_speed", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("package", type=Path, help="an .mlpackage with an RGB image input 'image' and a 'logits' output")
    p.add_argument("--baseline", default="84da118", help="commit whose interpreter is the baseline")
    p.add_argument("--images", type=int, default=16, help="images per timed run")
    p.add_argument("--batch", type=int, default=16, help="batch size of the current interpreter")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (baseline, then current, per round)")
    args = p.parse_args(argv)

    from export.targets.coreml.mil import Program

    current = Program.load(args.package)
    with tempfile.TemporaryDirectory() as tmp:
        old = baseline_package(args.baseline, Path(tmp)).Program.load(args.package)
    _, _, h, w = (d.constant.size for d in current.inputs[IMAGE].tensorType.dimensions)
    x = np.random.default_rng(0).integers(0, 256, (args.images, 3, h, w)).astype(np.float32)
    per_sample(old, x[:1]), batched(current, x[:1], 1)  # warm-up: first-touch page faults, BLAS threads
    old_times, new_times = [], []
    for r in range(args.rounds):
        t_old, ref = timed(lambda: per_sample(old, x))
        t_new, out = timed(lambda: batched(current, x, args.batch))
        old_times.append(t_old / len(x))
        new_times.append(t_new / len(x))
        print(
            f"round {r + 1}: baseline {old_times[-1]:.3f} s/image, current {new_times[-1]:.3f} s/image "
            f"(batch {args.batch})",
            flush=True,
        )
    diff = np.abs(out.astype(np.float64) - ref)
    print(
        f"{args.package.name}: median baseline {np.median(old_times):.3f} s/image, current "
        f"{np.median(new_times):.3f} s/image, speed-up {np.median(old_times) / np.median(new_times):.1f}x; "
        f"logits max |current - baseline| {diff.max():.3g} (max |logit| {np.abs(ref).max():.3g}), "
        f"top-1 equal {np.mean(out.argmax(1) == ref.argmax(1)):.0%}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
