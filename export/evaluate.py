"""``python -m export.evaluate OUT --val-dir FOLDER`` (``make val``): top-1/top-5 of
every artifact of an exported set on labelled images, each in its own runtime (its
target's ``load()``, the artifact's input convention, the set's preprocessing
record), and of eager PyTorch when the set's weights are at hand, with the export's
accuracy gate, without re-exporting. Every core works: each runtime runs in a pool
of worker processes (``export.evalpool``). The result is appended to the set's
report (``validations`` in report.json, a section of report.md); OUT's lock is held
from reading the set to writing the report.

Exit codes: 0 every artifact passed the gate (or, without an eager reference, ran);
1 an artifact failed the gate or could not run; 2 bad input (or OUT in use by
another run); 3 the environment failed (disk full, out of memory); 4 internal
error; 130/143 interrupted (the report is then unchanged)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from . import interrupts, options
from .accuracy import DEFAULT_MAX_DROP, judge, scores
from .context import log
from .errors import EXIT_GATE, EXIT_PASSED, ExportError, OneLineParser, outcome
from .evalpool import ArtifactRuntime, EagerRuntime, Measured, RuntimeFailed, allocate, decode, default_workers
from .evalpool import evaluate as run_pool
from .exported import ExportedSet, eager_weights, locked
from .labelled_images import ValidationSet, class_files, stratified_take
from .render import validation_console
from .spec import AccuracyOptions

TOOL = "python -m export.evaluate"
DESCRIPTION = (
    "Top-1/top-5 of every artifact of an exported set on labelled images, each in its own runtime, and of eager "
    "PyTorch when the set's weights are at hand, with the export's accuracy gate; appended to the set's report."
)
EPILOG = (
    "exit codes (one line on stderr): 0 every artifact passed the gate (or, without an eager reference, ran); 1 an "
    "artifact failed the gate or could not run; 2 bad input (or OUT in use by another run); 3 the environment failed "
    "(disk full, out of memory); 4 internal error (--debug shows the traceback); 130/143 interrupted (the report is "
    "unchanged)."
)


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog=TOOL,
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    p.add_argument("out", type=Path, metavar="OUT", help="the output folder of an export (manifest.json, report.json)")
    options.add_arguments(p, AccuracyOptions, "labelled images and the gate (as python -m export takes them)")
    p.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        metavar="N",
        help="worker processes per runtime, one thread each (default: the cores this process may use, %(default)s)",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        metavar="FILE",
        help="the set's weights when its recorded checkpoint moved, or when it was exported from an in-memory "
        "model (must be the same weights: sha256, or the set's golden logits)",
    )
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return p


def validate(out_dir: Path, accuracy: AccuracyOptions, workers: int, checkpoint: Path | None = None) -> dict:
    """Measure the set of ``out_dir`` on ``accuracy.val_dir`` and append the result to
    its report; returns the report's new ``validations`` entry."""
    if accuracy.val_dir is None:
        raise ExportError("--val-dir is required: labelled images, one subfolder per class named like a label")
    if workers < 1:
        raise ExportError(f"--workers {workers}: expected at least 1")
    with locked(out_dir, "validating it") as exported:
        entry = _measure(exported, accuracy, workers, checkpoint)
        with interrupts.deferred():  # report.json and report.md are written together
            exported.append("validations", entry)
    return entry


def _measure(exported: ExportedSet, accuracy: AccuracyOptions, workers: int, checkpoint: Path | None) -> dict:
    root = Path(accuracy.val_dir).resolve()
    classes, class_ids, files, targets = class_files(root, list(exported.labels))
    keep, excluded = _without_calibration(exported, root, files)
    if accuracy.val_count:
        keep = keep[stratified_take(targets[keep], accuracy.val_count, exported.spec["seed"], "--val-count")]
    load_average = [round(x, 2) for x in os.getloadavg()]  # the figures depend on what else runs
    weights, eager_note = eager_weights(exported, checkpoint)
    log(f"validating {exported.out_dir}: {len(keep)} images in {len(classes)} classes from {root}")
    log(f"eager PyTorch: {eager_note}")
    record, chosen = exported.record, [files[i] for i in keep]
    with tempfile.TemporaryDirectory(prefix="casvit-val-") as tmp:
        images = allocate(Path(tmp), len(chosen), record.height, record.width)
        converted, decode_seconds = decode(chosen, record, images, workers)
        log(f"decoded {len(chosen)} images in {decode_seconds:.1f} s on {workers} processes")
        truth, eager, eager_logits = targets[keep], None, None
        if weights is not None:
            measured = run_pool(EagerRuntime(weights), images, "normalized", record.mean, record.std, workers, "eager")
            eager_logits = measured.logits
            eager = {**scores(eager_logits, truth, class_ids), **_speed(measured)}
            log(f"eager: top-1 {eager['top1']:.2f}%, {eager['images_per_second']:.1f} images/s")
        rows = [
            _artifact_row(exported, a, images, truth, class_ids, eager, eager_logits, accuracy, workers)
            for a in exported.artifacts
        ]
    described = ValidationSet(root, classes, class_ids, [str(f.relative_to(root)) for f in chosen], truth, None)
    described.available, described.converted = len(files), converted
    facts = {**described.describe(), "calibration_images": len(excluded), "calibration_files": excluded}
    if len(chosen) + len(excluded) == len(files):
        del facts["measured_files"]  # every image of the folder: the folder says which
    return {
        "tool": TOOL,
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        **facts,
        "max_top1_drop": accuracy.max_top1_drop,
        "default_max_top1_drop": DEFAULT_MAX_DROP,
        "workers": workers,
        "cores": os.cpu_count(),
        "load_average_at_start": load_average,
        "decode_seconds": round(decode_seconds, 2),
        "eager_note": eager_note,
        "eager": eager,
        "artifacts": rows,
        "passed": all(r["passed"] is not False for r in rows),
    }


