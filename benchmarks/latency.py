"""Interleaved latency of every (variant, format, threads) configuration.

All runners are loaded in one process. After a warm-up pass, each round visits
every configuration in turn (the order rotates each round) and times
``round_size`` consecutive inferences after one untimed re-warm call, so machine
noise and thermal drift hit all configurations alike.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from export.quiet import captured
from export.timing import interleaved

from .runners import Config, make_runner

__all__ = ["interleaved", "load_runners", "summarize"]


def summarize(samples_ns: list[int], gmacs: float | None, core_peak_gflops: float, threads: int) -> dict:
    """Median/p90/min in ms, achieved GFLOP/s (2 FLOPs per MAC at the median) and
    its fraction of ``threads`` x the measured single-core peak."""
    ms = np.asarray(samples_ns, np.float64) / 1e6
    out = {
        "median_ms": round(float(np.median(ms)), 3),
        "p90_ms": round(float(np.percentile(ms, 90)), 3),
        "min_ms": round(float(ms.min()), 3),
        "samples": int(len(ms)),
    }
    if gmacs:
        gflops = 2 * gmacs / (out["median_ms"] / 1e3)
        out["gflops"] = round(gflops, 2)
        out["core_peak_fraction"] = round(gflops / (core_peak_gflops * threads), 4)
    return out


def load_runners(
    configs: list[Config], log=print, inputs: dict[str, np.ndarray] | None = None
) -> tuple[dict[str, Callable], dict[str, str]]:
    """Runners keyed by config key (each on ``inputs[key]``, default ``runners.sample_input``),
    and the load error of every config that failed."""
    runners, errors = {}, {}
    for cfg in configs:
        try:
            with captured():  # runtimes' native notes (LiteRT's XNNPACK line) stay off the console
                runners[cfg.key] = make_runner(cfg, (inputs or {}).get(cfg.key))
                runners[cfg.key]()  # fail here, not in the timed loop
        except Exception as e:  # noqa: BLE001 -- recorded as data
            errors[cfg.key] = f"{type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"[:400]
            runners.pop(cfg.key, None)
            log(f"cannot run {cfg.key}: {errors[cfg.key]}")
    return runners, errors
