"""What an output set is: ``manifest.json`` (every file with its sha256), the names
in a folder that this tool wrote (``our_entries``: exact names with the tool's
marker), and paths read from a set, which must stay inside it (``member``).

Every path a set's manifest or model description names is relative, has no
``..`` and resolves, symbolic links followed, inside the set's folder: the tools
that read a set (``android_assets``, ``verify_arm``) take nothing else."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from pathlib import Path, PurePosixPath

from . import targets
from .errors import ExportError
from .fsutil import sha256_of

MANIFEST, REPORT_JSON, REPORT_MD = "manifest.json", "report.json", "report.md"
RECORDS = (MANIFEST, REPORT_JSON, REPORT_MD)
REJECTED = "rejected"
# Reports that later checks write beside a set (``make verify-arm``): ours, replaced with the set.
# Reports that later checks write beside a set: ours, replaced with the set.
VERIFY_ARM_REPORTS = ("verify-arm.json", "verify-arm.md")  # make verify-arm
BENCH_REPORTS = ("bench.json", "bench.md")  # make bench OUT=... (python -m benchmarks.exported)
CHECK_REPORTS = VERIFY_ARM_REPORTS + BENCH_REPORTS
TOOL = "casvit-deploy"
SHA256 = re.compile(r"[0-9a-f]{64}")


def converter_log(target: str) -> str:
    """The name of a target's converter log, kept in OUT when its conversion fails (no set is swapped then)."""
    return f"{target}-converter.log"


def log_marker(target: str) -> bytes:
    """The first line of a converter log this tool keeps: what makes the file ours."""
    return f"# {TOOL}: {target} converter log, kept because the conversion failed\n".encode()


def is_marked_log(path: Path, target: str) -> bool:
    """``path`` is a converter log this tool kept (a regular file starting with our marker)."""
    marker = log_marker(target)
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        with open(path, "rb") as f:
            return f.read(len(marker)) == marker
    except OSError:
        return False


def plain_relative(name: object) -> bool:
    """A path a set may name: a non-empty relative POSIX path without '.', '..' or empty parts."""
    return (
        isinstance(name, str)
        and bool(name)
        and "\0" not in name
        and not PurePosixPath(name).is_absolute()
        and all(part not in ("", ".", "..") for part in name.split("/"))
    )


def manifest_problem(manifest: object) -> str | None:
    """Why a parsed manifest is not one of ours or is malformed; None when it is sound."""
    if not isinstance(manifest, dict):
        return f"not a JSON object (found {type(manifest).__name__})"
    if manifest.get("tool") != TOOL and "versions" not in manifest:  # "versions": manifests before "tool"
        return f"not written by {TOOL}"
    files = manifest.get("files")
    if not isinstance(files, list):
        return "no 'files' list"
    for i, entry in enumerate(files):
        if not isinstance(entry, dict):
            return f"files[{i}] is not an object with path and sha256"
        if not plain_relative(entry.get("path")):
            return f"files[{i}].path {entry.get('path')!r} is not a relative path inside the set"
        if not isinstance(entry.get("sha256"), str) or not SHA256.fullmatch(entry["sha256"]):
            return f"files[{i}].sha256 is not a sha256 hex digest"
    return None


def read_manifest(folder: Path) -> dict | None:
    """The manifest of one of our sets in ``folder`` (sound, see ``manifest_problem``), or None."""
    try:
        manifest = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return None if manifest_problem(manifest) else manifest


def read_json(path: Path, missing: str) -> object:
    """The JSON document in ``path``; a one-line ExportError (``missing`` when there is no such file)."""
    if not path.is_file():
        raise ExportError(missing)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ExportError(f"{path}: not readable JSON ({e})") from None


def load_manifest(folder: Path) -> dict:
    """The manifest of the set in ``folder``; a one-line ExportError when it is missing,
    unreadable, not ours or malformed."""
    path = Path(folder) / MANIFEST
    manifest = read_json(path, f"no {MANIFEST} in {folder}; is this an export output folder?")
    problem = manifest_problem(manifest)
    if problem:
        raise ExportError(f"{path}: {problem}")
    return manifest


def listed(manifest: dict) -> dict[str, str]:
    """path -> sha256 of every file a sound manifest lists."""
    return {entry["path"]: entry["sha256"] for entry in manifest["files"]}


def member(folder: Path, name: object, what: str = "path") -> Path:
    """``folder / name`` for a path read from a set; a one-line ExportError unless it is
    relative, without '..', and resolves (symbolic links followed) inside ``folder``."""
    if not plain_relative(name):
        raise ExportError(f"{folder}: {what} {name!r} is not a relative path inside the folder")
    path = Path(folder) / name
    base, real = os.path.realpath(folder), os.path.realpath(path)
    if os.path.commonpath([base, real]) != base:
        raise ExportError(f"{path}: {what} leads outside {folder} (symbolic link to {real})")
    return path


def read_listed(folder: Path, name: str, sha256: str) -> bytes:
    """The bytes of a listed file, read once and checked against the manifest's sha256
    (a caller that writes these bytes copies exactly the file that was checked)."""
    path = member(folder, name)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ExportError(f"{path}: listed in {MANIFEST} but missing") from None
    except IsADirectoryError:
        raise ExportError(f"{path}: listed in {MANIFEST} as a file but is a folder") from None
    if hashlib.sha256(data).hexdigest() != sha256:
        raise ExportError(
            f"{path} differs from its manifest entry (sha256); the output set was changed after the export: re-run it"
        )
    return data


def our_entries(folder: Path) -> set[str]:
    """Top-level names in ``folder`` this tool wrote: in a folder with our manifest, the
    records, check reports and listed files; ``rejected/`` holding our manifest;
    converter logs that start with our marker. Nothing else is ever removed or
    replaced by a run (a folder that is ours goes with what is inside it)."""
    folder = Path(folder)
    names = {converter_log(t) for t in targets.names() if is_marked_log(folder / converter_log(t), t)}
    manifest = read_manifest(folder)
    if manifest is not None:
        names.update(RECORDS, CHECK_REPORTS)
        names.update(PurePosixPath(path).parts[0] for path in listed(manifest))
    if read_manifest(folder / REJECTED) is not None:
        names.add(REJECTED)  # a rejected set of this tool
    return names


def set_problems(folder: Path, rejected: bool) -> list[str]:
    """Why the set in ``folder`` is not consistent ([] when it is): every listed file
    present with its sha256, report and manifest of the same run; a rejected set
    holds nothing unlisted."""
    manifest = read_manifest(folder)
    if manifest is None:
        has_records = any((folder / name).exists() for name in RECORDS)
        return [f"{MANIFEST} missing or not ours"] if has_records or rejected else []
    found = []
    if bool(manifest.get("rejected")) != rejected:
        found.append(f"{MANIFEST} says rejected={manifest.get('rejected')}")
    for path, sha256 in listed(manifest).items():
        if not (folder / path).exists():
            found.append(f"{path}: listed but missing")
        elif sha256_of(folder / path) != sha256:
            found.append(f"{path}: sha256 differs from the manifest")
    if rejected:
        names = {path.split("/")[0] for path in listed(manifest)} | set(RECORDS)
        found += [f"{name}: not listed in the manifest" for name in sorted(set(os.listdir(folder)) - names)]
    try:
        report = json.loads((folder / REPORT_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return found + [f"{REPORT_JSON} missing or unreadable"]
    if "run_id" in manifest and (not isinstance(report, dict) or report.get("run_id") != manifest["run_id"]):
        found.append(f"{REPORT_JSON} and {MANIFEST} come from different runs")
    return found
