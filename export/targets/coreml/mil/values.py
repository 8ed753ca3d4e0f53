"""MIL values from the mlProgram protobuf: dtypes, immediate literals and
weights in ``weight.bin`` (read with coremltools' own blob reader)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .errors import ProgramError

# MIL DataType name -> NumPy dtype of constants (weights, literals) as the loader reads them.
DTYPES = {
    "BOOL": np.bool_,
    "FLOAT16": np.float16,
    "FLOAT32": np.float32,
    "FLOAT64": np.float64,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
    "INT4": np.int8,
    "UINT1": np.uint8,
    "UINT2": np.uint8,
    "UINT3": np.uint8,
    "UINT4": np.uint8,
    "UINT6": np.uint8,
}
# MIL DataType name -> torch dtype of the values a running program computes.
RUNTIME_DTYPES = {
    "BOOL": torch.bool,
    "FLOAT16": torch.float16,
    "FLOAT32": torch.float32,
    "FLOAT64": torch.float64,
    "INT8": torch.int8,
    "INT16": torch.int16,
    "INT32": torch.int32,
    "INT64": torch.int64,
    "UINT8": torch.uint8,
}
# blob reader method per stored dtype (sub-byte types come back unpacked, one value per element).
_BLOB_READERS = {
    "FLOAT16": "read_fp16_data",
    "FLOAT32": "read_float_data",
    "INT8": "read_int8_data",
    "UINT8": "read_uint8_data",
    "INT16": "read_int16_data",
    "UINT16": "read_uint16_data",
    "INT32": "read_int32_data",
    "UINT32": "read_uint32_data",
    "INT4": "read_int4_data",
    "UINT1": "read_uint1_data",
    "UINT2": "read_uint2_data",
    "UINT3": "read_uint3_data",
    "UINT4": "read_uint4_data",
    "UINT6": "read_uint6_data",
}


def dtype_name(code: int) -> str:
    from coremltools.proto import MIL_pb2

    return MIL_pb2.DataType.Name(code)


def tensor_dtype(value_type) -> str | None:
    """DataType name of a tensor ValueType (None for lists and dictionaries)."""
    if value_type.WhichOneof("type") != "tensorType":
        return None
    return dtype_name(value_type.tensorType.dataType)


def tensor_shape(value_type) -> tuple[int, ...]:
    """The fixed shape of a tensor type (constants have one)."""
    shape = declared_shape(value_type)
    if None in shape:
        raise ProgramError("the reference interpreter needs fixed tensor shapes; this program has a flexible one")
    return shape


def declared_shape(value_type) -> tuple[int | None, ...]:
    """The shape a tensor type declares, None for a flexible dimension (e.g. the height
    and width of an input with enumerated sizes)."""
    dims = value_type.tensorType.dimensions
    return tuple(int(d.constant.size) if d.WhichOneof("dimension") == "constant" else None for d in dims)


class BlobFiles:
    """Readers for the program's weight files, opened on first use."""

    def __init__(self, weights_dir: Path):
        self.weights_dir = Path(weights_dir)
        self._readers: dict[str, object] = {}

    def read(self, blob, value_type) -> np.ndarray:
        from coremltools.libmilstoragepython import _BlobStorageReader

        name = blob.fileName
        if not name.startswith("@model_path/weights/"):
            raise ProgramError(f"weight file {name!r} is outside the package's weights folder")
        if name not in self._readers:
            path = self.weights_dir / name.removeprefix("@model_path/weights/")
            if not path.is_file():
                raise ProgramError(f"weight file {path} is missing")
            self._readers[name] = _BlobStorageReader(str(path))
        dtype = tensor_dtype(value_type)
        if dtype not in _BLOB_READERS:
            raise ProgramError(f"weights stored as {dtype} are not supported by the reference interpreter")
        data = np.asarray(getattr(self._readers[name], _BLOB_READERS[dtype])(blob.offset))
        if dtype == "FLOAT16":
            data = data.view(np.float16)  # the reader returns the raw uint16 bit patterns
        return data.astype(DTYPES[dtype], copy=False).reshape(tensor_shape(value_type))


def immediate(value) -> object:
    """A literal: tensor -> ndarray (0-d for scalars), list -> list."""
    kind = value.immediateValue.WhichOneof("value")
    if kind == "list":
        return [immediate(v) for v in value.immediateValue.list.values]
    if kind == "tuple":
        return tuple(immediate(v) for v in value.immediateValue.tuple.values)
    if kind != "tensor":
        raise ProgramError(f"literal of kind {kind!r} is not supported by the reference interpreter")
    dtype = tensor_dtype(value.type)
    shape = tensor_shape(value.type)
    t = value.immediateValue.tensor
    field = t.WhichOneof("value")
    if dtype == "STRING":
        data = np.array(list(t.strings.values), dtype=object)
    elif field == "bytes":
        data = np.frombuffer(t.bytes.values, dtype=DTYPES[dtype]).copy()
    elif field in ("floats", "ints", "bools", "longInts", "doubles"):
        data = np.array(list(getattr(t, field).values), dtype=DTYPES[dtype])
    else:
        raise ProgramError(f"literal tensor stored as {field!r} is not supported by the reference interpreter")
    return data.reshape(shape)


def decode(value, blobs: BlobFiles):
    """Any Value of the spec: immediate literal or weight-file reference."""
    kind = value.WhichOneof("value")
    if kind == "immediateValue":
        return immediate(value)
    if kind == "blobFileValue":
        return blobs.read(value.blobFileValue, value.type)
    raise ProgramError(f"value stored as {kind!r} is not supported by the reference interpreter")
