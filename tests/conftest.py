import os
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = Path(os.environ.get("CASVIT_REFERENCE", ROOT.parent / "shared" / "casvit_reference"))
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    if not REFERENCE.is_dir():
        pytest.fail(f"reference fixtures not found at {REFERENCE} (set CASVIT_REFERENCE)")
    return REFERENCE


def randomize_batchnorm(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial BN statistics and affine parameters, so folding is really tested."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)
    return model


def photo_batch(height: int, width: int, names=PHOTOS, normalize: bool = True) -> torch.Tensor:
    """Real photos from scikit-image, preprocessed like every parity input."""
    import skimage.data

    from casvit.preprocess import preprocess

    return torch.from_numpy(np.stack([preprocess(getattr(skimage.data, n)(), height, width, normalize) for n in names]))
