"""Session fixtures: the expensive exports, built once and shared by the test modules."""

import os
from pathlib import Path

import pytest

from .helpers import DIGIT_NAMES, DIGITS_CHECKPOINT, REFERENCE, make_spec, save_photos


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return REFERENCE


@pytest.fixture(scope="session")
def tiny_tflite_export(tmp_path_factory) -> dict:
    """The tiny model at 64x64 exported once by the real pipeline to every TFLite precision,
    from an empty working folder, calibrating on a user folder of six photos:
    {"report", "out", "cwd", "calib", "calib_before"}."""
    pytest.importorskip("onnx2tf", reason="onnx2tf is not installed")
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert is not installed")
    from export.pipeline import run
    from export.targets.tflite import target as tflite

    base = tmp_path_factory.mktemp("tflite")
    calib = base / "calib"
    save_photos(
        calib,
        [
            ("astronaut", (300, 200)),
            ("coffee", (120, 90)),
            ("chelsea", (64, 64)),
            ("rocket", (200, 300)),
            ("retina", (100, 100)),
            ("cat", (90, 120)),
        ],
    )
    calib_before = sorted(p.name for p in calib.iterdir())
    cwd, previous = base / "cwd", os.getcwd()
    cwd.mkdir()
    os.chdir(cwd)
    try:
        spec = make_spec(
            targets=("tflite",),
            variant="tiny",
            res=(64, 64),
            out_dir=base / "out",
            tflite_precisions=tflite.PRECISIONS,
            calib=calib,
            calib_count=5,
        )
        report = run(spec).to_json()
    finally:
        os.chdir(previous)
    return {"report": report, "out": base / "out", "cwd": cwd, "calib": calib, "calib_before": calib_before}


@pytest.fixture(scope="session")
def digits_export(tmp_path_factory):
    """The digits-trained checkpoint exported once to every TFLite precision and to
    quantized Core ML, with digit names as labels: (out folder, report)."""
    from export.pipeline import run

    out = tmp_path_factory.mktemp("digits")
    labels = out.parent / "digit_names.txt"
    labels.write_text("".join(f"{name}\n" for name in DIGIT_NAMES))
    report = run(
        make_spec(
            targets=("tflite", "coreml"),
            variant="tiny",
            res=(64, 64),
            checkpoint=DIGITS_CHECKPOINT,
            out_dir=out,
            labels=labels,
            tflite_precisions=("fp32", "fp16", "int8-dynamic", "int8"),
            calib=None,
            calib_count=100,
            coreml_precision="fp16",
            coreml_compress="palettize6,linear8",
            coreml_target="iOS16",
            coreml_input="image",
        )
    ).to_json()
    return out, report
