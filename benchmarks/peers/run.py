"""In .venv-peers: ``python -m benchmarks.peers.run convert JOB_JSON OUT_JSON`` converts
every peer and checks it and our .tflite files against eager PyTorch;
``python -m benchmarks.peers.run time JOB_JSON OUT_JSON`` (a fresh process, so no
converter threads linger; an ExecuTorch threadpool reset hung in the converting
process) times every row whose parity passed, interleaved: our .tflite files and
litert-torch's in the same LiteRT wheel, ExecuTorch programs in its runtime.

The job (written by :func:`benchmarks.peers.part.run_peers`) names the variant,
resolution, thread counts, timing parameters, the work folder and our artifacts;
the time step reads the rows the convert step wrote."""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from . import PEERS, Peer
from .convert import CONVERTERS, SUFFIX, calibration_batches, seeded_model, tflite_partitions
from .table import parity_verdict, short_error


def _log(message: str) -> None:
    print(f"[peers] {message}", file=sys.stderr, flush=True)


def parity_inputs(res: int) -> tuple[list[str], np.ndarray]:
    """The export's parity inputs (photos + seeded noise, through the default preprocessing
    record) as RGB uint8, and their names."""
    from casvit.preprocess import official_default
    from export.inputs import parity_images

    names, rgb = parity_images(official_default(res, res))
    return names, rgb


def in_convention(rgb: np.ndarray, convention: str) -> np.ndarray:
    from export.inputs import to_convention

    return to_convention(rgb, convention)


def eager_reference(variant: str, x: np.ndarray) -> np.ndarray:
    """Logits of the seeded eval model, the reference every artifact is checked against."""
    import torch

    with torch.inference_mode():
        return seeded_model(variant, "eval")(torch.from_numpy(x)).numpy()


def tflite_predict(path: Path, x: np.ndarray) -> np.ndarray:
    """Logits of a .tflite file, one image at a time (NCHW or NHWC input, float or int8 I/O);
    for ours, the input of the final SOFTMAX (``probabilities.logits_model``)."""
    from ai_edge_litert.interpreter import Interpreter

    from export.litert_io import dequantize, quantize
    from export.targets.tflite.probabilities import logits_model

    interp = Interpreter(model_content=logits_model(path), num_threads=1)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    nhwc = inp["shape"][-1] == 3 and inp["shape"][1] != 3
    logits = []
    for image in x:
        data = image[None].transpose(0, 2, 3, 1) if nhwc else image[None]
        interp.set_tensor(inp["index"], np.ascontiguousarray(quantize(data, inp)))
        interp.invoke()
        logits.append(dequantize(interp.get_tensor(out["index"]), out).reshape(-1))
    return np.stack(logits)


def _executorch_method(path: Path):
    from executorch.runtime import Runtime

    return Runtime.get().load_program(str(path)).load_method("forward")


def executorch_predict(path: Path, x: np.ndarray) -> np.ndarray:
    import torch

    method = _executorch_method(path)
    return np.stack([method.execute([torch.from_numpy(image[None].copy())])[0].numpy().reshape(-1) for image in x])


def executorch_runner(path: Path, x: np.ndarray):
    """One inference per call, on ExecuTorch's process-wide threadpool (sized once by
    :func:`time_all` before any program is loaded)."""
    import torch

    method = _executorch_method(path)
    inputs = [torch.from_numpy(x.copy())]
    return lambda: method.execute(inputs)


def _size_executorch_threadpool(threads: int) -> None:
    """Resize ExecuTorch's threadpool once, before any program runs: resizing it between
    timed calls (``_unsafe_reset_threadpool``) crashed the process now and then (SIGSEGV)."""
    from executorch.extension.pybindings.portable_lib import _threadpool_get_thread_count, _unsafe_reset_threadpool

    if _threadpool_get_thread_count() != threads:
        _unsafe_reset_threadpool(threads)


