"""Load a saved ML Program (.mlpackage) and run it op by op in NumPy."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import ProgramError, UnsupportedOpError
from .ops import OPS, SUPPORTED_OPS
from .values import DTYPES, BlobFiles, decode, tensor_dtype, tensor_shape

WEIGHTS_IN_PACKAGE = Path("Data") / "com.apple.CoreML" / "weights"


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

    ``run(feeds)`` takes the model's declared inputs (an image input as an NCHW
    float array of whole numbers 0-255, in RGB order) and returns every declared
    output by name.
    """

    def __init__(self, spec, weights_dir: Path):
        self.spec = spec
        self.function, block = main_block(spec)
        self.opset = self.function.opset
        unsupported = sorted({op.type for op in block.operations} - SUPPORTED_OPS)
        if unsupported:
            raise UnsupportedOpError(
                f"the reference interpreter does not support MIL op(s) {', '.join(unsupported)} "
                f"(supported: {', '.join(sorted(SUPPORTED_OPS))})")
        self.outputs = list(block.outputs)
        self._blobs = BlobFiles(weights_dir)
        self._constants: dict[str, object] = {}
        self._ops = []
        for op in block.operations:
            if op.type == "const":
                self._store(self._constants, op, [decode(op.attributes["val"], self._blobs)])
            elif op.type.startswith("constexpr_"):  # compile-time: folded once, here
                self._store(self._constants, op, [self._call(op, self._constants)])
            else:
                self._ops.append(op)
        self.inputs = {i.name: i.type for i in self.function.inputs}
        self.image_inputs = {f.name: f.type.imageType for f in spec.description.input
                             if f.type.WhichOneof("Type") == "imageType"}

    @classmethod
    def load(cls, package: Path) -> "Program":
        import coremltools as ct

        package = Path(package)
        if not (package / "Manifest.json").is_file():
            raise ProgramError(f"{package} is not an .mlpackage (no Manifest.json)")
        return cls(ct.utils.load_spec(str(package)), package / WEIGHTS_IN_PACKAGE)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, object]:
        missing = sorted(set(self.inputs) - set(feeds))
        if missing:
            raise ProgramError(f"missing input(s): {', '.join(missing)}")
        env = dict(self._constants)
        for name, value_type in self.inputs.items():
            value = self._image(name, feeds[name]) if name in self.image_inputs else feeds[name]
            env[name] = self._declared(np.asarray(value), value_type, f"input {name!r}")
        for op in self._ops:
            result = self._call(op, env)
            self._store(env, op, list(result) if len(op.outputs) > 1 else [result])
        return {name: env[name] for name in self.outputs}

    def _image(self, name: str, pixels: np.ndarray) -> np.ndarray:
        """What Core ML makes of an image: its pixels as a float NCHW tensor, channels in
        the declared order. An ImageType's scale and bias are mul/add ops in the program."""
        image = self.image_inputs[name]
        space = image.ColorSpace.Name(image.colorSpace)
        pixels = np.asarray(pixels, np.float32)
        if space not in ("RGB", "BGR"):
            raise ProgramError(f"image input {name!r}: color space {space} is not supported")
        if pixels.shape[-3:] != (3, image.height, image.width):
            raise ProgramError(f"image input {name!r} expects 3x{image.height}x{image.width} pixels, "
                               f"got shape {pixels.shape}")
        if not (np.all(pixels == np.rint(pixels)) and pixels.min() >= 0 and pixels.max() <= 255):
            raise ProgramError(f"image input {name!r} takes 8-bit pixels: whole numbers from 0 to 255")
        return pixels[..., ::-1, :, :] if space == "BGR" else pixels

    def _call(self, op, env: dict):
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
        try:
            return OPS[op.type](**args)
        except TypeError as e:
            raise ProgramError(f"op {op.type} ({op.outputs[0].name}): unexpected arguments: {e}") from None

    def _store(self, env: dict, op, values: list) -> None:
        for out, value in zip(op.outputs, values, strict=True):
            env[out.name] = self._declared(value, out.type, f"{op.type} output {out.name!r}")

    @staticmethod
    def _declared(value, value_type, what: str):
        """``value`` in the dtype the program declares: this is where fp16 rounding happens."""
        dtype = tensor_dtype(value_type)
        if dtype is None or dtype == "STRING":
            return value
        if dtype not in DTYPES:
            raise ProgramError(f"{what}: dtype {dtype} is not supported")
        value = np.asarray(value).astype(DTYPES[dtype], copy=False)
        shape = tensor_shape(value_type)
        if value.shape != shape:
            raise ProgramError(f"{what}: computed shape {value.shape}, the program declares {shape}")
        return value
