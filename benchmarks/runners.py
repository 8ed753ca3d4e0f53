"""One benchmark configuration = one runtime holding one model at a thread count.

``make_runner(config)`` returns a zero-argument callable doing exactly one
inference on a fixed real photo. ``python -m benchmarks.runners CONFIG_JSON``
measures the peak memory of one configuration in a fresh process.
"""

from __future__ import annotations

import importlib
import json
import resource
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from export.targets.base import BenchRuntime

ROOT = Path(__file__).resolve().parents[1]  # subprocesses run from the repository root


@dataclass(frozen=True)
class Config:
    """What to time: ``name`` is the format row (e.g. "tflite-fp16", "torch-eager")."""

    name: str
    runtime: str  # "torch", or the name of a target's BenchRuntime (e.g. "onnxruntime")
    variant: str
    res: int
    threads: int
    path: str = ""  # model file; empty for torch (built in memory)
    input_convention: str = "normalized"
    deploy_form: bool = True  # torch only: deploy() form or the eval model as trained
    runner: str = ""  # "module:function" of the BenchRuntime runner (not torch): no converter is imported
    runtime_module: str = "torch"  # imported before the memory baseline

    @classmethod
    def for_runtime(cls, runtime: BenchRuntime, **fields) -> Config:
        """A configuration timed in a target's benchmark runtime."""
        fn = runtime.runner
        return cls(
            runtime=runtime.name,
            runner=f"{fn.__module__}:{fn.__qualname__}",
            runtime_module=runtime.import_name,
            **fields,
        )

    @property
    def key(self) -> str:
        return f"{self.variant}/{self.name}/{self.threads}t"


def sample_input(res: int, convention: str) -> np.ndarray:
    """The astronaut photo at res x res as a (1, 3, res, res) float32 batch in ``convention``."""
    from casvit.preprocess import official_default
    from export.inputs import parity_images, to_convention

    _, rgb = parity_images(official_default(res, res), noise=0)
    return to_convention(rgb[:1], convention)


def _torch_runner(cfg: Config, x: np.ndarray) -> Callable[[], object]:
    import torch

    from casvit import create_model, deploy
    from casvit.seeding import randomize_batchnorm

    torch.manual_seed(0)
    model = randomize_batchnorm(create_model(cfg.variant), 0).eval()
    if cfg.deploy_form:
        model = deploy(model)
    tensor = torch.from_numpy(x)

    def run():
        torch.set_num_threads(cfg.threads)  # torch threads are process-wide: set per call
        with torch.inference_mode():
            return model(tensor)

    return run


def _runtime_runner(cfg: Config, x: np.ndarray) -> Callable[[], object]:
    module, name = cfg.runner.split(":")
    return getattr(importlib.import_module(module), name)(cfg.path, cfg.threads, x)


def make_runner(cfg: Config, x: np.ndarray | None = None) -> Callable[[], object]:
    """A callable doing one inference of ``cfg`` on ``x`` (default: :func:`sample_input`)."""
    if cfg.runtime != "torch" and not cfg.runner:
        raise ValueError(f"no runner for runtime {cfg.runtime!r}")
    build = _torch_runner if cfg.runtime == "torch" else _runtime_runner
    return build(cfg, sample_input(cfg.res, cfg.input_convention) if x is None else x)


def peak_rss_bytes() -> int:
    """High-water RSS of this process image: ``VmHWM`` on Linux. ``ru_maxrss`` is not
    used there because Linux carries it over from the parent across fork+exec, so a
    fresh subprocess of a big parent would start at the parent's peak."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def measure_memory(cfg: Config, input_path: Path, runs: int = 3) -> dict:
    """Peak RSS of this process after loading ``cfg`` and running it, and the rise
    over the peak before loading (only numpy and the runtime imported, input read)."""
    importlib.import_module(cfg.runtime_module)
    x = np.load(input_path)
    before = peak_rss_bytes()
    run = make_runner(cfg, x)
    for _ in range(runs):
        run()
    after = peak_rss_bytes()
    return {"peak_rss_mib": round(after / 2**20, 1), "model_rss_mib": round(max(0, after - before) / 2**20, 1)}


def memory_in_subprocess(cfg: Config, timeout: float = 600, x: np.ndarray | None = None) -> dict:
    """:func:`measure_memory` in a fresh interpreter on ``x`` (default :func:`sample_input`;
    handed over as a .npy file so ONNX Runtime and LiteRT processes never import torch);
    errors are returned, not raised."""
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        input_path = Path(tmp) / "input.npy"
        np.save(input_path, sample_input(cfg.res, cfg.input_convention) if x is None else x)
        cmd = [sys.executable, "-m", "benchmarks.runners", json.dumps(asdict(cfg)), str(input_path)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
            return json.loads(proc.stdout.strip().splitlines()[-1])
        except subprocess.TimeoutExpired:
            return {"memory_error": f"timed out after {timeout:.0f}s"}
        except (json.JSONDecodeError, IndexError):
            return {"memory_error": f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"}


if __name__ == "__main__":
    print(json.dumps(measure_memory(Config(**json.loads(sys.argv[1])), Path(sys.argv[2]))))
