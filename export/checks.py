"""Verification of one artifact as a list of checks run in order (today: the op
audit, then parity against eager PyTorch). Each check has a name (its key in the
report entry) and a run returning a dict with ``passed`` and ``summary``; a check
runs only when every check before it passed. ``failure_summary`` is the one place
that words a failure, for the report, the console table and the exit line."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from . import audit as audit_mod
from . import parity, targets
from .context import log
from .inputs import to_convention
from .spec import Artifact


@dataclass(frozen=True)
class Evidence:
    """What checks compare an artifact with: the parity pixels, eager logits and input names."""

    rgb: np.ndarray
    reference: np.ndarray
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[Artifact, Evidence], dict]


def _audit(artifact: Artifact, evidence: Evidence) -> dict:
    result = audit_mod.audit(artifact.format, targets.get(artifact.format).census(artifact))
    return {**asdict(result), "passed": result.passed, "summary": result.summary()}


def _parity(artifact: Artifact, evidence: Evidence) -> dict:
    log(f"{artifact.name}: parity on {len(evidence.rgb)} inputs")
    output = targets.get(artifact.format).load(artifact)(to_convention(evidence.rgb, artifact.input_convention))
    result = parity.check(evidence.reference, output, artifact.precision)
    return {**result, "summary": "; ".join(result["misses"]) or "ok"}


CHECKS: list[Check] = [Check("audit", _audit), Check("parity", _parity)]


def run_checks(artifact: Artifact, evidence: Evidence, checks: list[Check] = CHECKS) -> dict:
    """{check name: result or None (not run)} for one artifact, plus ``passed``."""
    results, passed = {}, True
    for check in checks:
        results[check.name] = check.run(artifact, evidence) if passed else None
        passed = passed and results[check.name]["passed"]
    return {**results, "passed": passed}


def failure_summary(entry: dict, checks: list[Check] = CHECKS) -> str:
    """'parity: top-1 agreement 0.50 < 0.99' for the first failed check of a report
    entry; '' when every check passed."""
    for check in checks:
        result = entry.get(check.name)
        if result is not None and not result["passed"]:
            return f"{check.name}: {result.get('summary') or 'failed'}"
    return ""
