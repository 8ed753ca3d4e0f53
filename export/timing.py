"""Interleaved timing: several callables timed round by round, so that machine noise
and thermal drift hit them alike (the benchmarks and the int8 fallback's latency cost)."""

from __future__ import annotations

import time
from collections.abc import Callable


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
