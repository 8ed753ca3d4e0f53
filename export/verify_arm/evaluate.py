"""Plan the runs of an output set, run them on both sides and gate each output
against the golden logits with the export's own parity code (export/parity.py). Each
run is the shipped model without its final SOFTMAX, whose output is its logits
(``export.targets.tflite.probabilities``)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from .. import parity
from ..targets.tflite.probabilities import logits_model
from . import LITERT_VERSION
from .outputset import Model, OutputSet
from .sides import Side, run

# XNNPACK's half-precision path (FORCE_FP16) applies to float models only.
FP16_ARITHMETIC_PRECISIONS = ("fp32", "fp16")


def plan(models: list[Model], fp16_arithmetic: bool, paths: list[Path] | None = None) -> tuple[list[dict], list[dict]]:
    """Runner jobs for the ARM64 side (default and, for float models, forced fp16
    arithmetic) and for the x86 side (default only: x86 has no fp16 arithmetic); each
    runs ``paths[i]`` (default: the model's own file)."""
    arm, x86 = [], []
    for i, m in enumerate(models):
        base = {"model": str(paths[i] if paths else m.path), "convention": m.convention}
        arm.append({**base, "key": f"m{i}_default", "arithmetic": "default"})
        x86.append({**base, "key": f"m{i}_default", "arithmetic": "default"})
        if fp16_arithmetic and m.precision in FP16_ARITHMETIC_PRECISIONS:
            arm.append({**base, "key": f"m{i}_fp16", "arithmetic": "fp16"})
    return arm, x86


def _checked(reference: np.ndarray, arrays: dict, info: dict, key: str, precision: str) -> dict:
    """parity.check of one run, or a failed entry carrying the runtime's error."""
    run_info = info.get("runs", {}).get(key, {})
    if key not in arrays:
        error = run_info.get("error", "no output")
        return {
            "metrics": None,
            "tolerance": None,
            "passed": False,
            "misses": [f"did not run: {error}"],
            "runtime": run_info,
        }
    return {**parity.check(reference, arrays[key], precision), "runtime": run_info}


def _max_abs(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    return None if a is None or b is None else float(np.abs(a.astype(np.float64) - b).max())


def _environment(side: Side, info: dict) -> dict:
    keep = ("machine", "python", "numpy", "ai_edge_litert", "cpu_features")
    return {
        "command": " ".join(side.command[: 3 if side.name == "arm64" else 1]),
        "tool": side.tool_version(),
        **{k: info.get(k) for k in keep},
    }


def verify(
    output_set: OutputSet, arm: Side, x86: Side, fp16_arithmetic: bool = True, gate_fp16_arithmetic: bool = False
) -> dict:
    """The verify-arm report: per model the ARM64 and x86 LiteRT checks, the export's
    own check for comparison, and the forced-fp16 run; ``passed`` covers the default
    ARM64 and x86 runs (plus fp16 arithmetic when ``gate_fp16_arithmetic``)."""
    reference = output_set.golden["logits"]
    golden = output_set.out_dir / output_set.golden_file
    with tempfile.TemporaryDirectory(prefix="verify-arm-logits-") as tmp:
        paths = [Path(tmp) / f"m{i}.tflite" for i in range(len(output_set.models))]
        for path, m in zip(paths, output_set.models):
            path.write_bytes(logits_model(m.path))  # the gate compares logits: the input of the final SOFTMAX
        arm_jobs, x86_jobs = plan(output_set.models, fp16_arithmetic, paths)
        arm_arrays, arm_info = run(arm, golden, arm_jobs)
        x86_arrays, x86_info = run(x86, golden, x86_jobs)
    models = []
    for i, m in enumerate(output_set.models):
        key = f"m{i}_default"
        entry = {
            "file": m.file,
            "precision": m.precision,
            "input_convention": m.convention,
            "arm64": _checked(reference, arm_arrays, arm_info, key, m.precision),
            "x86_64": _checked(reference, x86_arrays, x86_info, key, m.precision),
            "export_check": {"runtime": m.export_runtime, **(m.export_parity or {})},
            "arm64_vs_x86_64_max_abs": _max_abs(arm_arrays.get(key), x86_arrays.get(key)),
        }
        gating = [entry["arm64"]["passed"], entry["x86_64"]["passed"]]
        if f"m{i}_fp16" in {j["key"] for j in arm_jobs}:
            fp16 = _checked(reference, arm_arrays, arm_info, f"m{i}_fp16", "fp16")
            fp16["gating"] = gate_fp16_arithmetic
            fp16["max_abs_vs_default_arithmetic"] = _max_abs(arm_arrays.get(f"m{i}_fp16"), arm_arrays.get(key))
            entry["arm64_fp16_arithmetic"] = fp16
            if gate_fp16_arithmetic:
                gating.append(fp16["passed"])
        entry["passed"] = all(gating)
        models.append(entry)
    return {
        "tool": "verify-arm",
        "litert_version": LITERT_VERSION,
        "qemu_cpu": arm.command[2],
        "golden": {
            "file": output_set.golden_file,
            "sha256": output_set.golden_sha256,
            "samples": int(reference.shape[0]),
        },
        "arm64": _environment(arm, arm_info),
        "x86_64": _environment(x86, x86_info),
        "fp16_arithmetic": {
            "run": fp16_arithmetic,
            "gating": gate_fp16_arithmetic,
            "how": "XNNPACK delegate created through LiteRT's C API with "
            "TFLITE_XNNPACK_DELEGATE_FLAG_FORCE_FP16, default delegates off",
        },
        "models": models,
        "passed": all(m["passed"] for m in models),
    }
