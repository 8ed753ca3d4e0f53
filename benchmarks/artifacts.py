"""Getting artifacts: run ``python -m export`` in a subprocess and read its report.

A target whose export fails is recorded in the results (one row per artifact it
would have produced, from its record's ``artifact_names``) instead of being dropped.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import time
from pathlib import Path

from export.spec import Artifact

from .runners import ROOT


def expected_names(target: str, extra_args: list[str] = ()) -> tuple[str, ...]:
    """The artifact names ``python -m export --target TARGET EXTRA_ARGS`` produces, from the
    target's record; just the target's name when the arguments do not parse."""
    from export import cli, targets

    try:
        with contextlib.redirect_stderr(io.StringIO()):  # argparse's own message; the export repeats it
            spec = cli.spec_of(["--target", target, *extra_args])
        return targets.get(target).artifact_names(spec)
    except (SystemExit, Exception):  # noqa: BLE001 -- the export reports what is wrong with them
        return (target,)


def export(target: str, variant: str, res: int, out: Path, extra_args: list[str] = (), timeout: float = 3600) -> dict:
    """Export one target into ``out`` (its own folder, so one failing target cannot
    take the others down); returns {"target", "status", "out_dir", "report", "error", "seconds"}."""
    result = {
        "target": target,
        "status": "export failed",
        "out_dir": str(out),
        "report": None,
        "error": None,
        "expected": expected_names(target, list(extra_args)),
    }
    # absolute: the export runs with the repository root as its working folder, not ours
    cmd = [
        sys.executable,
        "-m",
        "export",
        "--target",
        target,
        "--variant",
        variant,
        "--res",
        str(res),
        "--out",
        str(Path(out).resolve()),
        *extra_args,
    ]
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
    """The report entries of an export result, or one placeholder row (status "export
    failed") per expected artifact so nothing is silently dropped."""
    if result["report"]:
        return result["report"]["artifacts"]
    return [
        {"name": n, "format": result["target"], "status": result["status"], "error": result["error"]}
        for n in result["expected"]
    ]


def artifact_from_entry(entry: dict, out_dir: Path) -> Artifact:
    """Rebuild the Artifact of a report entry (promoted or rejected file)."""
    rel = entry["files"][0]["path"] if entry.get("files") else entry["file"]
    return Artifact(
        entry["name"],
        entry["format"],
        entry["precision"],
        Path(out_dir) / rel,
        entry["input_convention"],
        details=entry.get("details", {}),
    )