def convert_peer(peer: Peer, job: dict, calibration, reference, x, photos) -> dict:
    """Convert one peer and check its parity; every failure becomes the row's status."""
    import torch

    path = Path(job["work"]) / f"{peer.name}{SUFFIX[peer.toolchain]}"
    row = {
        "format": peer.name,
        "toolchain": peer.toolchain,
        "form": peer.form,
        "precision": peer.precision,
        "runtime": peer.runtime,
        "path": str(path),
    }
    try:
        model = seeded_model(job["variant"], peer.form)
        sample = torch.from_numpy(x[:1].copy())
        start = time.perf_counter()
        facts = CONVERTERS[peer.toolchain](peer, model, sample, calibration, path)
        row["convert_seconds"] = round(time.perf_counter() - start, 1)
        row["size_bytes"] = path.stat().st_size
        row["partitions"] = facts.get("partitions") or tflite_partitions(path)
    except Exception as e:  # noqa: BLE001 -- a peer that does not convert is a row, not a crash
        _log(f"{peer.name}: conversion failed\n{traceback.format_exc()}")
        return {**row, "status": "convert failed", "error": short_error(e)}
    try:
        predict = executorch_predict if peer.toolchain == "executorch" else tflite_predict
        row.update(parity_verdict(reference, predict(path, x), peer.precision, photos))
    except Exception as e:  # noqa: BLE001
        return {**row, "status": "does not load/run", "error": short_error(e)}
    return row


def time_all(rows: list[dict], job: dict, rgb: np.ndarray) -> None:
    """Interleaved timing of every row whose status is ``ok`` at the job's one thread count,
    in place (``timing`` keyed by the thread count). One thread count per process:
    ExecuTorch's threadpool is process-wide and is sized once."""
    from export import targets

    from ..latency import interleaved, summarize
    from ..runners import Config, make_runner

    (threads,) = job["threads"]
    litert = targets.get("tflite").bench  # .tflite files, ours and litert-torch's, run in our LiteRT runner
    timed_rows = [row for row in rows if row["status"] == "ok"]
    if any(row["runtime"] == "executorch" for row in timed_rows):
        _size_executorch_threadpool(threads)
    runners = {}
    for row in timed_rows:
        x = in_convention(rgb[:1], row.get("input_convention", "normalized"))
        if row["runtime"] == "executorch":
            runners[row["format"]] = executorch_runner(Path(row["path"]), x)
        else:
            cfg = Config.for_runtime(
                litert,
                name=row["format"],
                variant=job["variant"],
                res=job["res"],
                threads=threads,
                path=row["path"],
                input_convention=row.get("input_convention", "normalized"),
            )
            runners[row["format"]] = make_runner(cfg, x)
    samples = interleaved(runners, job["repeats"], job["warmup"], job["round_size"], _log) if runners else {}
    for row in rows:
        timing = row.setdefault("timing", {})
        if row["format"] in samples:
            timing[str(threads)] = summarize(samples[row["format"]], None, 0.0, threads)


def convert_all(job: dict) -> dict:
    """Our rows and every requested peer, each with its parity verdict (status ``ok`` = timed next)."""
    import importlib.metadata as md

    import torch

    from export.inputs import photo_mask

    Path(job["work"]).mkdir(parents=True, exist_ok=True)
    names, rgb = parity_inputs(job["res"])
    x = in_convention(rgb, "normalized")
    photos = photo_mask(names)
    reference = eager_reference(job["variant"], x)
    calibration = calibration_batches(job["res"])
    wanted = set(job.get("peers") or [p.name for p in PEERS])
    rows = []
    for ours in job["ours"]:  # checked again here with the same metrics as the peers
        path = Path(ours["path"])
        logits = tflite_predict(path, in_convention(rgb, ours["input_convention"]))
        rows.append(
            {
                **ours,
                "toolchain": "ours",
                "form": "deploy",
                "runtime": "litert",
                "size_bytes": path.stat().st_size,
                "partitions": tflite_partitions(path),
                **parity_verdict(reference, logits, ours["precision"], photos),
            }
        )
    for peer in PEERS:
        if peer.name in wanted:
            _log(f"{peer.name}: converting")
            rows.append(convert_peer(peer, job, calibration, reference, x, photos))
            _log(f"{peer.name}: {rows[-1]['status']} {rows[-1].get('error', '')}")
    versions = {p: md.version(p) for p in ("torch", "litert-torch", "executorch", "ai-edge-litert", "torchao")}
    return {
        **{k: job[k] for k in ("variant", "res", "threads", "repeats", "warmup", "round_size")},
        "resolution": job["res"],
        "parity_inputs": names,
        "calibration_images": len(calibration),
        "versions": versions,
        "torch_cuda": torch.version.cuda,
        "rows": rows,
    }


def main(argv: list[str]) -> int:
    from export.fsutil import atomic_write

    step, job_path, out_path = argv
    job = json.loads(Path(job_path).read_text())
    if step == "convert":
        result = convert_all(job)
    elif step == "time":
        result = job
        _, rgb = parity_inputs(job["res"])
        time_all(result["rows"], job, rgb)
    else:
        raise SystemExit(f"unknown step {step!r}: expected convert or time")
    atomic_write(Path(out_path), json.dumps(result, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
