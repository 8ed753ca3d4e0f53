"""Labelled images through one runtime on every core.

The images are decoded once, in parallel, into a temporary memory-mapped
(N, H, W, 3) uint8 array through the set's preprocessing record (``decode``). Then
each runtime (an artifact's ``load()``, or eager PyTorch) gets its own process pool
(``evaluate``): the pool's initializer loads the runtime once per worker at one
thread, the workers wait for each other (so all start together and the speed is
that of every worker running) and then run chunks of the array. Workers are forked from a fork
server that has loaded no runtime (so no runtime thread is inherited), ignore Ctrl-C
(the main process ends the run) and keep native library chatter off the console. A
progress line comes at least every 10 s."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .context import log
from .errors import EnvironmentFailure, ExportError, first_line
from .spec import Artifact

PROGRESS_SECONDS = 9.0  # below the promised 10 s, leaving room for scheduling delays
DECODE_CHUNK = 64  # images per decoding task
MAX_CHUNK = 32  # images per inference task (smaller on small sets, so every worker gets some)
LOAD_TIMEOUT_SECONDS = 1800.0  # how long loaded workers wait for the others before giving up
GIB = 2**30


class RuntimeFailed(Exception):
    """A runtime could not load or run in its workers (the message says why)."""


def default_workers() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class Images:
    """The decoded images: a memory-mapped (N, H, W, 3) uint8 file."""

    path: str
    shape: tuple[int, int, int, int]

    def open(self, mode: str = "r") -> np.memmap:
        return np.memmap(self.path, np.uint8, mode, shape=self.shape)


@dataclass(frozen=True)
class ArtifactRuntime:
    """An artifact in its own runtime, through its target's ``load()``."""

    artifact: Artifact

    def load(self):
        from . import targets

        return targets.get(self.artifact.format).load(self.artifact)


@dataclass(frozen=True)
class EagerRuntime:
    """Eager PyTorch on the set's weights (``export.exported.Weights``), one thread."""

    weights: object

    def load(self):
        import torch

        torch.set_num_threads(1)
        model = self.weights.build()

        @torch.no_grad()
        def run(x: np.ndarray) -> np.ndarray:
            return model(torch.from_numpy(x)).numpy()

        return run


@dataclass(frozen=True)
class Measured:
    """One runtime's logits on every image and how fast the pool produced them."""

    logits: np.ndarray
    seconds: float  # first chunk started to last chunk ended: the runtimes were loaded
    wall_seconds: float  # with starting the processes and loading the runtimes
    load_seconds: float  # the slowest worker's runtime load
    worker_pids: tuple[int, ...]  # the processes that ran chunks

    @property
    def images_per_second(self) -> float:
        return len(self.logits) / max(self.seconds, 1e-9)


# ---- worker side: one runtime per process, set up by the pool's initializer

_worker: dict = {}


def _quiet_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from threadpoolctl import threadpool_limits

    _worker["limits"] = threadpool_limits(1)  # BLAS and OpenMP of NumPy/SciPy: one thread per process


def _init_decoder(images: Images, record) -> None:
    _quiet_worker()
    _worker.update(rgb=images.open("r+"), record=record)


def _decode(start: int, paths: list[str]) -> tuple[int, int, list[str]]:
    """Images ``start``... of the array from ``paths``: (worker PID, start, their stored modes)."""
    from .calibration import read_rgb

    rgb, modes = _worker["rgb"], []
    for i, path in enumerate(paths):
        rgb[start + i], mode = read_rgb(Path(path), _worker["record"], what="validation image")
        modes.append(mode)
    return os.getpid(), start, modes


def _init_runtime(runtime, images: Images, convention: str, mean, std, ready) -> None:
    from .quiet import captured

    _quiet_worker()
    start = time.perf_counter()
    try:
        with captured():  # converters' and runtimes' native notes
            _worker["run"] = runtime.load()
    except Exception as e:  # noqa: BLE001 -- reported by every task of this worker
        _worker["error"] = f"{type(e).__name__}: {first_line(e)}"
    try:
        ready.wait(LOAD_TIMEOUT_SECONDS)  # every worker loaded (or failed to): start together
    except threading.BrokenBarrierError:
        _worker.setdefault("error", f"another worker did not load the runtime within {LOAD_TIMEOUT_SECONDS:.0f} s")
    _worker.update(
        load_seconds=time.perf_counter() - start, rgb=images.open("r"), convention=convention, mean=mean, std=std
    )


