"""A toy export target for tests: the deploy model's weights in one ``.npz`` file, run
by rebuilding the deploy model in torch. It is registered by the tests only
(``export.targets.REGISTRY``) and shows that a new format, with an option of its own,
needs no edit elsewhere."""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from export.fsutil import atomic_write
from export.options import OptionRecord, option
from export.spec import Artifact
from export.targets.base import BenchRuntime, MemoryCost, Target

RECIPE = "__recipe__"  # the array holding how to rebuild the module (JSON)


@dataclass(frozen=True)
class ToyOptions(OptionRecord):
    toy_float16: bool = option(False, "store the weights as float16")


def _precision(spec) -> str:
    return "fp16" if spec.options_of("toy").toy_float16 else "fp32"


def artifact_names(spec) -> tuple[str, ...]:
    return (f"toy-{_precision(spec)}",)


def convert(ctx) -> list[Artifact]:
    start = time.perf_counter()
    precision = _precision(ctx.spec)
    module = ctx.deploy_model()
    dtype = np.float16 if precision == "fp16" else np.float32
    arrays = {k: v.numpy().astype(dtype) for k, v in module.state_dict().items()}
    recipe = {
        "variant": ctx.spec.variant,
        "num_classes": ctx.model.num_classes,
        "normalize_input": ctx.spec.embed_normalization,
        "input_range": ctx.spec.input_range,
    }
    buffer = io.BytesIO()
    np.savez(buffer, **{RECIPE: np.array(json.dumps(recipe))}, **arrays)
    path = ctx.workdir / f"casvit_{ctx.spec.variant}_{ctx.spec.resolution}_{precision}.npz"
    atomic_write(path, buffer.getvalue())
    return [
        Artifact(
            artifact_names(ctx.spec)[0],
            "toy",
            precision,
            path,
            ctx.input_convention(),
            time.perf_counter() - start,
            details={"arrays": len(arrays)},
        )
    ]


def _module(path: Path):
    import torch

    from casvit import create_model, deploy

    with np.load(path) as data:
        recipe = json.loads(str(data[RECIPE]))
        state = {k: torch.from_numpy(data[k].astype(np.float32)) for k in data.files if k != RECIPE}
    model = deploy(
        create_model(recipe["variant"], num_classes=recipe["num_classes"]).eval(),
        normalize_input=recipe["normalize_input"],
        input_range=recipe["input_range"],
    )
    model.load_state_dict(state)
    return model.eval()


def load(artifact: Artifact):
    import torch

    model = _module(artifact.path)

    def run(x: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        with torch.no_grad():
            out = model(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()
        artifact.runtime_facts.interpreter_seconds_per_image = (time.perf_counter() - start) / max(len(x), 1)
        return out

    return run


def census(artifact: Artifact) -> dict[str, int]:
    """Leaf module kinds of the rebuilt model."""
    model = _module(artifact.path)
    return dict(Counter(type(m).__name__ for m in model.modules() if not list(m.children())))


def runtime_note(artifact: Artifact) -> str:
    return "torch, deploy module rebuilt from the .npz weights"


def bench_runner(path: str, threads: int, x: np.ndarray):
    import torch

    model, tensor = _module(Path(path)), torch.from_numpy(x)

    def run():
        torch.set_num_threads(threads)
        with torch.no_grad():
            return model(tensor)

    return run


TARGET = Target(
    name="toy",
    artifact_names=artifact_names,
    convert=convert,
    load=load,
    census=census,
    runtime_note=runtime_note,
    allow=frozenset({"Conv2d", "Identity", "Sigmoid", "ReLU", "GELU", "AdaptiveAvgPool2d", "InputNormalization"}),
    deny=frozenset({"Linear", "BatchNorm2d", "MultiheadAttention"}),
    memory=MemoryCost(700 * 2**20, 150),  # not measured: about the ONNX target's (both run eager torch)
    tools=("numpy",),
    options=ToyOptions,
    bench=BenchRuntime("toy-torch", "torch", bench_runner),
)
