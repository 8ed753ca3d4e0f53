"""The report of a run as typed records, built once after the checks and the
assembly of the set, and never edited afterwards; ``export.render`` turns one into
report.json, report.md and the console table. ``to_json`` gives the layout
report.json has always had (the tools reading it, verify-arm and android_assets
among them, rely on it)."""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any


def _plain(value: Any) -> Any:
    """JSON-ready: paths as strings, tuples as lists, records as dicts."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


OPTIONAL = ("localization", "fallback")  # ArtifactReport entries report.json has only when they were run


@dataclass(frozen=True)
class ArtifactReport:
    """One artifact: what it is, each check's result (None: not run), what running it
    measured, its files in the set and its status there."""

    name: str
    format: str
    precision: str
    file: str
    size_bytes: int
    sha256: str
    convert_seconds: float
    input_convention: str
    runtime: str  # how it was run for parity
    details: dict[str, Any]
    checks: dict[str, dict | None]  # check name -> result, in the order they ran
    passed: bool
    companions: tuple[str, ...]
    runtime_facts: dict[str, Any]
    files: tuple[dict, ...]  # manifest records of the artifact and its companions
    status: str  # "promoted", "kept" (carried from OUT's set), "rejected", "rejected: another artifact failed"
    carried_from: str | None = None  # kept artifacts: the run_id of the run that made and verified it
    localization: dict[str, Any] | None = None  # per-layer localization (export.localize); None: not run
    fallback: dict[str, Any] | None = None  # what the target's repair tried and kept; None: not tried

    def check(self, name: str) -> dict | None:
        return self.checks.get(name)

    def to_json(self) -> dict:
        own = {k: v for k, v in asdict(self).items() if k != "checks" and (v is not None or k not in OPTIONAL)}
        return _plain({**own, **self.checks})

    @classmethod
    def from_json(cls, entry: dict) -> ArtifactReport:
        """The inverse of ``to_json`` (a report.json entry; keys that are not fields are
        the checks, in their order); a KeyError names a missing field."""
        if not isinstance(entry, dict):
            raise ValueError(f"an artifact entry is a {type(entry).__name__}, not an object")
        own = {f.name for f in fields(cls)} - {"checks"}
        missing = [f.name for f in fields(cls) if f.name in own and f.default is MISSING and f.name not in entry]
        if missing:
            raise KeyError(f"{entry.get('name', 'an artifact')} has no {missing[0]!r}")
        values = {k: v for k, v in entry.items() if k in own}
        values["companions"] = tuple(values["companions"])
        values["files"] = tuple(values["files"])
        if not all(isinstance(f, dict) and isinstance(f.get("path"), str) for f in values["files"]):
            raise ValueError(f"{values['name']}: 'files' holds an entry without a path")
        return cls(**values, checks={k: v for k, v in entry.items() if k not in own})


@dataclass(frozen=True)
class RunReport:
    """A whole run: its spec, weights, tools, inputs, every artifact and the verdict."""

    tool: str
    run_id: str
    passed: bool
    spec: dict[str, Any]
    weights: dict[str, Any]
    versions: dict[str, str]
    network_attempts: int
    offline: dict[str, Any]
    preprocessing: dict[str, Any]
    parity_inputs: dict[str, Any]
    artifacts: tuple[ArtifactReport, ...]
    golden: dict[str, Any]
    golden_sizes: dict[str, dict] = field(default_factory=dict)  # further input size -> its golden file record
    labels: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # the tool's, shown on the console too
    library_warnings: tuple[str, ...] = ()  # the converters' own caveats, in the report only
    accuracy: dict[str, Any] | None = None
    previous_set_kept: bool | None = None  # rejected runs: whether OUT kept an earlier set
    set_identity: dict[str, Any] = field(default_factory=dict)  # what makes artifacts comparable (export.carry)
    localization_picture: dict[str, Any] | None = None  # its manifest record, when an artifact was localized
    extra: dict[str, Any] = field(default_factory=dict)  # more top-level entries, by name

    @property
    def rejected(self) -> bool:
        return not self.passed

    def to_json(self) -> dict:
        out = {
            "tool": self.tool,
            "run_id": self.run_id,
            "passed": self.passed,
            "rejected": self.rejected,
            "spec": self.spec,
            "labels": list(self.labels),
            "weights": self.weights,
            "versions": self.versions,
            "network_attempts": self.network_attempts,
            "offline": self.offline,
            "preprocessing": self.preprocessing,
            "parity_inputs": self.parity_inputs,
            "artifacts": [a.to_json() for a in self.artifacts],
            "warnings": list(self.warnings),
            "library_warnings": list(self.library_warnings),
            "accuracy": self.accuracy,
            "golden": {**self.golden, **({"sizes": self.golden_sizes} if self.golden_sizes else {})},
            "set_identity": self.set_identity,
            **({} if self.passed else {"previous_set_kept": self.previous_set_kept}),
            **({} if self.localization_picture is None else {"localization_picture": self.localization_picture}),
            **self.extra,
        }
        return _plain(out)

    def manifest_fields(self) -> dict:
        """What the manifest says about the set besides its files."""
        return {
            "variant": self.spec["variant"],
            "resolution": self.spec["resolution"],
            "weights": self.weights,
            "versions": self.versions,
            "set_identity": self.set_identity,
        }


def spec_entry(spec, num_classes: int) -> dict:
    """The report's ``spec``: every option as given or resolved, plus the resolution and class count."""
    d = _plain(asdict(spec))
    d["target_options"] = {k: v for k, v in d["target_options"].items() if k in spec.targets}
    d["res"] = list(spec.res)
    d["resolution"] = spec.resolution
    d["num_classes"] = num_classes
    return d