def _infer(start: int, stop: int) -> tuple[int, int, np.ndarray, float, float, float]:
    from .inputs import to_convention

    if "error" in _worker:
        raise RuntimeFailed(f"the runtime did not load: {_worker['error']}")
    began = time.monotonic()  # system-wide on Linux: comparable across the workers
    x = to_convention(np.asarray(_worker["rgb"][start:stop]), _worker["convention"], _worker["mean"], _worker["std"])
    logits = np.asarray(_worker["run"](x), np.float32)
    return os.getpid(), start, logits, began, time.monotonic(), _worker["load_seconds"]


# ---- main side


def _context():
    from . import targets

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__, *targets.REGISTRY.values()])  # imported once, before any runtime loads
    return ctx


def _drain(pool: cf.Executor, futures: dict, total: int, label: str, unit: str, started: float) -> list:
    """Every future's result, with a progress line at least every PROGRESS_SECONDS.
    A task's own error is raised as is (bad input), any other as RuntimeFailed."""
    results, done, last, pending = [], 0, time.monotonic(), set(futures)
    try:
        while pending:
            due = max(0.0, last + PROGRESS_SECONDS - time.monotonic())
            finished, pending = cf.wait(pending, timeout=due, return_when=cf.FIRST_COMPLETED)
            for future in finished:
                results.append(future.result())
                done += futures[future]
            if pending and time.monotonic() - last >= PROGRESS_SECONDS:
                last = time.monotonic()
                rate = f"{done / (last - started):.1f} {unit}/s" if done else "starting the workers"
                log(f"{label}: {done}/{total} {unit} ({rate}, {last - started:.0f} s)")
    except (ExportError, RuntimeFailed):
        raise
    except cf.process.BrokenProcessPool as e:
        raise RuntimeFailed(f"a worker process ended abruptly ({first_line(e) or 'killed'})") from None
    except Exception as e:
        raise RuntimeFailed(f"{type(e).__name__}: {first_line(e)}") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results


def allocate(folder: Path, count: int, height: int, width: int) -> Images:
    """Room for ``count`` decoded images in ``folder``, reserved on disk now (a full disk
    is an EnvironmentFailure here, not a crash while writing)."""
    images = Images(str(Path(folder) / "images.u8"), (count, height, width, 3))
    size = count * height * width * 3
    fd = os.open(images.path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        raise EnvironmentFailure(
            f"decoding {count} images needs {size / GIB:.1f} GiB in {folder} ({e.strerror}); "
            "set TMPDIR to a folder with room, or give --val-count"
        ) from None
    finally:
        os.close(fd)
    return images


def decode(files: list[Path], record, images: Images, workers: int) -> tuple[dict[str, int], float]:
    """Decode ``files`` through ``record`` into ``images`` on ``workers`` processes: the
    stored modes converted to RGB (``export.calibration.converted_modes``) and the seconds."""
    from .calibration import converted_modes

    started = time.monotonic()
    pool = cf.ProcessPoolExecutor(workers, _context(), _init_decoder, (images, record))
    futures = {
        pool.submit(_decode, s, [str(p) for p in files[s : s + DECODE_CHUNK]]): len(files[s : s + DECODE_CHUNK])
        for s in range(0, len(files), DECODE_CHUNK)
    }
    results = _drain(pool, futures, len(files), "decoding", "images", started)
    modes = [m for _, _, chunk in sorted(results, key=lambda r: r[1]) for m in chunk]
    return converted_modes(modes), time.monotonic() - started


def evaluate(runtime, images: Images, convention: str, mean, std, workers: int, label: str) -> Measured:
    """Logits of ``runtime`` on every image, chunks on ``workers`` processes."""
    n = images.shape[0]
    chunk = max(1, min(MAX_CHUNK, -(-n // (workers * 4))))
    workers = min(workers, -(-n // chunk))  # each one gets a task: the pool starts one process per task submitted
    started, ctx = time.monotonic(), _context()
    ready = ctx.Barrier(workers)
    pool = cf.ProcessPoolExecutor(workers, ctx, _init_runtime, (runtime, images, convention, mean, std, ready))
    futures = {pool.submit(_infer, s, min(s + chunk, n)): min(s + chunk, n) - s for s in range(0, n, chunk)}
    results = _drain(pool, futures, n, label, "images", started)
    logits = np.concatenate([r[2] for r in sorted(results, key=lambda r: r[1])])
    return Measured(
        logits,
        seconds=max(r[4] for r in results) - min(r[3] for r in results),
        wall_seconds=time.monotonic() - started,
        load_seconds=max(r[5] for r in results),
        worker_pids=tuple(sorted({r[0] for r in results})),
    )
