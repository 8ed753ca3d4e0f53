"""The export a user would do without this project: ``torch.onnx.export`` of the
eval model at its defaults, then ``onnx2tf`` at its defaults, then stock LiteRT.

Run as a subprocess (``python -m benchmarks.naive``) so a crash or a hang in a
converter is captured as data; every stage records ``ok`` or its error.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from export.targets.tflite.target import ONNX2TF_SAMPLE_FILE

STAGE_TIMEOUT = 900


def _error(e: BaseException) -> str:
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[-1] if lines else ''}"[:500]


def onnx_stage(variant: str, res: int, out: Path, seed: int = 0) -> dict:
    """torch.onnx.export(model, (x,), path) with every default."""
    import onnx
    import torch

    from casvit import create_model
    from casvit.seeding import randomize_batchnorm

    torch.manual_seed(seed)
    model = randomize_batchnorm(create_model(variant), seed).eval()
    path = out / f"naive_{variant}_{res}.onnx"
    start = time.perf_counter()
    torch.onnx.export(model, (torch.zeros(1, 3, res, res),), str(path))
    graph = onnx.load(str(path))
    ops = Counter(n.op_type for n in graph.graph.node)
    return {
        "ok": True,
        "file": str(path),
        "seconds": round(time.perf_counter() - start, 1),
        "opset": graph.opset_import[0].version,
        "nodes": sum(ops.values()),
        "ops": dict(sorted(ops.items())),
    }


def tflite_ops(path: Path) -> dict[str, int]:
    """Op census of a .tflite file from its flatbuffer (works even when LiteRT cannot run it)."""
    from export.spec import Artifact
    from export.targets.tflite import target as tflite

    return dict(sorted(tflite.census(Artifact(path.name, "tflite", "fp32", path, "normalized")).items()))


def onnx2tf_stage(onnx_path: Path, out: Path, timeout: float, stand_in: bool) -> dict:
    """``onnx2tf -i model.onnx -o out`` (defaults), in its own process. At its defaults
    onnx2tf downloads ``ONNX2TF_SAMPLE_FILE`` from GitHub into its working directory to check
    outputs; with ``stand_in`` a seeded random array of that name and shape is put
    there first, which is the only difference from a user with internet access."""
    work = out / ("onnx2tf_stand_in" if stand_in else "onnx2tf")
    work.mkdir(parents=True, exist_ok=True)
    if stand_in:
        np.save(work / ONNX2TF_SAMPLE_FILE, np.random.default_rng(0).random((20, 128, 128, 3), np.float32))
    exe = Path(sys.executable).with_name("onnx2tf")
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [str(exe), "-i", str(onnx_path.resolve()), "-o", "saved_model"],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "stand_in_sample": stand_in, "error": f"timed out after {timeout:.0f}s"}
    files = sorted((work / "saved_model").glob("*.tflite"))
    result = {
        "ok": proc.returncode == 0 and bool(files),
        "stand_in_sample": stand_in,
        "returncode": proc.returncode,
        "seconds": round(time.perf_counter() - start, 1),
        "files": [str(f) for f in files],
    }
    if not result["ok"]:
        tail = " | ".join([ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()][-3:])[-600:]
        result["needs_network"] = "github.com" in tail or "ConnectionError" in tail
        result["error"] = (
            f"needs network: downloads {ONNX2TF_SAMPLE_FILE} from github.com" if result["needs_network"] else tail
        )
        result["log_tail"] = tail
    return result


def litert_stage(path: Path, res: int) -> dict:
    """Load and invoke once in stock LiteRT (XNNPACK, no Flex delegate)."""
    from ai_edge_litert.interpreter import Interpreter

    entry = {"file": str(path), "size_bytes": path.stat().st_size}
    try:
        entry["ops"] = tflite_ops(path)
        entry["nodes"] = sum(entry["ops"].values())
    except Exception as e:  # noqa: BLE001 -- recorded
        entry["ops_error"] = _error(e)
    try:
        interp = Interpreter(model_path=str(path), num_threads=1)
        interp.allocate_tensors()
        inp = interp.get_input_details()[0]
        interp.set_tensor(inp["index"], np.zeros(inp["shape"], inp["dtype"]))
        interp.invoke()
        entry.update(runs=True, input_shape=[int(d) for d in inp["shape"]])
    except Exception as e:  # noqa: BLE001 -- recorded
        entry.update(runs=False, error=_error(e))
    return entry


def build(variant: str, res: int, out: Path, timeout: float = STAGE_TIMEOUT) -> dict:
    """Every naive stage; failures are results, not exceptions."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    result: dict = {"variant": variant, "resolution": res}
    try:
        result["onnx"] = onnx_stage(variant, res, out)
    except Exception as e:  # noqa: BLE001 -- recorded
        result["onnx"] = {"ok": False, "error": _error(e)}
        return result
    onnx_path = Path(result["onnx"]["file"])
    result["onnx2tf"] = onnx2tf_stage(onnx_path, out, timeout, stand_in=False)
    if not result["onnx2tf"]["ok"] and result["onnx2tf"].get("needs_network"):
        result["onnx2tf_offline_stand_in"] = onnx2tf_stage(onnx_path, out, timeout, stand_in=True)
    files = result.get("onnx2tf_offline_stand_in", result["onnx2tf"]).get("files", [])
    result["litert"] = [litert_stage(Path(f), res) for f in files]
    return result


def run_in_subprocess(variant: str, res: int, out: Path, timeout: float = STAGE_TIMEOUT) -> dict:
    """:func:`build` in a fresh interpreter with a timeout; a crash is recorded too."""
    cmd = [sys.executable, "-m", "benchmarks.naive", "--variant", variant, "--res", str(res), "--out", str(out)]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=2 * timeout + 120, cwd=Path(__file__).resolve().parents[1]
        )
    except subprocess.TimeoutExpired:
        return {"variant": variant, "resolution": res, "error": "naive build timed out"}
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        return {
            "variant": variant,
            "resolution": res,
            "error": f"naive build crashed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}",
        }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.naive", description=__doc__)
    p.add_argument("--variant", default="xs")
    p.add_argument("--res", type=int, default=224)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--timeout", type=float, default=STAGE_TIMEOUT)
    args = p.parse_args(argv)
    print(json.dumps(build(args.variant, args.res, args.out, args.timeout)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
