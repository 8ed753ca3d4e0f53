"""The Core ML classifier's outputs, edited in the program spec after conversion:
the raw logits exposed as an output and a softmax in front of the classify op."""

from __future__ import annotations

import numpy as np

from ...errors import ExportError


def _rename_var(block, old: str, new: str) -> None:
    for op in block.operations:
        for out in op.outputs:
            if out.name == old:
                out.name = new
        for binding in op.inputs.values():
            for arg in binding.arguments:
                if arg.WhichOneof("binding") == "name" and arg.name == old:
                    arg.name = new


def expose_logits(spec, num_classes: int, logits_name: str, probabilities_name: str) -> dict[str, str]:
    """Add the classifier's raw scores as a float32 multiarray output ``logits_name`` (what
    parity compares) and put a softmax between them and the classify op, whose
    label dictionary then holds probabilities. Returns the values it renamed, new
    name -> name in the converted program."""
    from coremltools.proto import FeatureTypes_pb2

    from .mil import main_block

    _, block = main_block(spec)
    classify = [op for op in block.operations if op.type == "classify"]
    if len(classify) != 1:
        raise ExportError("the converted classifier has no single classify op")
    scores = classify[0].inputs["probabilities"].arguments[0].name
    renamed = {}
    if scores != logits_name:  # fp16: 'logits' (fp16) -> cast -> scores (fp32)
        _rename_var(block, logits_name, logits_name + "_fp16")
        _rename_var(block, scores, logits_name)
        renamed = {logits_name + "_fp16": logits_name, logits_name: scores}
    _insert_softmax(block, classify[0], logits_name, probabilities_name)
    block.outputs.append(logits_name)
    out = spec.description.output.add()
    out.name = logits_name
    out.type.multiArrayType.shape.extend([1, num_classes])
    out.type.multiArrayType.dataType = FeatureTypes_pb2.ArrayFeatureType.FLOAT32
    return renamed


def _insert_softmax(block, classify, scores: str, probabilities: str) -> None:
    """Feed ``classify`` with ``softmax(scores)`` (float32, last axis) instead of ``scores``.

    coremltools' ClassifierConfig hands the classify op whatever the model returns and
    its converter refuses a second (probability) output, so the op is added to the
    program here; ``classify`` moves behind it to keep the block topologically ordered."""
    from coremltools.converters.mil.backend.mil.helper import create_scalar_value

    producer = next(out for op in block.operations for out in op.outputs if out.name == scores)
    softmax = block.operations.add()
    softmax.type = "softmax"
    softmax.inputs["x"].arguments.add().name = scores
    softmax.inputs["axis"].arguments.add().value.CopyFrom(create_scalar_value(np.int32(-1)))
    out = softmax.outputs.add()
    out.name = probabilities
    out.type.CopyFrom(producer.type)
    softmax.attributes["name"].CopyFrom(create_scalar_value(probabilities))
    classify.inputs["probabilities"].arguments[0].name = probabilities
    moved = type(classify)()
    moved.CopyFrom(classify)
    index = next(i for i, op in enumerate(block.operations) if op.type == "classify")
    del block.operations[index]
    block.operations.add().CopyFrom(moved)
