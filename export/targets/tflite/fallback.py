"""Automatic mixed precision for full-integer int8 (``--int8-fallback auto``): when the
int8 model fails its parity or accuracy gate, the activations that hurt it most go
back to float, one at a time, until it passes or a float budget is spent.

The unit kept in float is one int8 activation tensor: the operator that writes it and
every operator that reads it run in float (``graph.in_float``, the float-island
mechanism; a convolution keeps its int8-rounded weights and corrected bias as float32
values, ``graph.float_weights``), so the tensor is never rounded to int8. Each step:

1. the per-layer localization of the current model (``export.localize``) gives each
   block region (the operators between two boundaries) its own contribution: how much
   ``1 - cosine`` against eager grows across it; the region that adds most is searched;
2. every int8 tensor written in that region is tried alone in float on top of the
   tensors already chosen, and ranked by the logits' cosine against eager on the
   parity inputs (LiteRT with XNNPACK, as the gate runs it);
3. the best one is kept when the float share of the convolution MACs stays within
   ``FLOAT_MAC_BUDGET``, and the model goes through every check again.

It stops when the checks pass (the repaired model replaces the int8 artifact), when
the budget would be exceeded or after ``MAX_STEPS`` (the int8 artifact stays rejected;
the report says what was tried). The report lists the tensors kept in float with their
region and operators, the float share of the MACs, the metrics before and after, and
the latency cost measured interleaved against the plain int8 model (LiteRT, XNNPACK,
one thread). The rewrites start from the int8 model as quantized, before
``float_islands`` (``quant.before_islands``), so chains of float operators stay float.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ...context import log
from ...localize import trunk
from ...parity import compare
from ...spec import Artifact
from ...timing import interleaved
from ..base import Repair, Repaired
from .graph import float_islands, float_weights, op_names
from .layers import graph_ops, tensor_labels
from .runtime import litert_runner

FLOAT_MAC_BUDGET = 0.20  # at most this share of the convolution MACs runs in float
MAX_STEPS = 8
WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
ALIASES = ("QUANTIZE", "DEQUANTIZE")
LATENCY_REPEATS, LATENCY_WARMUP, LATENCY_ROUND = 60, 5, 5


def _model(body: bytes):
    from ai_edge_litert.tools import flatbuffer_utils

    return flatbuffer_utils.convert_bytearray_to_object(bytearray(body))


def _serialize(model) -> bytes:
    from ai_edge_litert.tools import flatbuffer_utils

    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def with_float_tensors(source: bytes, tensors: list[int]) -> bytes:
    """The int8 model as quantized (``source``, before float islands) with the float
    islands and, in float too, every operator writing or reading one of ``tensors``."""
    model = _model(source)
    graph = model.subgraphs[0]
    chosen = [op for op in graph.operators if set(tensors) & {int(t) for t in [*op.inputs, *op.outputs]}]
    for op in chosen:
        float_weights(model, graph, op)
    float_islands(model, frozenset(id(op) for op in chosen))
    return _serialize(model)


def conv_macs(model) -> list[int]:
    """Multiply-accumulates of each operator of the first subgraph (0 for all but the
    weighted ones): output elements x weights per output channel."""
    graph, names = model.subgraphs[0], op_names(model)
    macs = []
    for op in graph.operators:
        if names[op.opcodeIndex] not in WEIGHTED:
            macs.append(0)
            continue
        out = graph.tensors[int(op.outputs[0])].shape
        weights = graph.tensors[int(op.inputs[1])].shape
        macs.append(int(np.prod(out)) * int(np.prod(weights)) // int(out[-1]))
    return macs


class Source:
    """The int8 model as quantized: its tensors, operators, regions and MACs."""

    def __init__(self, body: bytes):
        self.body = body
        model = _model(body)
        graph = model.subgraphs[0]
        self.names = op_names(model)
        self.graph = graph
        self.labels = tensor_labels(graph)
        self.kinds = [self.names[op.opcodeIndex] for op in graph.operators]
        self.macs = conv_macs(model)
        self.total_macs = sum(self.macs)
        self.activation = [model.buffers[t.buffer].data is None for t in graph.tensors]
        self.int8 = [t.type == 9 for t in graph.tensors]  # TensorType.INT8
        self.boundaries = [tensor for _, tensor in trunk(graph_ops(model), self.labels[int(graph.outputs[0])])]

    def regions(self) -> list[list[int]]:
        """Per boundary, the operator indices from after the previous boundary's writer
        through its own writer (the logits' region runs to the end)."""
        writer = {int(t): i for i, op in enumerate(self.graph.operators) for t in op.outputs}
        ends = [writer.get(self.labels.index(name), -1) for name in self.boundaries]
        ends[-1] = len(self.graph.operators) - 1
        starts = [0, *[end + 1 for end in ends[:-1]]]
        return [list(range(start, end + 1)) for start, end in zip(starts, ends)]

    def candidates(self, region: list[int]) -> list[int]:
        """The int8 activation tensors written by a non-alias operator of ``region``."""
        ops = self.graph.operators
        return [
            int(t)
            for i in region
            if self.kinds[i] not in ALIASES
            for t in ops[i].outputs
            if self.activation[int(t)] and self.int8[int(t)]
        ]

    def touching(self, tensors: list[int]) -> list[int]:
        """The operators writing or reading one of ``tensors``."""
        wanted = set(tensors)
        return [i for i, op in enumerate(self.graph.operators) if wanted & {int(t) for t in [*op.inputs, *op.outputs]}]

    def float_share(self, tensors: list[int]) -> float:
        return sum(self.macs[i] for i in self.touching(tensors)) / max(self.total_macs, 1)


def _growth(localization: dict) -> list[float]:
    """Per boundary, how much ``1 - min cosine`` against eager grows across its region."""
    errors = [1.0 - layer["min_cosine"] for layer in localization["layers"]]
    return [max(e - previous, 0.0) for previous, e in zip([0.0, *errors[:-1]], errors)]


def _logits_cosine(path: Path, repair: Repair, load) -> float:
    logits = load(Artifact("trial", "tflite", "int8", path, "unit"))(repair.inputs)
    return compare(repair.reference, logits)["min_cosine"]


def _metrics(entry: dict) -> dict:
    """The numbers of a report entry the fallback compares before and after."""
    parity = (entry.get("parity") or {}).get("metrics", {})
    accuracy = (entry.get("accuracy") or {}).get("details", {})
    return {
        "passed": entry["passed"],
        **{k: parity[k] for k in ("max_rel", "min_cosine", "min_centered_cosine", "top1_agreement") if k in parity},
        **({"top1": accuracy["top1"], "agreement": accuracy.get("agreement")} if "top1" in accuracy else {}),
    }


def latency(before: Path, after: Path, x: np.ndarray) -> dict:
    """Median ms of the two models, timed interleaved (LiteRT, XNNPACK, one thread)."""
    runners = {"int8": litert_runner(str(before), 1, x[:1]), "fallback": litert_runner(str(after), 1, x[:1])}
    samples = interleaved(runners, LATENCY_REPEATS, LATENCY_WARMUP, LATENCY_ROUND, log=lambda _: None)
    ms = {k: float(np.median(v)) / 1e6 for k, v in samples.items()}
    return {
        "int8_ms": round(ms["int8"], 4),
        "fallback_ms": round(ms["fallback"], 4),
        "ratio": round(ms["fallback"] / ms["int8"], 3),
        "method": f"LiteRT with XNNPACK, 1 thread, median of {LATENCY_REPEATS} runs each, interleaved in rounds "
        f"of {LATENCY_ROUND} after {LATENCY_WARMUP} warm-up runs",
    }


def keep_worst_in_float(artifact: Artifact, entry: dict, repair: Repair, source_path: Path, finalize, load) -> Repaired:
    """Keep int8 tensors of ``artifact`` in float until it passes every check (see the
    module docstring). ``source_path``: its model as quantized, before float islands;
    ``finalize(src, dst)``: the artifact's own finishing (I/O names, metadata);
    ``load``: the target's runner."""
    start = time.perf_counter()
    source = Source(source_path.read_bytes())
    work = source_path.parent / "fallback"
    work.mkdir(exist_ok=True)
    report = {
        "mode": "auto",
        "float_mac_budget": FLOAT_MAC_BUDGET,
        "before": _metrics(entry),
        "steps": [],
        "kept_in_float": [],
    }
    localization = entry.get("localization", {})
    if not localization.get("matched") or len(source.boundaries) != len(localization["layers"]):
        return Repaired(None, None, {**report, "passed": False, "stopped": "the graph's layers were not localized"})
    regions, floated, searched = source.regions(), [], set()
    candidate = work / artifact.path.name
    stopped, passed_entry = f"after {MAX_STEPS} steps", None
    for _ in range(MAX_STEPS):
        growth = _growth(localization)
        order = [k for k in np.argsort(growth)[::-1] if k not in searched and source.candidates(regions[k])]
        if not order:
            stopped = "no int8 tensor left to try"
            break
        k = int(order[0])
        searched.add(k)
        layer = localization["layers"][k]
        trials = []
        for tensor in source.candidates(regions[k]):
            if tensor in floated:
                continue
            trial = work / "trial.tflite"
            trial.write_bytes(with_float_tensors(source.body, [*floated, tensor]))
            trials.append((_logits_cosine(trial, repair, load), tensor))
        log(f"{artifact.name}: int8 fallback tried {len(trials)} tensors of {layer['name']}")
        if not trials:
            continue
        cosine, best = max(trials)
        share = source.float_share([*floated, best])
        step = {"region": layer["name"], "tried": len(trials), "best_logits_min_cosine": round(cosine, 6)}
        if share > FLOAT_MAC_BUDGET:
            report["steps"].append({**step, "kept": None, "float_mac_share": round(share, 4)})
            stopped = f"float budget: the next tensor would put {share:.1%} of the conv MACs in float"
            break
        floated.append(best)
        searched.discard(k)  # the same region may be searched again after the change
        src = work / "fallback_source.tflite"
        src.write_bytes(with_float_tensors(source.body, floated))
        finalize(src, candidate)
        checked = repair.verify(replace(artifact, path=candidate))
        ops = source.touching([best])
        report["kept_in_float"].append(
            {
                "tensor": source.labels[best],
                "region": layer["name"],
                "module": layer["module"],
                "operators": [source.kinds[i] for i in ops],
                "macs": sum(source.macs[i] for i in ops),
            }
        )
        report["steps"].append({**step, "kept": source.labels[best], "float_mac_share": round(share, 4)})
        report["steps"][-1]["passed"] = checked["passed"]
        if checked["passed"]:
            stopped, passed_entry = "every check passed", checked
            break
        localization = repair.localize(replace(artifact, path=candidate))
        if not localization.get("matched"):
            stopped = "the repaired graph's layers were not localized"
            break
    report["float_mac_share"] = round(source.float_share(floated), 4)
    report["stopped"] = stopped
    report["passed"] = passed_entry is not None
    if passed_entry is None:
        report["seconds"] = round(time.perf_counter() - start, 2)
        shutil.rmtree(work, ignore_errors=True)
        return Repaired(None, None, report)
    report["after"] = _metrics(passed_entry)
    report["localization_after"] = repair.localize(replace(artifact, path=candidate))
    report["latency"] = latency(artifact.path, candidate, repair.inputs)
    shutil.move(candidate, artifact.path)
    report["seconds"] = round(time.perf_counter() - start, 2)
    shutil.rmtree(work, ignore_errors=True)
    repaired = replace(artifact, convert_seconds=artifact.convert_seconds + report["seconds"])
    return Repaired(repaired, passed_entry, report)
