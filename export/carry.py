"""Sets that grow one target at a time: an export replaces only the artifacts of the
targets it produces and carries the others of the set in ``OUT`` into its new set.

A set's identity is what makes its artifacts comparable: the weights, the variant,
the resolution, the class count and labels, the preprocessing record and the parity
inputs. It is recorded in the manifest and the report (``set_identity``). Artifacts
are carried only from a set of the same identity, with their manifest records and
their report entries (their checks are not run again: they were verified by the run
that made them, on the same golden data); an ``OUT`` holding a set of another
identity is refused unless ``--replace-set``. Each carried file is copied into the
new set and its copy checked against the old manifest's sha256, so what is carried is
exactly what was verified. Everything runs under the transaction's lock."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .errors import ExportError
from .fsutil import sha256_of
from .manifest import REPORT_JSON, listed, member, read_manifest
from .report import ArtifactReport

IDENTITY = "set_identity"  # its key in the manifest and report.json


def identity(spec, weights: dict, labels: list[str], preprocessing: dict, names: list[str], rgb: np.ndarray) -> dict:
    """The identity of the set a run makes (see the module docstring)."""
    if weights.get("sha256"):
        source = f"sha256 {weights['sha256']}" + (" (EMA)" if getattr(spec, "use_ema", False) else "")
    else:
        source = f"random, seed {spec.seed}"
    return {
        "weights": source,
        "variant": spec.variant,
        "resolution": spec.resolution,
        "num_classes": len(labels),
        "labels_sha256": hashlib.sha256("\n".join(labels).encode()).hexdigest(),
        "preprocessing": preprocessing,
        "parity_inputs": {"names": list(names), "rgb_sha256": hashlib.sha256(np.ascontiguousarray(rgb)).hexdigest()},
    }


WHAT = {
    "weights": "weights",
    "variant": "variant",
    "resolution": "resolution",
    "num_classes": "class count",
    "labels_sha256": "labels",
    "preprocessing": "preprocessing record",
    "parity_inputs": "parity inputs",
}


def differences(old: dict | None, new: dict) -> list[str]:
    """What differs between two identities, for people ('weights (random, seed 0 -> random, seed 1)')."""
    if not isinstance(old, dict):
        return ["the set records no identity (an earlier version wrote it)"]
    found = []
    for key, what in WHAT.items():
        if old.get(key) != new[key]:
            short = isinstance(new[key], (str, int)) and key != "labels_sha256"
            found.append(f"{what} ({_short(old.get(key))} -> {_short(new[key])})" if short else what)
    return found


def _short(value) -> str:
    text = str(value)
    return text[:18] + "..." if text.startswith("sha256 ") else text


@dataclass(frozen=True)
class Plan:
    """What a run does to the set in OUT: artifacts it carries (their report entries),
    and the names of the old set's artifacts, to tell replaced from removed once the
    run's own artifacts are known."""

    kept: tuple[ArtifactReport, ...] = ()
    old_names: tuple[str, ...] = ()

    def outcome(self, produced: list[str]) -> dict[str, list[str]]:
        """kept, replaced and removed artifact names once this run produced ``produced``."""
        kept = [a.name for a in self.kept]
        gone = [n for n in self.old_names if n not in kept]
        return {
            "kept": kept,
            "replaced": [n for n in gone if n in produced],
            "removed": [n for n in gone if n not in produced],
        }


def plan(out_dir: Path, new_identity: dict, targets: tuple[str, ...], replace_set: bool) -> Plan:
    """Read the set in ``out_dir`` (under its lock) and decide what to carry; a one-line
    ExportError when it holds a set of another identity (without ``replace_set``) or a
    carried file changed since its set was written."""
    manifest = read_manifest(out_dir)
    if manifest is None:
        return Plan()
    report = _read_report(out_dir)
    old = tuple(a["name"] for a in report.get("artifacts", []) if isinstance(a, dict) and "name" in a)
    differ = differences(manifest.get(IDENTITY), new_identity)
    if differ and not replace_set:
        raise ExportError(
            f"{out_dir} holds a set that differs in {', '.join(differ)}, so its artifacts cannot join this "
            "run's: use another --out, or --replace-set to replace the whole set"
        )
    if differ:
        return Plan((), old)
    files = listed(manifest)
    kept = []
    for entry in report.get("artifacts", []):
        if entry.get("format") in targets:
            continue
        artifact = _entry(out_dir, entry)
        for record in artifact.files:
            _check_listed(out_dir, record, files)
        kept.append(replace(artifact, status="kept", carried_from=artifact.carried_from or report.get("run_id")))
    return Plan(tuple(kept), old)


def _read_report(out_dir: Path) -> dict:
    try:
        report = json.loads((out_dir / REPORT_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ExportError(
            f"{out_dir / REPORT_JSON}: not readable ({e}); --replace-set replaces the whole set"
        ) from None
    if not isinstance(report, dict) or not isinstance(report.get("artifacts"), list):
        raise ExportError(f"{out_dir / REPORT_JSON}: no 'artifacts' list; --replace-set replaces the whole set")
    return report


def _entry(out_dir: Path, entry: object) -> ArtifactReport:
    try:
        return ArtifactReport.from_json(entry)
    except (TypeError, ValueError, KeyError) as e:
        raise ExportError(
            f"{out_dir / REPORT_JSON}: an artifact entry is malformed ({e}); --replace-set replaces the whole set"
        ) from None


def _check_listed(out_dir: Path, record: dict, files: dict[str, str], path: Path | None = None) -> None:
    """``path`` (default: the record's file in OUT) has the sha256 the manifest lists for it."""
    name = record.get("path")
    if name not in files or files[name] != record.get("sha256"):
        raise ExportError(f"{out_dir}: {name!r} is not listed in the set's manifest as its report says")
    path = path or member(out_dir, name)
    if not os.path.lexists(path) or sha256_of(path) != files[name]:
        raise ExportError(
            f"{out_dir / name} changed since its set was written (sha256 differs from the manifest); "
            "re-export its target, or --replace-set to replace the whole set"
        )


def carry_into(txn, kept: tuple[ArtifactReport, ...]) -> list[ArtifactReport]:
    """Copy the kept artifacts' files from OUT into the transaction's new set, each copy
    checked against the old manifest; returns their report entries."""
    manifest = read_manifest(txn.out_dir)
    files = listed(manifest) if manifest is not None else {}
    for artifact in kept:
        for record in artifact.files:
            name = record["path"]
            dst = txn.new_dir / name
            if not os.path.lexists(dst):
                src = member(txn.out_dir, name)
                dst.parent.mkdir(parents=True, exist_ok=True)
                if src.is_dir():
                    shutil.copytree(src, dst)
                else:
                    shutil.copy2(src, dst)
                txn.records.append(dict(record))
            _check_listed(txn.out_dir, record, files, dst)
    return list(kept)
