"""Paths and small helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "casvit_reference"  # official-format fixtures, see tests/data/README.md
DIGITS_CHECKPOINT = ROOT / "tests" / "data" / "casvit_tiny_digits.pth"  # trained on sklearn digits, see tests/data
DIGITS_TEST_IMAGES = 120
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@contextlib.contextmanager
def output_lock_held(out: Path):
    """A child process that holds ``out``'s export transaction (so its lock) until the
    block ends; yields the process."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom pathlib import Path\nfrom export.outset import Transaction\n"
            "with Transaction(Path(sys.argv[1])):\n    print('locked', flush=True)\n    time.sleep(120)\n",
            str(out),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def photo_batch(height: int, width: int, normalize: bool = True) -> torch.Tensor:
    """The real photos of the parity harness, preprocessed like every parity input."""
    from casvit.preprocess import official_default
    from export.inputs import parity_images, to_convention

    _, rgb = parity_images(official_default(height, width), noise=0)
    return torch.from_numpy(to_convention(rgb, "normalized" if normalize else "unit"))


def save_photos(folder: Path, names_sizes) -> None:
    """The bundled photos ``(name, (width, height))`` saved into ``folder``, alternately as JPEG and PNG."""
    from PIL import Image

    from export.inputs import photo

    folder.mkdir(parents=True, exist_ok=True)
    for (name, size), suffix in zip(names_sizes, [".jpg", ".png"] * len(names_sizes)):
        Image.fromarray(photo(name)).resize(size).save(folder / f"{name}{suffix}")


def make_spec(**values):
    """An ExportSpec from option names and values, read as the CLI and the Python API read them."""
    from export.spec import spec_from

    return spec_from(values)


def export_report(**values) -> dict:
    """Run an export of ``make_spec(**values)``; the content of its report.json."""
    from export.pipeline import run

    return run(make_spec(**values)).to_json()


def eval_model(**values):
    """The eval model an export of ``make_spec(**values)`` builds (seeded random weights without a checkpoint)."""
    from export.source import build_model, read_source, resolve

    spec = make_spec(**values)
    source = read_source(spec)
    return build_model(resolve(spec, source)[0], source)[0]


def read_standard_metadata(path: Path) -> tuple[dict, dict]:
    """The TFLITE_METADATA of a ``.tflite`` as a plain dict tree, and its associated files
    (read with MediaPipe's generated schema, as a metadata reader does)."""
    import io
    import zipfile

    from ai_edge_litert.tools import flatbuffer_utils
    from mediapipe.tasks.metadata import metadata_schema_py_generated as schema

    from export.targets.tflite.metadata import METADATA_IDENTIFIER, METADATA_NAME

    model = flatbuffer_utils.read_model(str(path))
    (entry,) = [m for m in model.metadata or [] if _text(m.name) == METADATA_NAME]
    buffer = bytes(model.buffers[entry.buffer].data)
    if not schema.ModelMetadata.ModelMetadataBufferHasIdentifier(buffer, 0):
        raise ValueError(f"{path}: TFLITE_METADATA lacks the {METADATA_IDENTIFIER.decode()} identifier")
    metadata = _plain(schema.ModelMetadataT.InitFromObj(schema.ModelMetadata.GetRootAs(buffer, 0)))
    with zipfile.ZipFile(io.BytesIO(Path(path).read_bytes())) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    return metadata, files


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _plain(obj):
    """Generated ``*T`` objects -> dicts/lists/str."""
    import numpy as np

    if isinstance(obj, bytes):
        return obj.decode()
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if hasattr(obj, "__dict__"):
        return {k: _plain(v) for k, v in vars(obj).items() if v is not None}
    return obj
