"""Interleaved latency of every (variant, format, threads) configuration.

All runners are loaded in one process. After a warm-up pass, each round visits
every configuration in turn (the order rotates each round) and times
``round_size`` consecutive inferences after one untimed re-warm call, so machine
noise and thermal drift hit all configurations alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from export.quiet import captured

from .runners import Config, make_runner


def interleaved(
    runners: dict[str, Callable[[], object]], repeats: int, warmup: int, round_size: int = 5, log=print
) -> dict[str, list[int]]:
    """Nanosecond samples per runner key: ``repeats`` timed calls each, round-robin."""
    keys = list(runners)
    for _ in range(warmup):
        for k in keys:
            runners[k]()
    samples: dict[str, list[int]] = {k: [] for k in keys}
    rounds = -(-repeats // round_size)
    for r in range(rounds):
        order = keys[r % len(keys) :] + keys[: r % len(keys)]
        for k in order:
            run = runners[k]
            run()  # re-warm after the previous configuration touched the caches
            for _ in range(min(round_size, repeats - len(samples[k]))):
                start = time.perf_counter_ns()
                run()
                samples[k].append(time.perf_counter_ns() - start)
        log(f"latency round {r + 1}/{rounds} done")
    return samples


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
