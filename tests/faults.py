"""Models and artifacts with a known fault, for the per-layer localization and the
int8 fallback tests.

- :func:`int8_hostile_checkpoint`: a checkpoint transform exact in float and hostile
  to per-tensor int8: one channel of the BatchNorm inside a block's local
  integration (``1x1 conv -> BN -> depthwise 3x3``) is scaled by ``factor`` (its
  gamma and beta) and divided back in the depthwise conv that reads it. The float
  logits do not change; the activation tensor between the two convs gets an outlier
  channel that sets its whole int8 range.
- ``damage_*``: one weight of one conv changed in a saved artifact (ONNX initializer,
  TFLite constant buffer, Core ML MIL const), found by its module name or, where the
  format keeps no names (TFLite), by its float values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

HOSTILE_BLOCK = "network.0.0"  # stage 0, block 0 of CAS-ViT-tiny
HOSTILE_CHANNEL = 5
HOSTILE_FACTOR = 100.0


def int8_hostile_checkpoint(
    src: Path, dst: Path, block: str = HOSTILE_BLOCK, channel: int = HOSTILE_CHANNEL, factor: float = HOSTILE_FACTOR
) -> Path:
    """Write ``src`` with one channel of ``block``'s local-integration BatchNorm scaled
    by ``factor`` and its depthwise conv's weights for that channel divided by it."""
    checkpoint = torch.load(src, map_location="cpu", weights_only=True)
    state = checkpoint["model"] if "model" in checkpoint else checkpoint
    prefix = f"{block}.local_perception.network"
    with torch.no_grad():
        state[f"{prefix}.1.weight"][channel] *= factor
        state[f"{prefix}.1.bias"][channel] *= factor
        state[f"{prefix}.2.weight"][channel] /= factor
    torch.save(checkpoint, dst)
    return dst


def damage_onnx(path: Path, weight: str, scale: float = -50.0) -> None:
    """Multiply the largest-magnitude element of initializer ``weight`` by ``scale``, in place."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    initializer = next(i for i in model.graph.initializer if i.name == weight)
    values = numpy_helper.to_array(initializer).copy()
    flat = values.reshape(-1)
    flat[np.argmax(np.abs(flat))] *= scale
    initializer.CopyFrom(numpy_helper.from_array(values, weight))
    onnx.save(model, str(path))


def damage_tflite(path: Path, torch_weight: np.ndarray, scale: float = -50.0) -> None:
    """Multiply the largest-magnitude element of the float32 constant equal to
    ``torch_weight`` (OIHW, as TFLite stores it: OHWI, or 1HWO for a depthwise conv)
    by ``scale``, in place in the file (the metadata appended after the flatbuffer is kept)."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    graph = model.subgraphs[0]
    layouts = [torch_weight.transpose(0, 2, 3, 1), torch_weight.transpose(1, 2, 3, 0)]
    raw = Path(path).read_bytes()
    for tensor in graph.tensors:
        data = model.buffers[tensor.buffer].data
        if data is None or tensor.type != 0 or list(tensor.shape) not in [list(w.shape) for w in layouts]:
            continue
        values = np.frombuffer(bytes(data), np.float32).reshape(tensor.shape)
        if any(v.shape == values.shape and np.allclose(v, values, rtol=1e-5, atol=1e-6) for v in layouts):
            old = bytes(data)
            damaged = values.copy().reshape(-1)
            damaged[np.argmax(np.abs(damaged))] *= scale
            assert raw.count(old) == 1, "the weight's bytes are not unique in the file"
            Path(path).write_bytes(raw.replace(old, damaged.astype("<f4").tobytes()))
            return
    raise AssertionError("no float32 constant of the .tflite equals the given weight")


def damage_mil(package: Path, const_name: str, scale: float = -50.0) -> None:
    """Multiply the largest-magnitude element of the MIL const ``const_name`` (weights in
    the package's weight.bin) by ``scale``, in place in the weight file."""
    import coremltools as ct

    from export.targets.coreml.mil import main_block
    from export.targets.coreml.mil.program import WEIGHTS_IN_PACKAGE
    from export.targets.coreml.mil.values import BlobFiles, decode

    spec = ct.utils.load_spec(str(package))
    _, block = main_block(spec)
    op = next(op for op in block.operations if op.type == "const" and op.outputs[0].name == const_name)
    values = np.asarray(decode(op.attributes["val"], BlobFiles(package / WEIGHTS_IN_PACKAGE)))
    weights = package / WEIGHTS_IN_PACKAGE / Path(op.attributes["val"].blobFileValue.fileName).name
    raw = weights.read_bytes()
    old = values.tobytes()
    damaged = values.copy().reshape(-1)
    damaged[np.argmax(np.abs(damaged.astype(np.float32)))] *= scale
    assert raw.count(old) == 1, "the const's bytes are not unique in weight.bin"
    weights.write_bytes(raw.replace(old, damaged.astype(values.dtype).tobytes()))
