"""ONNX target: dynamo export at opset 20 (GELU stays one ``Gelu`` node),
onnxsim, full ``onnx.checker`` check, named I/O and metadata; run in ONNX Runtime."""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from ...errors import ExportError, converter_step
from ...fsutil import atomic_write
from ...limits import MIB
from ...options import OptionRecord, option
from ...preprocessing import convention_of
from ...spec import Artifact
from .. import package_versions
from ..base import MemoryCost, Target
from .layers import intermediates
from .runtime import INPUT_NAME, ONNXRUNTIME, run_outputs, session

OPSET = 20
OUTPUT_NAME = "logits"
METADATA_TOOLS = ("torch", "onnx", "onnxscript", "onnxsim")  # the versions written into the model


def _trace_to_onnx(module: torch.nn.Module, example: torch.Tensor, dynamic: bool):
    """torch.onnx.export (dynamo) -> ModelProto, with its chatter captured."""
    import onnx

    kwargs = dict(dynamo=True, opset_version=OPSET, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME])
    if dynamic:
        kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch", min=1, max=1024)},)
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision is not installed" chatter
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        with converter_step("torch.onnx.export", "tracing the model to ONNX"):
            program = torch.onnx.export(module, (example,), **kwargs)
    model = program.model_proto
    if not isinstance(model, onnx.ModelProto):
        raise ExportError("torch.onnx.export returned no model")
    return model


def _strip_trace_metadata(model) -> None:
    """Drop per-node source locations and export bookkeeping: they hold local paths
    and would make the bytes depend on where the export ran."""
    graphs = [model.graph]
    for g in graphs:
        for node in g.node:
            del node.metadata_props[:]
            node.doc_string = ""
        for v in list(g.input) + list(g.output) + list(g.value_info) + list(g.initializer):
            if hasattr(v, "metadata_props"):
                del v.metadata_props[:]
            v.doc_string = ""
    del model.metadata_props[:]
    model.doc_string = ""
    model.producer_name, model.producer_version = "casvit-deploy", ""


def export_onnx(
    ctx,
    path: Path,
    batch: int = 1,
    dynamic: bool = False,
    embed_normalization: bool | None = None,
    input_range: float | None = None,
) -> dict:
    """Deploy model (input convention: the spec's unless given) -> simplified, checked ONNX
    at ``path``; returns node counts."""
    import onnx
    import onnxsim

    module = ctx.deploy_model(embed_normalization, input_range)
    example = torch.zeros(batch, 3, ctx.spec.height, ctx.spec.width)
    ctx.log(f"onnx: tracing the deploy model (dynamo, opset {OPSET}, {'dynamic' if dynamic else batch} batch)")
    model = _trace_to_onnx(module, example, dynamic)
    nodes_traced = len(model.graph.node)
    _strip_trace_metadata(model)
    ctx.log("onnx: simplifying with onnxsim")
    with converter_step("onnxsim", "simplifying the ONNX model"):
        model, ok = onnxsim.simplify(model)
    if not ok:
        raise ExportError("onnxsim could not validate the simplified ONNX model")
    del model.metadata_props[:]  # the simplifier's onnxsim.* bookkeeping keys
    for key, value in ctx.metadata(ctx.input_convention(embed_normalization, input_range)).items():
        model.metadata_props.add(key=key, value=value)
    model.metadata_props.add(key="layout", value="NCHW")
    model.metadata_props.add(
        key="tool_versions", value=";".join(f"{k}={v}" for k, v in package_versions(METADATA_TOOLS).items())
    )
    onnx.checker.check_model(model, full_check=True)
    if [i.name for i in model.graph.input] != [INPUT_NAME] or [o.name for o in model.graph.output] != [OUTPUT_NAME]:
        raise ExportError("exported ONNX does not have the expected input 'image' and output 'logits'")
    atomic_write(path, model.SerializeToString())
    return {"nodes_traced": nodes_traced, "nodes": len(model.graph.node)}


def static_model(ctx, embed_normalization: bool, input_range: float) -> Path:
    """The simplified ONNX with a static batch of 1 in the given input convention: the
    intermediate artifact other targets convert from (TFLite), built once per run.
    When this run's ONNX artifact is exactly that model it is reused, not exported again."""
    convention = convention_of(embed_normalization, input_range)

    def build() -> Path:
        path = ctx.workdir / "intermediate" / f"model_static_{convention}.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        same = next(
            (
                a.path
                for a in ctx.converted
                if a.format == "onnx" and a.details.get("batch") == 1 and a.input_convention == convention
            ),
            None,
        )
        if same is not None:
            ctx.log(f"onnx: reusing {same.name} as the batch-1 static model")
            shutil.copyfile(same, path)  # its own name: onnx2tf names its outputs after it
        else:
            export_onnx(
                ctx, path, batch=1, dynamic=False, embed_normalization=embed_normalization, input_range=input_range
            )
        return path

    return ctx.intermediate(("onnx static batch-1", convention), build)


@dataclass(frozen=True)
class ONNXOptions(OptionRecord):
    dynamic_batch: bool = option(False, "a dynamic batch dimension (1 to the --batch limit) instead of --batch")


def artifact_names(spec) -> tuple[str, ...]:
    return ("onnx",)


def convert(ctx) -> list[Artifact]:
    spec = ctx.spec
    path = ctx.workdir / f"casvit_{spec.variant}_{spec.resolution}.onnx"
    start = time.perf_counter()
    dynamic = spec.options_of("onnx").dynamic_batch
    counts = export_onnx(ctx, path, batch=spec.batch, dynamic=dynamic)
    seconds = time.perf_counter() - start
    return [
        Artifact(
            "onnx",
            "onnx",
            "fp32",
            path,
            ctx.input_convention(),
            seconds,
            details={**counts, "opset": OPSET, "batch": "dynamic" if dynamic else spec.batch},
        )
    ]


def load(artifact: Artifact):
    ort_session = session(artifact.path)
    return lambda x: run_outputs(ort_session, x, [OUTPUT_NAME])[0]


def census(artifact: Artifact) -> dict[str, int]:
    import onnx

    model = onnx.load(str(artifact.path))
    return dict(
        Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}" for n in model.graph.node)
    )


def runtime_note(artifact: Artifact) -> str:
    import onnxruntime

    return f"ONNX Runtime {onnxruntime.__version__} (CPUExecutionProvider)"


TARGET = Target(
    name="onnx",
    artifact_names=artifact_names,
    convert=convert,
    load=load,
    census=census,
    runtime_note=runtime_note,
    allow=frozenset(
        {
            "Conv",
            "Sigmoid",
            "Relu",
            "Gelu",
            "Mul",
            "Add",
            "GlobalAveragePool",
            "ReduceMean",
            "Split",
            "Slice",
            "Reshape",
            "Flatten",
            "Constant",
            "Identity",
        }
    ),
    deny=frozenset({"MatMul", "Gemm", "Softmax", "LogSoftmax", "Einsum", "Attention", "Erf", "BatchNormalization"}),
    memory=MemoryCost(637 * MIB, 143, 270, per_class=6810),
    tools=("torch", "onnx", "onnxscript", "onnxruntime", "onnxsim"),
    options=ONNXOptions,
    bench=ONNXRUNTIME,
    intermediates=intermediates,
)
