"""Cross-language parity of the Android app's preprocessing (Kotlin core module) with
casvit.preprocess, and of the predictions a .tflite makes from each tensor.

The Kotlin side is android_app/core's JVM command line (built by
``android_app/tools/android_test.sh``), which runs exactly the app's code path:
model JSON -> ARGB pixels -> Pillow-exact bicubic or bilinear resize of the shorter
side to size / crop_pct -> center crop -> NHWC floats with per-channel mean/std.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from casvit.preprocess import Preprocessing
from export.inputs import photo, to_convention
from export.preprocessing import artifact_record

from .helpers import ROOT

pytestmark = pytest.mark.slow  # builds the Kotlin CLI (kotlinc) and uses the shared tiny TFLite export

SCRIPT = ROOT / "android_app" / "tools" / "android_test.sh"
CLI_JAR = ROOT / "android_app" / "core" / "build" / "jvm" / "preprocess-cli.jar"
PHOTOS = ("astronaut", "chelsea")  # 512x512 and 451x300: a square and a wide photo
TOLERANCE = 1e-6


@pytest.fixture(scope="session")
def cli_jar() -> Path:
    """The Kotlin preprocessing CLI, (re)built when the Kotlin sources changed (cached by hash)."""
    build = subprocess.run(["bash", str(SCRIPT), "build"], capture_output=True, text=True)
    assert build.returncode == 0, f"android_test.sh build failed:\n{build.stdout}\n{build.stderr}"
    assert CLI_JAR.is_file()
    return CLI_JAR


@pytest.fixture(scope="session")
def ppm_photos(tmp_path_factory) -> dict[str, tuple[Path, np.ndarray]]:
    """The real photos as binary PPM files (what the CLI reads) and as RGB arrays."""
    folder = tmp_path_factory.mktemp("photos")
    out = {}
    for name in PHOTOS:
        rgb = photo(name)
        path = folder / f"{name}.ppm"
        Image.fromarray(rgb, "RGB").save(path)
        out[name] = (path, rgb)
    return out


def model_json(record: Preprocessing, convention: str) -> dict:
    """A casvit-model/3 description of a record and input convention (as the exporter writes it)."""
    described = artifact_record(record, convention)
    return {
        "schema": "casvit-model/3",
        "model_file": "model.tflite",
        "labels_file": "labels.txt",
        "variant": "tiny",
        "precision": "fp32",
        "num_classes": 1000,
        "weights_source": "random (seed 0)",
        "for_deployment": False,
        "input": {
            "name": "image",
            "layout": "NHWC",
            "height": record.height,
            "width": record.width,
            "channels": 3,
            "color_order": "RGB",
            "dtype": "float32",
            "normalization_embedded": described["normalization_embedded"],
            "value_range": described["input_range"],
            "mean": list(record.mean),
            "std": list(record.std),
            "quantization": None,
        },
        "preprocessing": described,
        "output": {
            "name": "probabilities",
            "dtype": "float32",
            "shape": [1, 1000],
            "quantization": None,
            "scores": "probabilities",
        },
    }


def kotlin_tensor(jar: Path, metadata: Path, image: Path, out: Path) -> tuple[np.ndarray, str]:
    """(1, H, W, 3) float32 tensor the Kotlin core makes from ``image``, and the CLI's stdout."""
    meta = json.loads(metadata.read_text())
    run = subprocess.run(
        ["java", "-jar", str(jar), str(metadata), str(image), str(out)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, f"Kotlin CLI failed:\n{run.stderr}"
    h, w = meta["input"]["height"], meta["input"]["width"]
    return np.fromfile(out, dtype="<f4").reshape(1, h, w, 3), run.stdout


def python_tensor(rgb: np.ndarray, record: Preprocessing, convention: str) -> np.ndarray:
    """(1, H, W, 3) float32: the Python reference (casvit.preprocess + export.inputs) in ``convention``."""
    pixels = record.resize_rgb(rgb)[None]
    return np.ascontiguousarray(to_convention(pixels, convention, record.mean, record.std).transpose(0, 2, 3, 1))


def _max_diff(cli_jar, ppm, rgb, tmp_path, record: Preprocessing, convention: str) -> float:
    metadata = tmp_path / "model.json"
    metadata.write_text(json.dumps(model_json(record, convention)))
    kotlin, _ = kotlin_tensor(cli_jar, metadata, ppm, tmp_path / "tensor.f32")
    python = python_tensor(rgb, record, convention)
    assert kotlin.shape == python.shape
    return float(np.abs(kotlin - python).max())


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
@pytest.mark.parametrize("crop_pct", [0.875, 1.0])
@pytest.mark.parametrize("size", [(64, 64), (224, 224), (96, 160)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_kotlin_record_matches_python(cli_jar, ppm_photos, tmp_path, name, interpolation, crop_pct, size):
    ppm, rgb = ppm_photos[name]
    record = Preprocessing(
        *size, crop_pct=crop_pct, interpolation=interpolation, mean=(0.5, 0.45, 0.4), std=(0.25, 0.2, 0.3)
    )
    diff = _max_diff(cli_jar, ppm, rgb, tmp_path, record, "normalized")
    assert diff <= TOLERANCE, f"{name} {record}: max abs difference {diff}"


@pytest.mark.parametrize("convention", ["normalized", "unit", "byte"])
@pytest.mark.parametrize(
    "record", [Preprocessing(64, 64), Preprocessing(384, 384, crop_mode="squash")], ids=["official-64", "squash-384"]
)
def test_kotlin_conventions_and_squash_match_python(cli_jar, ppm_photos, tmp_path, convention, record):
    ppm, rgb = ppm_photos["chelsea"]
    diff = _max_diff(cli_jar, ppm, rgb, tmp_path, record, convention)
    assert diff <= TOLERANCE, f"{convention} {record}: max abs difference {diff}"


@pytest.fixture(scope="module")
def exported_tflite(tiny_tflite_export) -> Path:
    """The tiny 64x64 model exported by the real pipeline to every TFLite precision (shared, conftest)."""
    assert tiny_tflite_export["report"]["passed"], "the exporter's own parity gate failed"
    return tiny_tflite_export["out"]


def run_tflite(path: Path, nhwc: np.ndarray) -> np.ndarray:
    """Logits of a .tflite for one NHWC float32 input (float I/O models)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert inp["dtype"] == np.float32 and out["dtype"] == np.float32
    interpreter.set_tensor(inp["index"], nhwc)
    interpreter.invoke()
    return interpreter.get_tensor(out["index"])[0].copy()


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
@pytest.mark.parametrize("name", PHOTOS)
def test_tflite_top5_from_kotlin_tensor_matches_python(cli_jar, ppm_photos, exported_tflite, tmp_path, precision, name):
    model = exported_tflite / f"casvit_tiny_64x64_{precision}.tflite"
    metadata = model.with_suffix(".json")  # the exporter's own description, read by the Kotlin parser
    ppm, rgb = ppm_photos[name]
    kotlin, stdout = kotlin_tensor(cli_jar, metadata, ppm, tmp_path / "tensor.f32")
    assert "labels: 1000" in stdout  # the exporter's labels.txt passes the app's check
    python = python_tensor(
        rgb,
        Preprocessing.from_dict(json.loads(metadata.read_text())["preprocessing"]),
        json.loads(metadata.read_text())["preprocessing"]["input_convention"],
    )
    assert float(np.abs(kotlin - python).max()) <= TOLERANCE
    kotlin_logits, python_logits = run_tflite(model, kotlin), run_tflite(model, python)
    top5 = lambda logits: list(np.argsort(-logits, kind="stable")[:5])  # noqa: E731
    assert top5(kotlin_logits) == top5(python_logits)
    np.testing.assert_allclose(kotlin_logits, python_logits, rtol=0, atol=1e-5)


def test_kotlin_reads_the_labels_packed_in_the_model(cli_jar, ppm_photos, exported_tflite, tmp_path):
    """Without a labels.txt beside it, the app takes the labels from the .tflite's own
    metadata (the zip the exporter appends)."""
    import shutil

    for suffix in (".tflite", ".json"):
        shutil.copy(exported_tflite / f"casvit_tiny_64x64_fp32{suffix}", tmp_path / f"model{suffix}")
    meta = json.loads((tmp_path / "model.json").read_text())
    (tmp_path / "model.json").write_text(json.dumps({**meta, "model_file": "model.tflite"}))
    ppm, _ = ppm_photos["chelsea"]
    _, stdout = kotlin_tensor(cli_jar, tmp_path / "model.json", ppm, tmp_path / "tensor.f32")
    assert "labels: 1000 (from the model)" in stdout
