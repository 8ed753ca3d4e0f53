"""Exact ONNX rewrites of the static model before onnx2tf, for the NHWC runtimes
(LiteRT/XNNPACK). Written by hand: neither onnxsim nor onnx2tf does them. Each
keeps the math (up to float rounding order) and was kept only because
``benchmarks.tflite_ab`` measured it faster on xs@224 (figures in docs/tflite.md).

- ``normalization_as_depthwise``: the deploy model normalizes its input as
  ``x * scale + shift`` with (1, 3, 1, 1) constants. In NHWC the innermost axis
  then has only 3 values and XNNPACK runs its binary kernel once per pixel. A
  depthwise 1x1 conv with weight
  ``scale`` and bias ``shift`` is the same affine map in one vectorized pass; in
  the int8 model it is one quantized op instead of two requantizing ones.
- ``split_conv_outputs``: CASAtt's ``qkv`` conv is followed by a channel Split
  into q, k and v, which XNNPACK runs as a copy of the whole output. Three convs,
  one per part (the rows of the weight), write q, k and v directly; in the int8
  model each part also gets its own activation range."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def rewrite(src: Path, dst: Path) -> dict[str, int]:
    """Write ``src`` with both rewrites to ``dst`` (checked by ``onnx.checker``);
    returns how many places each rewrite changed."""
    import onnx

    model = onnx.load(str(src))
    counts = {
        "normalization_as_depthwise": normalization_as_depthwise(model.graph),
        "split_conv_outputs": split_conv_outputs(model.graph),
    }
    _drop_unused_initializers(model.graph)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(dst))
    return counts


def normalization_as_depthwise(graph) -> int:
    """Replace the input's ``Mul`` -> ``Add`` by per-channel constants with one
    grouped 1x1 ``Conv`` (in place); returns 1 when found, else 0."""
    from onnx import helper, numpy_helper

    found = _input_affine(graph)
    if found is None:
        return 0
    mul, add, scale, shift = found
    channels = scale.size
    weight = numpy_helper.from_array(scale.reshape(channels, 1, 1, 1).astype(np.float32), "normalize.dw_weight")
    bias = numpy_helper.from_array(shift.reshape(channels).astype(np.float32), "normalize.dw_bias")
    conv = helper.make_node(
        "Conv",
        [mul.input[0], weight.name, bias.name],
        [add.output[0]],
        name="normalize_dw",
        group=channels,
        kernel_shape=[1, 1],
    )
    _replace(graph, [mul, add], [conv])
    graph.initializer.extend([weight, bias])
    return 1


def split_conv_outputs(graph) -> int:
    """Replace each ``Conv`` whose only consumer is an even ``Split`` along channels
    by one ``Conv`` per part (in place); returns how many were replaced."""
    from onnx import helper, numpy_helper

    constants = {t.name: t for t in graph.initializer}
    count = 0
    for split in [n for n in graph.node if n.op_type == "Split"]:
        conv = next((n for n in graph.node if split.input[0] in n.output), None)
        parts = len(split.output)
        if (
            conv is None
            or conv.op_type != "Conv"
            or not _even_channel_split(split, constants)
            or [n for n in graph.node if split.input[0] in n.input] != [split]
            or split.input[0] in {o.name for o in graph.output}
            or any(t not in constants for t in conv.input[1:])
        ):
            continue
        weight = numpy_helper.to_array(constants[conv.input[1]])
        bias = numpy_helper.to_array(constants[conv.input[2]]) if len(conv.input) > 2 and conv.input[2] else None
        if weight.shape[0] % parts or _attribute(conv, "group", 1) != 1:
            continue
        rows = weight.shape[0] // parts
        convs = []
        for i, output in enumerate(split.output):
            names = [f"{conv.name}_part{i}_weight"]
            graph.initializer.append(numpy_helper.from_array(weight[i * rows : (i + 1) * rows], names[0]))
            if bias is not None:
                names.append(f"{conv.name}_part{i}_bias")
                graph.initializer.append(numpy_helper.from_array(bias[i * rows : (i + 1) * rows], names[1]))
            part = helper.make_node("Conv", [conv.input[0], *names], [output], name=f"{conv.name}_part{i}")
            part.attribute.extend(conv.attribute)
            convs.append(part)
        _replace(graph, [conv, split], convs)
        count += 1
    return count


def _even_channel_split(split, constants) -> bool:
    """``split`` cuts axis 1 into equal parts (``num_outputs``, or equal constant sizes)."""
    from onnx import numpy_helper

    if _attribute(split, "axis", 0) != 1:
        return False
    if len(split.input) > 1 and split.input[1]:
        sizes = numpy_helper.to_array(constants[split.input[1]]) if split.input[1] in constants else None
        return sizes is not None and len(set(sizes.tolist())) == 1
    return True


def _attribute(node, name: str, default):
    from onnx import helper

    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _replace(graph, old: list, new: list) -> None:
    """Put ``new`` where the first of ``old`` was (keeps the topological order)."""
    position = list(graph.node).index(old[0])
    for node in old:
        graph.node.remove(node)
    for offset, node in enumerate(new):
        graph.node.insert(position + offset, node)


def _input_affine(graph):
    """(mul, add, scale, shift) when the graph input feeds only ``Mul(input, scale)``
    whose only consumer is ``Add(., shift)``, both (1, C, 1, 1) constants; else None."""
    constants = {t.name: t for t in graph.initializer}  # converted to arrays only when a candidate
    name = graph.input[0].name
    users = [n for n in graph.node if name in n.input]
    if len(users) != 1 or users[0].op_type != "Mul":
        return None
    mul = users[0]
    scale = _per_channel(constants, [t for t in mul.input if t != name])
    adds = [n for n in graph.node if mul.output[0] in n.input]
    if scale is None or len(adds) != 1 or adds[0].op_type != "Add":
        return None
    shift = _per_channel(constants, [t for t in adds[0].input if t != mul.output[0]])
    if shift is None or shift.size != scale.size or mul.output[0] in {o.name for o in graph.output}:
        return None
    return mul, adds[0], scale, shift


def _per_channel(constants: dict, names: list[str]) -> np.ndarray | None:
    """The one float constant among ``names`` if it has shape (1, C, 1, 1)."""
    from onnx import numpy_helper

    if len(names) != 1 or names[0] not in constants:
        return None
    value = numpy_helper.to_array(constants[names[0]])
    ok = value.ndim == 4 and value.shape[0] == 1 and value.shape[2:] == (1, 1) and value.dtype == np.float32
    return value if ok else None


def _drop_unused_initializers(graph) -> None:
    used = {t for n in graph.node for t in n.input}
    for init in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(init)
