"""Load a saved ML Program (.mlpackage) and run it op by op on torch tensors."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .constexpr import CONSTEXPR_OPS
from .errors import ProgramError, UnsupportedOpError
from .ops import OPS, SUPPORTED_OPS, fake_quantize, tensor
from .values import DTYPES, RUNTIME_DTYPES, BlobFiles, declared_shape, decode, tensor_dtype

WEIGHTS_IN_PACKAGE = Path("Data") / "com.apple.CoreML" / "weights"
# One thread, like eager PyTorch and the ONNX Runtime and LiteRT runs of an export:
# on a loaded 2-core machine a second thread waits instead of helping.
THREADS = 1


def main_block(spec):
    """The main function's block of an ML Program spec (coremltools' ``Model`` protobuf)."""
    if spec.WhichOneof("Type") != "mlProgram":
        raise ProgramError(f"not an ML Program (model type {spec.WhichOneof('Type')!r})")
    functions = spec.mlProgram.functions
    if "main" not in functions:
        raise ProgramError("the ML Program has no 'main' function")
    function = functions["main"]
    return function, function.block_specializations[function.opset]


def op_census(spec) -> dict[str, int]:
    """MIL op type -> count in the main block."""
    _, block = main_block(spec)
    counts: dict[str, int] = {}
    for op in block.operations:
        counts[op.type] = counts.get(op.type, 0) + 1
    return dict(sorted(counts.items()))


@dataclass(frozen=True)
class _Var:
    """An argument computed at run time: the name of a value of the program."""

    name: str


@dataclass
class _Step:
    """One runtime op with its arguments bound: ``static`` (constants, literals,
    attributes) once at load, ``dynamic`` (``_Var`` or lists holding some) per run;
    ``fn`` computes its outputs (the op's implementation unless fused)."""

    op: object  # the protobuf Operation
    static: dict
    dynamic: dict
    fn: object = None

    def reads(self) -> set[str]:
        return {v.name for value in self.dynamic.values() for v in _listed(value) if isinstance(v, _Var)}


def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


def _resolve(value, env: dict):
    if isinstance(value, list):
        return [_resolve(v, env) for v in value]
    return env[value.name] if isinstance(value, _Var) else value


@contextlib.contextmanager
def _threads(count: int):
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class Program:
    """An ML Program ready to run: weights read, compile-time (constexpr) ops folded.

    ``run(feeds, outputs)`` takes the model's declared inputs (an image input as an
    NCHW float array of whole numbers 0-255, in RGB order) and returns the requested
    outputs (default: every declared output) by name as NumPy values, computing only
    the ops they need and freeing each value after its last use; ``observe(name,
    value)``, when given, sees every input and computed value (a tensor) as it is made. A feed may hold a
    batch of N samples where the program declares batch 1: every op then runs once on
    the whole batch (the batch axis must stay the leading axis of every value; ops
    that would mix samples are refused). ``outputs`` may also name any op's output var (an
    intermediate value, for per-layer localization).
    """

    def __init__(self, spec, weights_dir: Path):
        self.spec = spec
        self.function, block = main_block(spec)
        self.opset = self.function.opset
        unsupported = sorted({op.type for op in block.operations} - SUPPORTED_OPS)
        if unsupported:
            raise UnsupportedOpError(
                f"the reference interpreter does not support MIL op(s) {', '.join(unsupported)} "
                f"(supported: {', '.join(sorted(SUPPORTED_OPS))})"
            )
        self.outputs = list(block.outputs)
        self._vars = {out.name for op in block.operations for out in op.outputs}  # what run() may return
        self._blobs = BlobFiles(weights_dir)
        self._constants: dict[str, object] = {}
        self._steps: list[_Step] = []
        self._plans: dict[tuple[str, ...], list[tuple[_Step, tuple[str, ...]]]] = {}
        for op in block.operations:
            if op.type == "const":
                self._store(self._constants, op, [decode(op.attributes["val"], self._blobs)])
            elif op.type in CONSTEXPR_OPS:  # compile-time: folded once, here
                step = self._bind(op)
                self._store(self._constants, op, [CONSTEXPR_OPS[op.type](**self._args(step, self._constants))])
            else:
                self._steps.append(self._bind(op))
        self._steps = _fused(self._steps, set(self.outputs))
        self.inputs = {i.name: i.type for i in self.function.inputs}
        self.image_inputs = {
            f.name: f.type.imageType for f in spec.description.input if f.type.WhichOneof("Type") == "imageType"
        }

    @classmethod
    def load(cls, package: Path) -> Program:
        import coremltools as ct

        package = Path(package)
        if not (package / "Manifest.json").is_file():
            raise ProgramError(f"{package} is not an .mlpackage (no Manifest.json)")
        return cls(ct.utils.load_spec(str(package)), package / WEIGHTS_IN_PACKAGE)

    def run(self, feeds: dict[str, np.ndarray], outputs: list[str] | None = None, observe=None) -> dict[str, object]:
        missing = sorted(set(self.inputs) - set(feeds))
        if missing:
            raise ProgramError(f"missing input(s): {', '.join(missing)}")
        outputs = list(self.outputs if outputs is None else outputs)
        unknown = sorted(set(outputs) - set(self.outputs) - self._vars)
        if unknown:
            raise ProgramError(f"unknown output(s) {', '.join(unknown)}; the program has {', '.join(self.outputs)}")
        values = {
            name: np.asarray(
                self._image(name, feeds[name]) if name in self.image_inputs else self._tensor(name, feeds[name])
            )
            for name in self.inputs
        }
        batch = self._batch_size(values)
        env: dict[str, object] = {}
        for name, value in values.items():
            env[name] = self._declared(tensor(value), self.inputs[name], f"input {name!r}", batch)
            if observe is not None:
                observe(name, env[name])
        with torch.inference_mode(), _threads(THREADS):
            for step, dead in self._plan(tuple(outputs)):
                result = self._call(step, env, batch)
                self._store(env, step.op, list(result) if len(step.op.outputs) > 1 else [result], batch)
                if observe is not None:
                    for out in step.op.outputs:
                        observe(out.name, env[out.name])
                for name in dead:
                    del env[name]
        return {name: _numpy(env[name]) for name in outputs}

    def _batch_size(self, values: dict[str, np.ndarray]) -> int:
        """N when every input declared with batch 1 is fed N samples (1 otherwise)."""
        sizes = {v.shape[0] for name, v in values.items() if v.ndim and declared_shape(self.inputs[name])[:1] == (1,)}
        if len(sizes) > 1:
            raise ProgramError(f"inputs disagree on the batch size: {sorted(sizes)}")
        return sizes.pop() if sizes else 1

    def _plan(self, outputs: tuple[str, ...]) -> list[tuple[_Step, tuple[str, ...]]]:
        """The steps the requested outputs depend on, in program order, each with the
        values read for the last time there (cached per output set)."""
        if outputs not in self._plans:
            needed, keep = set(outputs), []
            for step in reversed(self._steps):
                if needed.intersection(o.name for o in step.op.outputs):
                    keep.append(step)
                    needed.update(step.reads())
            seen, plan = set(outputs), []
            for step in keep:  # still in reverse order: the first reader met is the last one
                dead = tuple(sorted(step.reads() - seen))
                seen.update(dead)
                plan.append((step, dead))
            self._plans[outputs] = plan[::-1]
        return self._plans[outputs]

    def _image(self, name: str, pixels: np.ndarray) -> np.ndarray:
        """What Core ML makes of an image: its pixels as a float NCHW tensor, channels in
        the declared order. An ImageType's scale and bias are mul/add ops in the program."""
        image = self.image_inputs[name]
        space = image.ColorSpace.Name(image.colorSpace)
        pixels = np.asarray(pixels, np.float32)
        if space not in ("RGB", "BGR"):
            raise ProgramError(f"image input {name!r}: color space {space} is not supported")
        sizes = [(size.height, size.width) for size in image.enumeratedSizes.sizes] or [(image.height, image.width)]
        if pixels.ndim < 3 or (pixels.shape[-3], *pixels.shape[-2:]) not in [(3, h, w) for h, w in sizes]:
            shown = " or ".join(f"3x{h}x{w}" for h, w in sizes)
            raise ProgramError(f"image input {name!r} expects {shown} pixels, got shape {pixels.shape}")
        if not (np.all(pixels == np.rint(pixels)) and pixels.min() >= 0 and pixels.max() <= 255):
            raise ProgramError(f"image input {name!r} takes 8-bit pixels: whole numbers from 0 to 255")
        return pixels[..., ::-1, :, :] if space == "BGR" else pixels

    def _tensor(self, name: str, value) -> np.ndarray:
        """A multiarray input; one of flexible shape must have one of the shapes the model enumerates."""
        value = np.asarray(value)
        feature = next(f for f in self.spec.description.input if f.name == name)
        if feature.type.WhichOneof("Type") == "multiArrayType":
            shapes = [tuple(e.shape) for e in feature.type.multiArrayType.enumeratedShapes.shapes]
            if shapes and (1, *value.shape[1:]) not in shapes:
                shown = " or ".join("x".join(map(str, shape)) for shape in shapes)
                raise ProgramError(f"input {name!r} expects one of {shown}, got shape {value.shape}")
        return value

    def _bind(self, op) -> _Step:
        """The op's arguments: constants and literals resolved now, other values by name."""
        static, dynamic = {}, {}
        for arg_name, binding in op.inputs.items():
            items = []
            for arg in binding.arguments:
                if arg.WhichOneof("binding") == "name":
                    items.append(self._constants.get(arg.name, _Var(arg.name)))
                else:
                    items.append(decode(arg.value, self._blobs))
            value = items[0] if len(items) == 1 else items
            (dynamic if any(isinstance(i, _Var) for i in items) else static)[arg_name] = value
        for key, attr in op.attributes.items():
            if key != "name":
                static[key] = decode(attr, self._blobs)
        return _Step(op, static, dynamic)

    @staticmethod
    def _args(step: _Step, env: dict) -> dict:
        return {**step.static, **{k: _resolve(v, env) for k, v in step.dynamic.items()}}

    def _call(self, step: _Step, env: dict, batch: int = 1):
        op = step.op
        args = self._args(step, env)
        if batch > 1:
            args = _batched_args(op, args, batch)
        try:
            return (step.fn or OPS[op.type])(**args)
        except TypeError as e:
            raise ProgramError(f"op {op.type} ({op.outputs[0].name}): unexpected arguments: {e}") from None

    def _store(self, env: dict, op, values: list, batch: int = 1) -> None:
        for out, value in zip(op.outputs, values, strict=True):
            env[out.name] = self._declared(value, out.type, f"{op.type} output {out.name!r}", batch)

    @staticmethod
    def _declared(value, value_type, what: str, batch: int = 1):
        """``value`` in the dtype the program declares: this is where fp16 rounding happens.
        Constants stay NumPy arrays, computed values are tensors. With a batch of N, a
        declared leading 1 stands for N."""
        dtype = tensor_dtype(value_type)
        if dtype is None or dtype == "STRING":
            return value
        table = RUNTIME_DTYPES if isinstance(value, torch.Tensor) else DTYPES
        if dtype not in table:
            raise ProgramError(f"{what}: dtype {dtype} is not supported")
        if isinstance(value, torch.Tensor):
            value = value.to(table[dtype])
        else:
            value = np.asarray(value).astype(table[dtype], copy=False)
        shape = declared_shape(value_type)
        if batch > 1 and shape[:1] == (1,):
            shape = (batch, *shape[1:])
        if len(value.shape) != len(shape) or any(d is not None and d != n for d, n in zip(shape, value.shape)):
            shown = tuple("?" if d is None else d for d in shape)
            raise ProgramError(f"{what}: computed shape {tuple(value.shape)}, the program declares {shown}")
        return value


def _fused(steps: list[_Step], outputs: set[str]) -> list[_Step]:
    """``steps`` with each quantize whose only reader is a dequantize of the same scale,
    zero point and axis replaced by one ``fake_quantize`` step writing the dequantize's
    output (bit for bit the pair; the integer tensor is never made). A quantize output
    that is a program output, or read elsewhere, stays as it is."""
    readers: dict[str, list[_Step]] = {}
    for step in steps:
        for name in step.reads():
            readers.setdefault(name, []).append(step)
    fused, dropped = {}, set()
    for step in steps:
        if step.op.type != "quantize" or step.op.outputs[0].name in outputs:
            continue
        (reader, *others) = readers.get(step.op.outputs[0].name, [None])
        params = ("scale", "zero_point", "axis")
        if (
            others
            or reader is None
            or reader.op.type != "dequantize"
            or set(reader.dynamic) != {"input"}
            or any(not _same(step.static.get(k), reader.static.get(k)) for k in params)
        ):
            continue
        fused[id(reader)] = _Step(reader.op, step.static, step.dynamic, fake_quantize)
        dropped.add(id(step))
    return [fused.get(id(step), step) for step in steps if id(step) not in dropped]


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and bool(np.all(a == b))


def _numpy(value):
    return value.numpy() if isinstance(value, torch.Tensor) else value


def _batched_args(op, args: dict, batch: int) -> dict:
    """An op's arguments for a batch of N samples in a program written for one: a
    reshape keeps the batch as its leading axis; axis 0 may not be reduced or split;
    classify stays per sample."""
    what = f"op {op.type} ({op.outputs[0].name})"
    if op.type == "classify":
        raise ProgramError(f"{what}: classify runs on one sample at a time; request other outputs for a batch")
    if op.type == "reshape":
        shape = [int(s) for s in np.atleast_1d(args["shape"])]
        if not shape or shape[0] != 1:
            raise ProgramError(f"{what}: a reshape whose leading axis is not the batch cannot run batched")
        return {**args, "shape": np.array([batch, *shape[1:]])}
    for key in ("axis", "axes"):
        if key in args and args[key] is not None:
            ndim = args["x" if "x" in args else "input"].dim()
            if any(int(a) % ndim == 0 for a in np.atleast_1d(args[key])):
                raise ProgramError(f"{what}: an op over axis 0 (the batch) cannot run batched")
    return args
