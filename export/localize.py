"""Per-layer localization: where an artifact's numbers leave eager PyTorch's.

The parity inputs go through the eager deploy model and through the artifact in its
own runtime (the target's ``intermediates`` hook), and the tensors at every block
boundary that both have are compared: the stem's output, each residual sum of every
block (after the local integration, the attention and the MLP), each downsample and
the logits.

The boundaries are matched by the graph's structure, not by names that converters
rewrite: a residual sum is an elementwise add one of whose inputs is also read by
another operator (the skip connection); quantize, dequantize and cast ops are seen
through. In execution order these adds are the model's residual sums in order, the
skip input of the first is the stem's output, and a skip input that is not the
previous sum is a downsample's output. A graph whose sequence of boundaries differs
from the model's is reported as not matched, never guessed.

Per boundary: max abs, max rel (max abs / max |eager|) and the lowest cosine over the
inputs. The budget of boundary ``k`` of ``D`` (counted from 1) is the artifact's
parity tolerance (``export.parity``) scaled to its depth: ``sqrt(k / D)`` of the
logits' tolerance for max rel and for ``1 - cosine``, the growth of independent
rounding errors added layer after layer (a random walk); the report names the first
boundary over it.

It runs only for an artifact that failed its parity or accuracy check, or for every
artifact with ``--explain``: a healthy export pays nothing. ``export.localize_report``
draws and words the results. After it, a target may repair a failed
artifact (``Target.fallback``: TFLite int8 keeps its worst layers in float); the
repaired artifact replaces the failed one only when it passes every check.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

import numpy as np
import torch

from casvit.layers import AdditiveBlock

from . import progress, targets
from .context import log
from .fsutil import sha256_of, size_of
from .inputs import to_convention
from .parity import tolerance_for
from .spec import Artifact
from .targets import GraphOp, Repair

CHUNK = 8  # images per eager forward pass
NUMERICAL_CHECKS = ("parity", "accuracy")  # the checks whose misses localization explains


@dataclass(frozen=True)
class Boundary:
    """A point of the model where eager and artifact tensors are compared."""

    name: str  # "stem", "stage1.block0.attn", "downsample2", "logits"
    module: str  # the deploy model's module whose output (or residual sum) it is
    kind: str  # "stem" | "residual" | "downsample" | "logits"


@torch.no_grad()
def eager_boundaries(model: torch.nn.Module, x: np.ndarray) -> tuple[list[Boundary], dict[str, np.ndarray]]:
    """The deploy model's boundaries and their tensors (NCHW float32) for the batch ``x``
    (in the model's input convention), read with forward hooks. A block's residual sums
    are its input plus each branch output in turn, as ``AdditiveBlock.forward`` adds them."""
    boundaries: list[Boundary] = []
    chunks: dict[str, list[np.ndarray]] = {}
    running: dict[int, torch.Tensor] = {}  # per block: its input plus the branches so far
    handles = []

    def boundary(name: str, module_name: str, kind: str) -> str:
        boundaries.append(Boundary(name, module_name, kind))
        chunks[name] = []
        return name

    def keep(name: str, tensor: torch.Tensor) -> None:
        chunks[name].append(tensor.numpy().astype(np.float32, copy=True))

    def output_of(module: torch.nn.Module, name: str) -> None:
        handles.append(module.register_forward_hook(lambda m, args, out: keep(name, out)))

    def residual_sum(block: torch.nn.Module, branch: torch.nn.Module, name: str) -> None:
        def hook(m, args, out):
            running[id(block)] = running[id(block)] + out
            keep(name, running[id(block)])

        handles.append(branch.register_forward_hook(hook))

    try:
        output_of(model.patch_embed, boundary("stem", "patch_embed", "stem"))
        stage = 0
        for index, module in enumerate(model.network):
            if not (isinstance(module, torch.nn.Sequential) and all(isinstance(b, AdditiveBlock) for b in module)):
                output_of(module, boundary(f"downsample{stage}", f"network.{index}", "downsample"))
                continue
            for j, block in enumerate(module):
                handles.append(block.register_forward_pre_hook(lambda m, args: running.__setitem__(id(m), args[0])))
                for part in ("local_perception", "attn", "mlp"):
                    name = boundary(
                        f"stage{stage}.block{j}.{part.split('_')[0]}", f"network.{index}.{j}.{part}", "residual"
                    )
                    residual_sum(block, getattr(block, part), name)
            stage += 1
        boundary("logits", "classifier", "logits")
        for i in range(0, len(x), CHUNK):
            keep("logits", model(torch.from_numpy(np.ascontiguousarray(x[i : i + CHUNK], np.float32))))
    finally:
        for handle in handles:
            handle.remove()
    return boundaries, {name: np.concatenate(parts) for name, parts in chunks.items()}


def trunk(ops: list[GraphOp], output: str) -> list[tuple[str, str]]:
    """``(kind, tensor)`` of every boundary found in a graph, in order (see the module
    docstring): ``stem``, then per residual sum an optional ``downsample`` and the
    ``residual``, then ``logits`` (``output``)."""
    parent: dict[str, str] = {}

    def find(t: str) -> str:
        while parent.get(t, t) != t:
            t = parent[t]
        return t

    for op in ops:
        if op.kind == "alias" and op.inputs:
            parent[find(op.outputs[0])] = find(op.inputs[0])
    readers = Counter(find(t) for op in ops if op.kind != "alias" for t in set(op.inputs))
    produced = {find(t): t for op in ops if op.kind != "alias" for t in op.outputs}
    found, previous = [], None
    for op in ops:
        if op.kind != "add" or len(op.inputs) != 2:
            continue
        skips = [t for t in op.inputs if readers[find(t)] > 1]
        if len(skips) != 1:
            continue
        skip = find(skips[0])
        if previous is None or skip != previous:
            found.append(("stem" if previous is None else "downsample", produced.get(skip, skips[0])))
        found.append(("residual", op.outputs[0]))
        previous = find(op.outputs[0])
    return [*found, ("logits", output)]


def _metrics(eager: np.ndarray, other: np.ndarray) -> dict[str, float]:
    e = eager.reshape(len(eager), -1).astype(np.float64)
    a = other.reshape(len(other), -1).astype(np.float64)
    diff = np.abs(a - e)
    cosine = (e * a).sum(1) / (np.linalg.norm(e, axis=1) * np.linalg.norm(a, axis=1) + 1e-30)
    return {
        "max_abs": float(diff.max()),
        "max_rel": float(diff.max() / (np.abs(e).max() + 1e-30)),
        "min_cosine": float(cosine.min()),
        "finite": bool(np.isfinite(a).all()),
    }


class Localizer:
    """Compares artifacts with the eager deploy model on the parity inputs; the eager
    tensors are computed once, on first use."""

    def __init__(self, evidence):
        self.evidence = evidence
        self._eager = None

    def eager(self) -> tuple[list[Boundary], dict[str, np.ndarray]]:
        if self._eager is None:
            e = self.evidence
            x = to_convention(e.rgb, "normalized", e.mean, e.std)
            self._eager = eager_boundaries(e.context.deploy_model(embed_normalization=False), x)
        return self._eager

    def inputs(self, artifact: Artifact) -> np.ndarray:
        e = self.evidence
        return to_convention(e.rgb, artifact.input_convention, e.mean, e.std)

    def __call__(self, artifact: Artifact) -> dict:
        """The localization of ``artifact`` as the report records it."""
        boundaries, eager = self.eager()
        view = targets.get(artifact.format).intermediates(artifact)
        found = trunk(view.ops, view.output)
        kinds = [b.kind for b in boundaries]
        if [kind for kind, _ in found] != kinds:
            return {
                "matched": False,
                "runtime": view.runtime,
                "summary": f"the graph's boundaries ({Counter(k for k, _ in found)['residual']} residual sums) "
                f"do not match the model's ({kinds.count('residual')})",
            }
        names = [tensor for _, tensor in found]
        values = view.fetch(names, self.inputs(artifact))
        tolerance = tolerance_for(artifact.precision)
        layers, first = [], None
        for depth, (boundary, tensor, value) in enumerate(zip(boundaries, names, values), start=1):
            reference = eager[boundary.name]
            if value.shape != reference.shape:
                return {
                    "matched": False,
                    "runtime": view.runtime,
                    "summary": f"{boundary.name}: the artifact's tensor {tensor} has shape {value.shape}, "
                    f"eager {reference.shape}",
                }
            m = _metrics(reference, value)
            share = float(np.sqrt(depth / len(boundaries)))
            budget = {
                "max_rel_budget": None if tolerance.max_rel is None else tolerance.max_rel * share,
                "min_cosine_budget": 1.0 - (1.0 - tolerance.min_cosine) * share,
            }
            over = (
                not m["finite"]
                or m["min_cosine"] < budget["min_cosine_budget"]
                or (budget["max_rel_budget"] is not None and m["max_rel"] > budget["max_rel_budget"])
            )
            layers.append(
                {"name": boundary.name, "module": boundary.module, "depth": depth, "tensor": tensor, **m, **budget}
                | {"over": over}
            )
            if over and first is None:
                first = layers[-1]
        summary = (
            f"first over tolerance: {first['name']} ({first['module']}, cosine {first['min_cosine']:.6f}, "
            f"max rel {first['max_rel']:.3g})"
            if first
            else "no layer over its depth-scaled tolerance"
        )
        return {
            "matched": True,
            "runtime": view.runtime,
            "inputs": len(values[0]),
            "first_over": first["name"] if first else None,
            "first_over_module": first["module"] if first else None,
            "summary": summary,
            "layers": layers,
        }


def after_checks(verified, localizer: Localizer, verify):
    """The step after the checks of one artifact (``verified``: the pipeline's
    ``Verified``). For an artifact that failed its parity or accuracy check (or any,
    with ``--explain``) its localization is added. For such a failed one whose target
    has a ``fallback``, the repair is tried; a repaired artifact that passes every check
    replaces it, recording ``fallback`` (what was kept in float, the latency cost, the
    metrics before and after). ``localizer``: the run's (its eager tensors are computed
    once); ``verify(artifact, evidence)``: the pipeline's check of one artifact. Returns
    what the report keeps."""
    artifact, results, evidence = verified.artifact, verified.results, localizer.evidence
    target = targets.get(artifact.format)
    missed = any(results.get(name) is not None and not results[name]["passed"] for name in NUMERICAL_CHECKS)
    if not (missed or evidence.context.spec.explain) or target.intermediates is None:
        return verified
    with progress.stage(f"{artifact.name}: per-layer localization"):
        localization = localizer(artifact)
    log(f"{artifact.name}: {localization['summary']}")
    verified = replace(verified, localization=localization)
    if not missed or target.fallback is None:
        return verified
    repair = Repair(
        evidence.context,
        localizer.inputs(artifact),
        evidence.reference,
        localizer,
        lambda candidate: verify(candidate, replace(evidence, _runners={})).results,
    )
    with progress.stage(f"{artifact.name}: fallback"):
        repaired = target.fallback(artifact, {**results, "localization": localization}, repair)
    if repaired is None:
        return verified
    if repaired.artifact is None:
        return replace(verified, fallback=repaired.report)
    path = repaired.artifact.path
    return replace(
        verified,
        artifact=repaired.artifact,
        results=repaired.entry,
        size_bytes=size_of(path),
        sha256=sha256_of(path),
        fallback=repaired.report,
    )
