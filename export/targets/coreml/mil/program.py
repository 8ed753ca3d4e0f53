"""Load a saved ML Program (.mlpackage) and run it op by op in NumPy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from .errors import ProgramError, UnsupportedOpError
from .ops import OPS, SUPPORTED_OPS
from .values import DTYPES, BlobFiles, decode, tensor_dtype, tensor_shape

WEIGHTS_IN_PACKAGE = Path("Data") / "com.apple.CoreML" / "weights"
# One BLAS thread, like the ONNX Runtime and LiteRT runs: on a loaded 2-core
# machine OpenBLAS's second thread waits instead of helping.
BLAS_THREADS = 1


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


class Program:
    """An ML Program ready to run: weights read, compile-time (constexpr) ops folded.

    ``run(feeds, outputs)`` takes the model's declared inputs (an image input as an
    NCHW float array of whole numbers 0-255, in RGB order) and returns the requested
    outputs (default: every declared output) by name, computing only the ops they
    need. A feed may hold a batch of N samples where the program declares batch 1:
    every op then runs once on the whole batch (the batch axis must stay the leading
    axis of every value; ops that would mix samples are refused). ``outputs`` may also
    name any op's output var (an intermediate value, for per-layer localization).
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
        self._ops = []
        self._plans: dict[tuple[str, ...], list] = {}
        for op in block.operations:
            if op.type == "const":
                self._store(self._constants, op, [decode(op.attributes["val"], self._blobs)])
            elif op.type.startswith("constexpr_"):  # compile-time: folded once, here
                self._store(self._constants, op, [self._call(op, self._constants)])
            else:
                self._ops.append(op)
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

    def run(self, feeds: dict[str, np.ndarray], outputs: list[str] | None = None) -> dict[str, object]:
        missing = sorted(set(self.inputs) - set(feeds))
        if missing:
            raise ProgramError(f"missing input(s): {', '.join(missing)}")
        outputs = list(self.outputs if outputs is None else outputs)
        unknown = sorted(set(outputs) - set(self.outputs) - self._vars)
        if unknown:
            raise ProgramError(f"unknown output(s) {', '.join(unknown)}; the program has {', '.join(self.outputs)}")
        env = dict(self._constants)
        values = {
            name: np.asarray(self._image(name, feeds[name]) if name in self.image_inputs else feeds[name])
            for name in self.inputs
        }
        batch = self._batch_size(values)
        for name, value in values.items():
            env[name] = self._declared(value, self.inputs[name], f"input {name!r}", batch)
        with threadpool_limits(limits=BLAS_THREADS, user_api="blas"):
            for op in self._needed_ops(tuple(outputs)):
                result = self._call(op, env, batch)
                self._store(env, op, list(result) if len(op.outputs) > 1 else [result], batch)
        return {name: env[name] for name in outputs}

    def _batch_size(self, values: dict[str, np.ndarray]) -> int:
        """N when every input declared with batch 1 is fed N samples (1 otherwise)."""
        sizes = {v.shape[0] for name, v in values.items() if v.ndim and tensor_shape(self.inputs[name])[:1] == (1,)}
        if len(sizes) > 1:
            raise ProgramError(f"inputs disagree on the batch size: {sorted(sizes)}")
        return sizes.pop() if sizes else 1

    def _needed_ops(self, outputs: tuple[str, ...]) -> list:
        """The ops the requested outputs depend on, in program order (cached per output set)."""
        if outputs not in self._plans:
            needed, keep = set(outputs), []
            for op in reversed(self._ops):
                if needed.intersection(o.name for o in op.outputs):
                    keep.append(op)
                    needed.update(
                        a.name for b in op.inputs.values() for a in b.arguments if a.WhichOneof("binding") == "name"
                    )
            self._plans[outputs] = keep[::-1]
        return self._plans[outputs]

    def _image(self, name: str, pixels: np.ndarray) -> np.ndarray:
        """What Core ML makes of an image: its pixels as a float NCHW tensor, channels in
        the declared order. An ImageType's scale and bias are mul/add ops in the program."""
        image = self.image_inputs[name]
        space = image.ColorSpace.Name(image.colorSpace)
        pixels = np.asarray(pixels, np.float32)
        if space not in ("RGB", "BGR"):
            raise ProgramError(f"image input {name!r}: color space {space} is not supported")
        if pixels.shape[-3:] != (3, image.height, image.width):
            raise ProgramError(
                f"image input {name!r} expects 3x{image.height}x{image.width} pixels, got shape {pixels.shape}"
            )
        if not (np.all(pixels == np.rint(pixels)) and pixels.min() >= 0 and pixels.max() <= 255):
            raise ProgramError(f"image input {name!r} takes 8-bit pixels: whole numbers from 0 to 255")
        return pixels[..., ::-1, :, :] if space == "BGR" else pixels

    def _call(self, op, env: dict, batch: int = 1):
        args = {}
        for arg_name, binding in op.inputs.items():
            values = []
            for arg in binding.arguments:
                if arg.WhichOneof("binding") == "name":
                    values.append(env[arg.name])
                else:
                    values.append(decode(arg.value, self._blobs))
            args[arg_name] = values[0] if len(values) == 1 else values
        for key, attr in op.attributes.items():
            if key != "name":
                args[key] = decode(attr, self._blobs)
        if batch > 1:
            args = _batched_args(op, args, batch)
        try:
            return OPS[op.type](**args)
        except TypeError as e:
            raise ProgramError(f"op {op.type} ({op.outputs[0].name}): unexpected arguments: {e}") from None

    def _store(self, env: dict, op, values: list, batch: int = 1) -> None:
        for out, value in zip(op.outputs, values, strict=True):
            env[out.name] = self._declared(value, out.type, f"{op.type} output {out.name!r}", batch)

    @staticmethod
    def _declared(value, value_type, what: str, batch: int = 1):
        """``value`` in the dtype the program declares: this is where fp16 rounding happens.
        With a batch of N, a declared leading 1 stands for N."""
        dtype = tensor_dtype(value_type)
        if dtype is None or dtype == "STRING":
            return value
        if dtype not in DTYPES:
            raise ProgramError(f"{what}: dtype {dtype} is not supported")
        value = np.asarray(value).astype(DTYPES[dtype], copy=False)
        shape = tensor_shape(value_type)
        if batch > 1 and shape[:1] == (1,):
            shape = (batch, *shape[1:])
        if value.shape != shape:
            raise ProgramError(f"{what}: computed shape {value.shape}, the program declares {shape}")
        return value


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
            ndim = np.ndim(args["x"])
            if any(int(a) % ndim == 0 for a in np.atleast_1d(args[key])):
                raise ProgramError(f"{what}: an op over axis 0 (the batch) cannot run batched")
    return args
