"""Where a .tflite model's LiteRT time goes, by taking op classes out of it:

    python -m benchmarks.tflite_ablation MODEL.tflite [--threads 1] [--repeats 100]

LiteRT 2.3.0 has no op profiler reachable from Python. This timing-only experiment
writes one copy of the model per op class with those ops bypassed (their readers
read the op's input instead; ops left with no reader are dropped), times every copy
interleaved with the model, and prints what each class saved. The copies compute
nothing meaningful; a class's saving includes the ops only it fed (a gate's sigmoid
and convs). Classes:

- ``input normalization``: the 3-channel 1x1 depthwise conv at the input;
- ``depthwise 3x3``: every other stride-1 depthwise conv;
- ``sigmoid gates``: each MUL by a LOGISTIC output (or its DEQUANTIZE), with what
  computes the gate;
- ``other products``: the remaining MULs (CASAtt's ``* v``);
- ``GELU``: each GELU, with its DEQUANTIZE/QUANTIZE pair in a full-int8 model."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from .latency import interleaved
from .tflite_ab import _invoker

CLASSES = ("input normalization", "depthwise 3x3", "sigmoid gates", "other products", "GELU")


def _same_shape_input(graph, op, skip=()) -> int | None:
    """The first input of ``op`` shaped like its output (and not in ``skip``)."""
    out = list(graph.tensors[int(op.outputs[0])].shape)
    return next(
        (int(t) for t in op.inputs if t >= 0 and int(t) not in skip and list(graph.tensors[int(t)].shape) == out), None
    )


def _classes(names: list[str]) -> dict:
    """Class name -> pick(graph, op, producers): the tensor to read instead of ``op``'s
    output, or None; ``producers`` maps each tensor of ``graph`` to the op writing it."""

    def depthwise(graph, op, kernel: list[int]):
        if names[op.opcodeIndex] != "DEPTHWISE_CONV_2D":
            return None
        shape = [int(d) for d in graph.tensors[int(op.inputs[1])].shape[1:3]]
        return _same_shape_input(graph, op) if shape == kernel else None

    def is_sigmoid(producers, tensor: int) -> bool:
        """``tensor`` is a LOGISTIC's output, or its DEQUANTIZE (int8 sigmoid, float product)."""
        source = producers.get(tensor)
        if source is not None and names[source.opcodeIndex] == "DEQUANTIZE":
            source = producers.get(int(source.inputs[0]))
        return source is not None and names[source.opcodeIndex] == "LOGISTIC"

    def product(graph, op, producers, gate: bool):
        if names[op.opcodeIndex] != "MUL":
            return None
        gates = {int(t) for t in op.inputs if is_sigmoid(producers, int(t))}
        return _same_shape_input(graph, op, skip=gates) if bool(gates) == gate else None

    def gelu(graph, op, producers):
        """A GELU, or in a full-int8 model the QUANTIZE ending DEQUANTIZE -> GELU -> QUANTIZE."""
        chain = [op]
        while len(chain) < 3 and int(chain[-1].inputs[0]) in producers:
            chain.append(producers[int(chain[-1].inputs[0])])
        kinds = [names[o.opcodeIndex] for o in chain]
        if kinds == ["QUANTIZE", "GELU", "DEQUANTIZE"]:
            return int(chain[2].inputs[0])
        if kinds[0] == "GELU" and kinds[1:2] != ["DEQUANTIZE"]:
            return int(op.inputs[0])
        return None

    return dict(
        zip(
            CLASSES,
            (
                lambda g, op, p: depthwise(g, op, [1, 1]),
                lambda g, op, p: depthwise(g, op, [3, 3]),
                lambda g, op, p: product(g, op, p, True),
                lambda g, op, p: product(g, op, p, False),
                gelu,
            ),
        )
    )


def take_out(path: Path, name: str):
    """(how many ops were picked, the model of ``path`` without class ``name``)."""
    from ai_edge_litert.tools import flatbuffer_utils

    from export.targets.tflite.graph import op_names

    model = flatbuffer_utils.read_model(str(path))
    names = op_names(model)
    return bypass(model, names, _classes(names)[name]), model


def bypass(model, names, pick) -> int:
    """Take the ops ``pick`` names out of ``model`` (in place), then every op left
    without a reader; returns how many ops were picked."""
    picked = 0
    for graph in model.subgraphs:
        producers = {int(t): op for op in graph.operators or [] for t in op.outputs}
        remap, kept = {}, []
        for op in graph.operators or []:
            op.inputs = np.array([remap.get(int(t), int(t)) for t in op.inputs], np.int32)
            source = pick(graph, op, producers)
            if source is None:
                kept.append(op)
                continue
            remap[int(op.outputs[0])] = source
            picked += 1
        graph.outputs = np.array([remap.get(int(t), int(t)) for t in graph.outputs], np.int32)
        graph.operators = _live(graph, kept)
        for op in graph.operators:  # XNNPACK's PAD and RESHAPE need their input's quantization on the output
            if names[op.opcodeIndex] in ("PAD", "RESHAPE"):
                graph.tensors[int(op.outputs[0])].quantization = graph.tensors[int(op.inputs[0])].quantization
    return picked


def _live(graph, operators: list) -> list:
    """``operators`` without those whose outputs nobody reads, repeatedly."""
    while True:
        read = {int(t) for op in operators for t in op.inputs} | {int(t) for t in graph.outputs}
        live = [op for op in operators if any(int(t) in read for t in op.outputs)]
        if len(live) == len(operators):
            return live
        operators = live


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.tflite_ablation",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=100)
    args = parser.parse_args(argv)
    from ai_edge_litert.tools import flatbuffer_utils

    with tempfile.TemporaryDirectory() as tmp:
        files, counts = {"model": str(args.model)}, {}
        for name in CLASSES:
            counts[name], model = take_out(args.model, name)
            if counts[name]:
                files[name] = str(Path(tmp) / f"{len(files)}.tflite")
                Path(files[name]).write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))
        samples = interleaved(
            {k: _invoker(p, args.threads) for k, p in files.items()}, args.repeats, warmup=3, log=lambda _: None
        )
    medians = {k: float(np.median(v)) / 1e6 for k, v in samples.items()}
    full = medians["model"]
    print(f"{args.model.name}: {full:.2f} ms, {args.threads} thread(s), medians of {args.repeats}")
    print("| op class | ops taken out | ms without them | saved ms | share |")
    print("|---|---:|---:|---:|---:|")
    for name, count in counts.items():
        if count:
            saved = full - medians[name]
            print(f"| {name} | {count} | {medians[name]:.2f} | {saved:.2f} | {100 * saved / full:.1f} % |")


if __name__ == "__main__":
    main()
