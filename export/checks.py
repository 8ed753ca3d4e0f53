"""Verification of one artifact as a list of checks run in order: the op audit,
parity against eager PyTorch, and (with ``--val-dir``) accuracy on the user's
labelled images. Each check has a name (its key in the report entry), the checks
it needs to have passed, and a run returning a dict with ``passed`` and
``summary`` (or None when it does not apply to this run). ``failure_summary`` is
the one place that words a failure, for the report, the console table and the
exit line."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np

from casvit.preprocess import IMAGENET_MEAN, IMAGENET_STD

from . import accuracy, parity, targets
from . import audit as audit_mod
from .context import log
from .inputs import to_convention
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
    _runners: dict = field(default_factory=dict, compare=False, repr=False)

    def runner(self, artifact: Artifact):
        """The artifact loaded in its own runtime, once for every check."""
        if artifact.name not in self._runners:
            self._runners[artifact.name] = targets.get(artifact.format).load(artifact)
        return self._runners[artifact.name]


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[Artifact, Evidence], dict | None]
    requires: tuple[str, ...] = ()  # checks that must have passed for this one to run


def _audit(artifact: Artifact, evidence: Evidence) -> dict:
    result = audit_mod.audit(artifact.format, targets.get(artifact.format).census(artifact))
    return {**asdict(result), "passed": result.passed, "summary": result.summary()}


def _parity(artifact: Artifact, evidence: Evidence) -> dict:
    log(f"{artifact.name}: parity on {len(evidence.rgb)} inputs")
    output = evidence.runner(artifact)(to_convention(evidence.rgb, artifact.input_convention, evidence.mean, evidence.std))
    result = parity.check(evidence.reference, output, artifact.precision)
    return {**result, "summary": "; ".join(result["misses"]) or "ok"}


def _accuracy(artifact: Artifact, evidence: Evidence) -> dict | None:
    return accuracy.as_entry(accuracy.check(artifact, evidence.runner(artifact), evidence.context))


# Accuracy runs after a parity miss too (only the audit must pass): its numbers say what the miss costs.
CHECKS: list[Check] = [Check("audit", _audit), Check("parity", _parity, ("audit",)),
                       Check("accuracy", _accuracy, ("audit",))]


def run_checks(artifact: Artifact, evidence: Evidence, checks: list[Check] = CHECKS) -> dict:
    """{check name: result or None (not run, or not applicable)} for one artifact,
    plus ``passed`` (every check that ran passed, and none was skipped for a failure)."""
    results, passed = {}, True
    for check in checks:
        ready = all(results.get(name) is not None and results[name]["passed"] for name in check.requires)
        results[check.name] = check.run(artifact, evidence) if ready else None
        if not ready or (results[check.name] is not None and not results[check.name]["passed"]):
            passed = False
    return {**results, "passed": passed}


def failure_summary(entry: dict, checks: list[Check] = CHECKS) -> str:
    """'parity: top-1 agreement 0.50 < 0.99; accuracy: ...' for the failed checks of a
    report entry; '' when every check passed."""
    return "; ".join(f"{check.name}: {entry[check.name].get('summary') or 'failed'}" for check in checks
                     if entry.get(check.name) is not None and not entry[check.name]["passed"])
