"""Verification of one artifact as a list of checks run in order: the op audit,
parity against eager PyTorch, and (with ``--val-dir``) accuracy on the user's
labelled images. Each check (:class:`Check`) has a name (its key in the report entry), a run
returning a dict with ``passed`` (or None when it does not apply to this run), the
one wording of a result (``summary``) and the checks it needs to have passed.
``failure_summary`` joins the failed checks' summaries for the report, the console
table and the exit line."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from casvit.preprocess import IMAGENET_MEAN, IMAGENET_STD

from . import accuracy, parity, targets
from . import audit as audit_mod
from .inputs import to_convention
from .progress import log
from .spec import Artifact


@dataclass(frozen=True)
class Evidence:
    """What checks compare an artifact with: the parity pixels, eager logits and input
    names, and the run's context (the accuracy check reads its validation set)."""

    rgb: np.ndarray
    reference: np.ndarray
    names: tuple[str, ...] = ()
    context: Any = None
    mean: tuple[float, ...] = IMAGENET_MEAN  # the preprocessing record's normalization
    std: tuple[float, ...] = IMAGENET_STD
    # (height, width) -> the same evidence at that input size (pipeline._evidence_at), for artifacts that take several
    resized: Callable[[int, int], Evidence] | None = field(default=None, compare=False, repr=False)
    _runners: dict = field(default_factory=dict, compare=False, repr=False)
    _sized: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def resolution(self) -> str:
        return f"{self.rgb.shape[1]}x{self.rgb.shape[2]}"

    def at(self, height: int, width: int) -> Evidence:
        """The parity inputs and eager reference at another input size, made once."""
        if (height, width) not in self._sized:
            self._sized[(height, width)] = self.resized(height, width)
        return self._sized[(height, width)]

    def sizes(self) -> dict[tuple[int, int], Evidence]:
        """The evidence made at other input sizes so far."""
        return dict(self._sized)

    def runner(self, artifact: Artifact):
        """The artifact loaded in its own runtime, once for every check."""
        if artifact.name not in self._runners:
            self._runners[artifact.name] = targets.get(artifact.format).load(artifact)
        return self._runners[artifact.name]


@dataclass(frozen=True)
class Check:
    """One verification step: ``run`` returns a result dict with ``passed`` (None when
    it does not apply to this run); ``summary`` words a result, the one wording the
    report, the console table and the exit line use."""

    name: str
    run: Callable[[Artifact, Evidence], dict | None]
    summary: Callable[[dict], str]
    requires: tuple[str, ...] = ()  # checks that must have passed for this one to run

    def result(self, artifact: Artifact, evidence: Evidence) -> dict | None:
        """The result of running the check, with its ``summary``."""
        result = self.run(artifact, evidence)
        return None if result is None else {**result, "summary": self.summary(result)}

    def status(self, entry: dict) -> str:
        """'ok', 'FAIL: <summary>' or 'not run' for this check in a report entry."""
        result = entry.get(self.name)
        if result is None:
            return "not run"
        return "ok" if result["passed"] else f"FAIL: {self.summary(result)}"


def _audit(artifact: Artifact, evidence: Evidence) -> dict:
    result = audit_mod.audit(artifact.format, targets.get(artifact.format).census(artifact))
    return {**asdict(result), "passed": result.passed}


def _audit_summary(result: dict) -> str:
    return audit_mod.AuditResult(result["census"], result["denied"], result["unknown"]).summary()


def _parity(artifact: Artifact, evidence: Evidence) -> dict:
    """Parity at the spec's size; an artifact that accepts further sizes is checked at
    each (``sizes``: size -> result, the spec's first) and passes only if all pass."""
    result = _parity_at(artifact, evidence)
    if not artifact.input_sizes:
        return result
    sizes = {evidence.resolution: result}
    for height, width in artifact.input_sizes:
        other = evidence.at(height, width)
        sizes[other.resolution] = _parity_at(artifact, other)
    misses = [f"at {size}: {miss}" for size, r in sizes.items() for miss in r["misses"]]
    return {**result, "passed": all(r["passed"] for r in sizes.values()), "misses": misses, "sizes": sizes}


def _parity_at(artifact: Artifact, evidence: Evidence) -> dict:
    log(f"{artifact.name}: parity on {len(evidence.rgb)} inputs at {evidence.resolution}")
    output = evidence.runner(artifact)(
        to_convention(evidence.rgb, artifact.input_convention, evidence.mean, evidence.std)
    )
    return parity.check(evidence.reference, output, artifact.precision)


def _parity_summary(result: dict) -> str:
    return "; ".join(result["misses"]) or "ok"


def _accuracy(artifact: Artifact, evidence: Evidence) -> dict | None:
    return accuracy.as_entry(accuracy.check(artifact, evidence.runner(artifact), evidence.context))


# Accuracy runs after a parity miss too (only the audit must pass): its numbers say what the miss costs.
CHECKS: list[Check] = [
    Check("audit", _audit, _audit_summary),
    Check("parity", _parity, _parity_summary, ("audit",)),
    Check("accuracy", _accuracy, lambda result: result["summary"], ("audit",)),
]


def by_name(name: str, checks: list[Check] = CHECKS) -> Check:
    return next(check for check in checks if check.name == name)


def run_checks(artifact: Artifact, evidence: Evidence, checks: list[Check] = CHECKS) -> dict:
    """{check name: result or None (not run, or not applicable)} for one artifact,
    plus ``passed`` (every check that ran passed, and none was skipped for a failure)."""
    results, passed = {}, True
    for check in checks:
        ready = all(results.get(name) is not None and results[name]["passed"] for name in check.requires)
        results[check.name] = check.result(artifact, evidence) if ready else None
        if not ready or (results[check.name] is not None and not results[check.name]["passed"]):
            passed = False
    return {**results, "passed": passed}


def failure_summary(entry: dict, checks: list[Check] = CHECKS) -> str:
    """'parity: top-1 agreement 0.50 < 0.99; accuracy: ...' for the failed checks of a
    report entry; '' when every check passed."""
    return "; ".join(
        f"{check.name}: {check.summary(entry[check.name])}"
        for check in checks
        if entry.get(check.name) is not None and not entry[check.name]["passed"]
    )
