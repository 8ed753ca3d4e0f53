from pathlib import Path

import pytest
import torch

from casvit.init import randomize_batchnorm  # noqa: F401  (re-exported for tests)

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "casvit_reference"  # official-format fixtures, see tests/data/README.md


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    return REFERENCE


def photo_batch(height: int, width: int, normalize: bool = True) -> torch.Tensor:
    """The real photos of the parity harness, preprocessed like every parity input."""
    from casvit.preprocess import official_default
    from export.inputs import parity_images, to_convention

    _, rgb = parity_images(official_default(height, width), noise=0)
    return torch.from_numpy(to_convention(rgb, "normalized" if normalize else "unit"))
