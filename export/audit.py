"""Op audit shared by every format: an artifact's op census against its target's
allow list and deny list (``Target.allow``/``deny``/``deny_prefixes``). A denied
or unknown op fails the export."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from . import targets


@dataclass
class AuditResult:
    census: dict[str, int]
    denied: list[str]
    unknown: list[str]

    @property
    def passed(self) -> bool:
        return not self.denied and not self.unknown

    def summary(self) -> str:
        parts = []
        if self.denied:
            parts.append("denied ops: " + ", ".join(self.denied))
        if self.unknown:
            parts.append("ops outside the allow list: " + ", ".join(self.unknown))
        return "; ".join(parts) or "ok"


def audit(fmt: str, census: Counter | dict[str, int]) -> AuditResult:
    """Check a census (op name -> count) against the rules of the target ``fmt``."""
    if fmt not in targets.names():
        raise ValueError(f"no audit rules for format {fmt!r}")
    target = targets.get(fmt)
    ops = sorted(census)
    denied = [op for op in ops if target.denies(op)]
    unknown = [op for op in ops if op not in denied and op not in target.allow]
    return AuditResult(dict(sorted(census.items())), denied, unknown)