def _without_calibration(exported: ExportedSet, root: Path, files: list[Path]) -> tuple[np.ndarray, list[str]]:
    """Indices of ``files`` to measure and the names left out: the images the export
    took from this folder for int8 calibration (``--calib-from-val``)."""
    acc = exported.report.get("accuracy") or {}
    taken = set(acc.get("calibration_files") or []) if acc.get("folder") == str(root) else set()
    names = [str(f.relative_to(root)) for f in files]
    return np.asarray([i for i, n in enumerate(names) if n not in taken], np.int64), sorted(taken & set(names))


def _speed(measured: Measured) -> dict:
    return {
        "seconds": round(measured.seconds, 2),
        "images_per_second": round(measured.images_per_second, 2),
        "wall_seconds": round(measured.wall_seconds, 2),
        "load_seconds": round(measured.load_seconds, 2),
        "worker_pids": list(measured.worker_pids),
    }


def _artifact_row(exported, artifact, images, truth, class_ids, eager, eager_logits, accuracy, workers) -> dict:
    """One artifact's validation entry: its scores, the gate's verdict and its speed."""
    entry = exported.entry(artifact.name)
    base = {k: entry[k] for k in ("name", "file", "format", "precision", "input_convention", "runtime")}
    record = exported.record
    try:
        runtime = ArtifactRuntime(artifact)
        measured = run_pool(runtime, images, artifact.input_convention, record.mean, record.std, workers, artifact.name)
    except RuntimeFailed as e:
        log(f"{artifact.name}: FAILED: could not run: {e}")
        return {**base, "passed": False, "summary": f"could not run: {e}"}
    row = scores(measured.logits, truth, class_ids, eager_logits)
    if eager is None:
        verdict = {**row, "passed": None, "summary": "not gated: no eager reference"}
    else:
        result = judge(row, eager, artifact.precision, accuracy.max_top1_drop)
        verdict = {**result.details, "passed": result.passed, "summary": result.summary}
    log(
        f"{artifact.name}: top-1 {row['top1']:.2f}%, {measured.images_per_second:.1f} images/s: "
        + ("ok" if verdict["passed"] else "not gated" if verdict["passed"] is None else "FAILED")
        + f" ({verdict['summary']})"
    )
    return {**base, **verdict, **_speed(measured)}


def main(argv: list[str] | None = None) -> int:
    values = vars(build_parser().parse_args(argv))
    debug, out, workers, checkpoint = (values.pop(k) for k in ("debug", "out", "workers", "checkpoint"))
    previous_handlers = interrupts.install()
    try:
        entry = validate(out, options.build(AccuracyOptions, values), workers, checkpoint)
    except BaseException as e:  # noqa: BLE001 -- every ending becomes one line and a documented code
        if debug and not isinstance(e, KeyboardInterrupt):
            traceback.print_exc()
        code, message = outcome(e)
        print(f"error: {message}", file=sys.stderr)
        return code
    finally:
        interrupts.restore(previous_handlers)
    print(validation_console(entry, out))
    failed = [a for a in entry["artifacts"] if a["passed"] is False]
    if failed:
        shown = "; ".join(f"{a['name']} ({a['summary']})" for a in failed)
        print(f"error: gate failed for {shown}; report: {out / 'report.md'}", file=sys.stderr)
        return EXIT_GATE
    return EXIT_PASSED


if __name__ == "__main__":
    sys.exit(main())
