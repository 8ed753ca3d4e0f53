"""Peer conversions (run in .venv-peers only): the same seeded CAS-ViT through
litert-torch and through ExecuTorch's XNNPACK backend, fp32 and PT2E static int8
calibrated on our default calibration set; plus their partition counts.

As a command it only writes the files, for a checkpoint too, e.g. to compare int8
quality on the digits checkpoint with ``benchmarks.int8_quality``::

    .venv-peers/bin/python -m benchmarks.peers.convert --checkpoint tests/data/casvit_tiny_digits.pth \
        --res 64 --out DIR [--peers litert-torch-deploy-int8 ...]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np

from . import Peer


def seeded_model(variant: str, form: str, checkpoint: Path | None = None):
    """The weights our exports and ``benchmarks/runners.py`` use: seed 0, BatchNorm randomized
    (or the ``checkpoint``'s), as the deploy form or the eval model."""
    import torch

    from casvit import create_model, deploy, model_from_checkpoint
    from casvit.seeding import randomize_batchnorm

    if checkpoint is not None:
        model = model_from_checkpoint(checkpoint)
    else:
        torch.manual_seed(0)
        model = randomize_batchnorm(create_model(variant), 0).eval()
    return deploy(model) if form == "deploy" else model


def calibration_batches(res: int) -> list[np.ndarray]:
    """Our int8 calibration set (``export.calibration``'s default, the export's preprocessing
    record) as (1, 3, res, res) normalized float32 inputs, one per image."""
    from casvit.preprocess import official_default
    from export.calibration import load_calibration
    from export.inputs import to_convention

    record = official_default(res, res)
    calib = load_calibration(record)
    x = to_convention(calib.rgb, "normalized", record.mean, record.std)
    return [x[i : i + 1] for i in range(len(x))]


def _pt2e_int8(model, sample, calibration: list[np.ndarray], quantizer, fold_quantize: bool):
    """PT2E static int8: export, observe the calibration images, convert. litert-torch wants
    the weight quantize ops kept (``fold_quantize=False``), ExecuTorch wants them folded."""
    import torch
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    graph = torch.export.export(model, (sample,)).module()
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for x in calibration:
            prepared(torch.from_numpy(x))
    return convert_pt2e(prepared, fold_quantize=fold_quantize)


def convert_litert_torch(peer: Peer, model, sample, calibration, path: Path) -> dict:
    """Write ``path`` (.tflite); litert-torch keeps the NCHW input of the PyTorch model."""
    import litert_torch
    from litert_torch.quantize import pt2e_quantizer
    from litert_torch.quantize.quant_config import QuantConfig

    if peer.precision == "int8":
        quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
            pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True)
        )
        model = _pt2e_int8(model, sample, calibration, quantizer, fold_quantize=False)
        edge = litert_torch.convert(model, (sample,), quant_config=QuantConfig(pt2e_quantizer=quantizer))
    else:
        edge = litert_torch.convert(model, (sample,))
    edge.export(str(path))
    return {}


def convert_executorch(peer: Peer, model, sample, calibration, path: Path) -> dict:
    """Write ``path`` (.pte) lowered to XNNPACK; returns the delegated/portable split."""
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    if peer.precision == "int8":
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )

        quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
        model = _pt2e_int8(model, sample, calibration, quantizer, fold_quantize=True)
    program = torch.export.export(model, (sample,))
    lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    partitions = executorch_partitions(lowered.exported_program().graph_module.graph)
    path.write_bytes(lowered.to_executorch().buffer)
    return {"partitions": partitions}


def executorch_partitions(graph) -> dict:
    """XNNPACK-delegated subgraphs and the ops left on ExecuTorch's portable kernels."""
    calls = [n for n in graph.nodes if n.op == "call_function"]
    delegated = sum(1 for n in calls if "executorch_call_delegate" in str(n.target))
    outside = Counter(
        str(n.target).split("::")[-1].split("(")[0].split(".")[0]
        for n in calls
        if "executorch_call_delegate" not in str(n.target) and "getitem" not in str(n.target)
    )
    return {"delegated": delegated, "outside": sum(outside.values()), "outside_ops": dict(sorted(outside.items()))}


def tflite_partitions(path: Path) -> dict:
    """XNNPACK DELEGATE nodes after delegation and the original nodes still run outside them."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=1)
    interp.allocate_tensors()
    ops = interp._get_ops_details()  # noqa: SLF001 -- the only node list LiteRT's Python API has
    outputs = [d["index"] for d in interp.get_output_details()]
    outside = Counter(op["op_name"] for op in nodes_outside_delegates(ops, outputs))
    return {
        "delegated": sum(op["op_name"] == "DELEGATE" for op in ops),
        "outside": sum(outside.values()),
        "outside_ops": dict(sorted(outside.items())),
    }


def nodes_outside_delegates(ops: list[dict], graph_outputs: list[int]) -> list[dict]:
    """The original nodes a delegated LiteRT graph still runs itself.

    LiteRT lists the replaced nodes next to the DELEGATE nodes and its Python API has no
    execution plan, so this walks the data flow back from what the delegates and the
    graph consume: a tensor a DELEGATE node writes is never produced outside, and the
    internal tensors of a delegated region are read by no DELEGATE node. Written by hand:
    no library exposes the plan."""
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    delegated_out = {int(t) for op in delegates for t in op["outputs"]}
    producer = {int(t): op for op in ops if op["op_name"] != "DELEGATE" for t in op["outputs"]}
    wanted = [int(t) for op in delegates for t in op["inputs"]] + [int(t) for t in graph_outputs]
    outside, seen = {}, set()
    while wanted:
        tensor = wanted.pop()
        if tensor in seen or tensor in delegated_out or tensor not in producer:
            continue
        seen.add(tensor)
        op = producer[tensor]
        if op["index"] not in outside:
            outside[op["index"]] = op
            wanted += [int(t) for t in op["inputs"] if t >= 0]
    return sorted(outside.values(), key=lambda op: op["index"])


CONVERTERS = {"litert-torch": convert_litert_torch, "executorch": convert_executorch}
SUFFIX = {"litert-torch": ".tflite", "executorch": ".pte"}


def main(argv: list[str] | None = None) -> int:
    from . import PEERS

    p = argparse.ArgumentParser(
        prog="python -m benchmarks.peers.convert",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--variant", default="xs")
    p.add_argument("--res", type=int, default=224)
    p.add_argument("--checkpoint", type=Path, default=None)
    p.add_argument("--peers", nargs="*", default=None, help="peer names (default: every peer)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    import torch

    calibration = calibration_batches(args.res)
    sample = torch.from_numpy(calibration[0].copy())
    args.out.mkdir(parents=True, exist_ok=True)
    for peer in PEERS:
        if args.peers is None or peer.name in args.peers:
            path = args.out / f"{peer.name}{SUFFIX[peer.toolchain]}"
            model = seeded_model(args.variant, peer.form, args.checkpoint)
            CONVERTERS[peer.toolchain](peer, model, sample, calibration, path)
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
