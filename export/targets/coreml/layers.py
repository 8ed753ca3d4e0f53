"""The ML Program for per-layer localization (``export.localize``): the main block's
operators (casts seen through) and any of its vars computed by the reference
interpreter (``mil.Program.run`` with their names), whole batches per op, as float32."""

from __future__ import annotations

import numpy as np

from ...spec import Artifact
from ..base import GraphOp, Intermediates
from .mil import Program, main_block

ALIASES = ("cast",)


def graph_ops(block) -> list[GraphOp]:
    """The main block's non-const operators as localization sees them (vars produced by
    const ops are not activations)."""
    constants = {out.name for op in block.operations if op.type == "const" for out in op.outputs}

    def kind(op_type: str) -> str:
        return "add" if op_type == "add" else "alias" if op_type in ALIASES else "op"

    return [
        GraphOp(
            kind(op.type),
            tuple(
                arg.name
                for binding in op.inputs.values()
                for arg in binding.arguments
                if arg.WhichOneof("binding") == "name" and arg.name not in constants
            ),
            tuple(out.name for out in op.outputs),
        )
        for op in block.operations
        if op.type != "const"
    ]


def intermediates(artifact: Artifact, input_name: str, logits_name: str, pixels: int) -> Intermediates:
    """``input_name`` / ``logits_name``: the program's input and logits vars; each
    interpreter run holds at most ``pixels`` pixels (at least one image)."""
    program = Program.load(artifact.path)
    _, block = main_block(program.spec)

    def fetch(names: list[str], x: np.ndarray) -> list[np.ndarray]:
        batch = max(1, pixels // (x.shape[-2] * x.shape[-1]))
        runs = [program.run({input_name: x[i : i + batch]}, list(names)) for i in range(0, len(x), batch)]
        return [np.concatenate([np.asarray(run[name], np.float32) for run in runs]) for name in names]

    return Intermediates(graph_ops(block), logits_name, fetch, "the reference interpreter (export.targets.coreml.mil)")
