"""Export targets. Each module has the same shape:

- ``convert(ctx) -> list[Artifact]``: write artifacts into ``ctx.workdir``;
- ``load(artifact) -> callable``: maps an NCHW float32 batch in the artifact's
  input convention to float32 logits, in the artifact's own runtime;
- ``census(artifact) -> dict[str, int]``: op name -> count, read from the file;
- ``runtime_note(artifact) -> str``: how parity was verified;
- optional ``add_arguments(parser)``: the target's own CLI options.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from ..spec import TARGET_NAMES


def get(name: str) -> ModuleType:
    if name not in TARGET_NAMES:
        raise ValueError(f"unknown target {name!r}")
    return importlib.import_module(f"{__name__}.{name}")
