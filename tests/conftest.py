from pathlib import Path

import pytest
import torch

from casvit.init import randomize_batchnorm  # noqa: F401  (re-exported for tests)

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "casvit_reference"  # official-format fixtures, see tests/data/README.md
DIGITS_CHECKPOINT = ROOT / "tests" / "data" / "casvit_tiny_digits.pth"  # trained on sklearn digits, see tests/data
DIGITS_TEST_IMAGES = 120
DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return REFERENCE


def photo_batch(height: int, width: int, normalize: bool = True) -> torch.Tensor:
    """The real photos of the parity harness, preprocessed like every parity input."""
    from casvit.preprocess import official_default
    from export.inputs import parity_images, to_convention

    _, rgb = parity_images(official_default(height, width), noise=0)
    return torch.from_numpy(to_convention(rgb, "normalized" if normalize else "unit"))


@pytest.fixture(scope="session")
def digits_export(tmp_path_factory):
    """The digits-trained checkpoint exported once to every TFLite precision and to
    quantized Core ML, with digit names as labels: (out folder, report)."""
    from export.pipeline import run
    from export.spec import ExportSpec

    out = tmp_path_factory.mktemp("digits")
    labels = out.parent / "digit_names.txt"
    labels.write_text("".join(f"{name}\n" for name in DIGIT_NAMES))
    report = run(ExportSpec(
        targets=("tflite", "coreml"), variant="tiny", height=64, width=64, checkpoint=DIGITS_CHECKPOINT,
        out_dir=out, labels=labels,
        options={"tflite_precisions": ("fp32", "fp16", "int8-dynamic", "int8"), "calib": None, "calib_count": 100,
                 "coreml_precision": "fp16", "coreml_compress": "palettize6,linear8",
                 "coreml_target": "iOS16", "coreml_input": "image"}))
    return out, report
