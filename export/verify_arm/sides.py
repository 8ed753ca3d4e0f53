"""The two side installs of LiteRT (emulated ARM64 root, x86 --target folder) and
running runner.py in them on one output set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ExportError, first_line
from . import LITERT_VERSION, NUMPY_VERSION

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = REPO / ".cache" / "arm64"
SETUP_SCRIPT = Path(__file__).with_name("setup.sh")
RUNNER = Path(__file__).with_name("runner.py")
QEMU = "qemu-aarch64-static"
QEMU_CPU = "max"  # ARMv8.x/9 with FP16 arithmetic, dot-product and i8mm


class SetupFailed(ExportError):
    """The toolchain could not be installed (exit 2)."""


@dataclass(frozen=True)
class Side:
    """One place LiteRT runs: a command prefix and the folder holding its packages."""

    name: str
    command: tuple[str, ...]
    site: Path

    def tool_version(self) -> str:
        return first_line(subprocess.run([*self.command[:1], "--version"], capture_output=True, text=True).stdout)


def prepare(cache: Path = DEFAULT_CACHE, qemu_cpu: str = QEMU_CPU) -> tuple[Side, Side]:
    """Install what is missing (setup.sh, cached) and return the ARM64 side (emulating
    ``qemu_cpu``) and the x86 side."""
    cache = Path(cache).resolve()
    done = subprocess.run(
        ["bash", str(SETUP_SCRIPT), str(cache), sys.executable, LITERT_VERSION, NUMPY_VERSION],
        stderr=subprocess.STDOUT,  # its progress and the installers' lines: stderr is for the error line
    )
    if done.returncode != 0:
        raise SetupFailed(
            f"could not install the ARM64/x86 LiteRT {LITERT_VERSION} toolchain "
            f"({SETUP_SCRIPT.name} exited {done.returncode}; its messages are above)"
        )
    root = cache / "root"
    arm = Side(
        "arm64",
        (QEMU, "-cpu", qemu_cpu, "-L", str(root), str(root / "usr/bin/python3.11"), "-S"),
        root / "opt" / "site",
    )
    x86 = Side("x86_64", (sys.executable, "-S"), cache / "x86-site")
    return arm, x86


def run(side: Side, golden_path: Path, runs: list[dict]) -> tuple[dict[str, np.ndarray], dict]:
    """Logits per run key and the runner's info. A crash of the whole runner (LiteRT
    aborting on a model) is reported as the error of every run, not raised."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(side.site),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
    }
    with tempfile.TemporaryDirectory(prefix="verify-arm-") as tmp:
        job, out = Path(tmp) / "job.json", Path(tmp) / "logits.npz"
        job.write_text(json.dumps({"golden": str(Path(golden_path).resolve()), "out": str(out), "runs": runs}))
        done = subprocess.run([*side.command, str(RUNNER), str(job)], env=env, capture_output=True, text=True)
        if done.returncode != 0 or not out.is_file():
            error = f"runner exited {done.returncode}: {_last_line(done.stderr)}"
            return {}, {"runs": {r["key"]: {"arithmetic": r["arithmetic"], "error": error} for r in runs}}
        with np.load(out, allow_pickle=False) as data:
            info = json.loads(str(data["info"]))
            arrays = {k: data[k] for k in data.files if k != "info"}
    return arrays, info


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"
