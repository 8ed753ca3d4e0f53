"""Getting artifacts: run ``python -m export`` in a subprocess and read its report.

A target whose module has no ``convert`` yet is "target not available": it is recorded
in the results instead of being dropped.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from export.spec import Artifact

from .runners import ROOT

# Artifact names each target is expected to produce (for "not available" rows).
EXPECTED = {
    "onnx": ("onnx",),
    "tflite": ("tflite-fp32", "tflite-fp16", "tflite-int8-dynamic", "tflite-int8"),
    "coreml": ("coreml-fp16", "coreml-fp16-palettize8", "coreml-fp16-palettize6", "coreml-fp16-linear8"),
}


def target_available(name: str) -> bool:
    """Whether the export target module implements the contract (convert and load)."""
    try:
        from export import targets

        module = targets.get(name)
    except Exception:  # noqa: BLE001 -- a half-written module counts as unavailable
        return False
    return all(callable(getattr(module, f, None)) for f in ("convert", "load", "census"))


def export(target: str, variant: str, res: int, out: Path, extra_args: list[str] = (),
           timeout: float = 3600) -> dict:
    """Export one target into ``out`` (its own folder, so one failing target cannot
    take the others down); returns {"target", "status", "out_dir", "report", "error", "seconds"}."""
    result = {"target": target, "status": "target not available", "out_dir": str(out), "report": None, "error": None}
    if not target_available(target):
        return result
    # absolute: the export runs with the repository root as its working folder, not ours
    cmd = [sys.executable, "-m", "export", "--target", target, "--variant", variant,
           "--res", str(res), "--out", str(Path(out).resolve()), *extra_args]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        if proc.returncode not in (0, 1):  # 1: a gate failed, the report is still written
            result["error"] = f"export exit {proc.returncode}: {_error_line(proc.stderr)}"
    except subprocess.TimeoutExpired:
        result["error"] = f"export timed out after {timeout:.0f}s"
    result["seconds"] = round(time.perf_counter() - start, 1)
    if not result["error"] and proc.returncode == 1:  # a gate failed: the run's whole set is in OUT/rejected
        result["out_dir"] = str(Path(out) / "rejected")
    report_path = Path(result["out_dir"]) / "report.json"
    if report_path.is_file() and not result["error"]:
        result["report"] = json.loads(report_path.read_text())
        result["status"] = "ok"
    else:
        result["status"] = "export failed"
        result["error"] = result["error"] or "no report written"
    return result


def _error_line(stderr: str) -> str:
    """The CLI's ``error:`` line, else the last line of its stderr."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    return next((ln for ln in reversed(lines) if ln.startswith("error:")), lines[-1] if lines else "")[:600]


def entries(result: dict) -> list[dict]:
    """The report entries of an export result, or one placeholder row per expected
    artifact (status "target not available" / "export failed") so nothing is silently dropped."""
    if result["report"]:
        return result["report"]["artifacts"]
    return [{"name": n, "format": result["target"], "status": result["status"], "error": result["error"]}
            for n in EXPECTED[result["target"]]]


def artifact_from_entry(entry: dict, out_dir: Path) -> Artifact:
    """Rebuild the Artifact of a report entry (promoted or rejected file)."""
    rel = entry["files"][0]["path"] if entry.get("files") else entry["file"]
    return Artifact(entry["name"], entry["format"], entry["precision"], Path(out_dir) / rel,
                    entry["input_convention"], details=entry.get("details", {}))
