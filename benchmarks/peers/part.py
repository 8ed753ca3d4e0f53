"""The peer part of ``make bench`` (``--peers``), run from the core environment: export
our .tflite files, hand them to :mod:`benchmarks.peers.run` in .venv-peers, and write
``peers.json``, ``peers.md`` and ``peers.png``."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from export.exported import artifact_from_entry

from .. import artifacts
from .table import short_error, unavailable_rows

ROOT = Path(__file__).resolve().parents[2]
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
OURS = ("tflite-fp32", "tflite-int8")


def export_ours(variant: str, res: int, work: Path, log=print) -> tuple[list[dict], list[dict]]:
    """Our fp32 and int8 .tflite files (through the export gate) for the job, and a status
    row for each one that could not be exported."""
    log(f"peers: exporting our {variant}@{res} .tflite files")
    result = artifacts.export("tflite", variant, res, work, ["--tflite-precisions", "fp32,int8"])
    ours, missing = [], []
    for entry in artifacts.entries(result):
        if entry["name"] not in OURS:
            continue
        if "file" not in entry:
            missing.append(
                {
                    "format": f"ours-{entry['name']}",
                    "toolchain": "ours",
                    "form": "deploy",
                    "precision": entry["name"].split("-")[-1],
                    "runtime": "litert",
                    "status": entry["status"],
                    "error": entry.get("error"),
                }
            )
            continue
        art = artifact_from_entry(entry, result["out_dir"])
        ours.append(
            {
                "format": f"ours-{entry['name']}",
                "precision": entry["precision"],
                "path": str(art.path),
                "input_convention": art.input_convention,
                "export_status": entry["status"],
            }
        )
    return ours, missing


def run_peers(job: dict, python: Path = PEERS_PYTHON, timeout: float = 3600, log=print) -> dict:
    """The peer result from ``python -m benchmarks.peers.run`` in the peers environment
    (its output goes to ``peers.log`` in the job's work folder); a missing environment
    or a crashed run gives every peer a status row instead."""
    ours = [{**o, "toolchain": "ours", "runtime": "litert", "status": "not timed (no peer run)"} for o in job["ours"]]
    if not python.is_file():
        return {**job, "rows": ours + unavailable_rows("not installed", f"{python} missing: run `make peers-setup`")}
    Path(job["work"]).mkdir(parents=True, exist_ok=True)
    log_path = Path(job["work"]) / "peers.log"
    log(f"peers: converting, checking and timing in {python.parent.parent.name} (log: {log_path})")
    with tempfile.TemporaryDirectory() as tmp, open(log_path, "w") as out:

        def step(name: str, source: dict, tag: str) -> dict:
            """One ``benchmarks.peers.run`` step in a fresh process; raises _StepFailed."""
            source_path, target = Path(tmp) / f"{tag}-in.json", Path(tmp) / f"{tag}-out.json"
            source_path.write_text(json.dumps(source))
            try:
                proc = subprocess.run(
                    [str(python), "-m", "benchmarks.peers.run", name, str(source_path), str(target)],
                    cwd=ROOT,
                    timeout=timeout,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            except subprocess.TimeoutExpired:
                raise _StepFailed(f"{name} step failed", f"timed out after {timeout:.0f}s") from None
            if proc.returncode != 0 or not target.is_file():
                error = f"exit {proc.returncode}: {short_error(log_path.read_text(errors='replace'))} (see {log_path})"
                raise _StepFailed(f"{name} step failed", error)
            return json.loads(target.read_text())

        try:
            result = step("convert", job, "convert")
            for threads in job["threads"]:  # one process per thread count: ExecuTorch's threadpool is sized once
                timed = step("time", {**result, "threads": [threads]}, f"time-{threads}")
                for row, timed_row in zip(result["rows"], timed["rows"]):
                    row.setdefault("timing", {}).update(timed_row["timing"])
        except _StepFailed as failure:
            return {**job, "rows": ours + unavailable_rows(*failure.args)}
        return result


class _StepFailed(Exception):
    """A peers step that crashed or timed out: (status, error) for every peer row."""


def run(
    variant: str, res: int, threads: list[int], repeats: int, warmup: int, round_size: int, work: Path, log=print
) -> dict:
    """The peer result: our artifacts and every peer, converted, checked and timed together."""
    ours, missing = export_ours(variant, res, (work / "ours").resolve(), log)
    job = {
        "variant": variant,
        "res": res,
        "threads": threads,
        "repeats": repeats,
        "warmup": warmup,
        "round_size": round_size,
        "work": str((work / "converted").resolve()),
        "ours": ours,
    }
    result = run_peers(job, log=log)
    result["rows"] = missing + result["rows"]
    return result
