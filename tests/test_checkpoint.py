import json
import os

import numpy as np
import pytest
import torch

from casvit import CheckpointError, create_model, load_checkpoint, model_from_checkpoint, read_checkpoint
from casvit.checkpoint import extract_state_dict
from casvit.seeding import randomize_batchnorm


@pytest.fixture(scope="module")
def tiny(reference_dir):
    cfg = json.loads((reference_dir / "tiny_config.json").read_text())
    expected = np.load(reference_dir / "tiny_expected.npz")
    return cfg, expected, reference_dir / "tiny_official_format.pth"


def _rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("ema,key", [(False, "logits"), (True, "logits_ema")])
def test_official_fixture_reproduces_logits(tiny, ema, key):
    cfg, expected, path = tiny
    model = create_model(
        "custom", layers=cfg["layers"], embed_dims=cfg["embed_dims"], num_classes=cfg["num_classes"]
    ).eval()
    load_checkpoint(model, path, use_ema=ema)
    with torch.no_grad():
        out = model(torch.from_numpy(expected["x"])).numpy()
    assert _rel(out, expected[key]) <= 1e-5


def test_model_from_checkpoint_infers_configuration(tiny):
    cfg, expected, path = tiny
    model = model_from_checkpoint(path)
    assert list(model.layers) == cfg["layers"] and list(model.embed_dims) == cfg["embed_dims"]
    assert model.num_classes == 10 and not model.training
    with torch.no_grad():
        assert _rel(model(torch.from_numpy(expected["x"])).numpy(), expected["logits"]) <= 1e-5


def test_wrappers_and_prefixes_all_load(tmp_path):
    model = randomize_batchnorm(create_model("tiny", num_classes=4)).eval()
    sd = model.state_dict()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
    variants = {
        "bare": sd,
        "model": {"model": sd, "epoch": 3},
        "state_dict": {"state_dict": sd},
        "module": {"model": {f"module.{k}": v for k, v in sd.items()}},
        "ema": {"model": {k: torch.zeros_like(v) for k, v in sd.items()}, "model_ema": sd},
    }
    for name, obj in variants.items():
        path = tmp_path / f"{name}.pth"
        torch.save(obj, path)
        loaded = load_checkpoint(create_model("tiny", num_classes=4), path, use_ema=name == "ema").eval()
        with torch.no_grad():
            assert torch.equal(loaded(x), ref), name


def test_ema_requested_but_absent(tmp_path):
    path = tmp_path / "plain.pth"
    torch.save({"model": create_model("tiny").state_dict()}, path)
    with pytest.raises(CheckpointError, match="no 'model_ema'"):
        load_checkpoint(create_model("tiny"), path, use_ema=True)


def test_backbone_checkpoint_round_trip(tmp_path):
    model = randomize_batchnorm(create_model("tiny", backbone=True)).eval()
    path = tmp_path / "det.pth"
    torch.save({"state_dict": {f"backbone.{k}": v for k, v in model.state_dict().items()}, "meta": {}}, path)
    loaded = model_from_checkpoint(path)
    assert loaded.backbone
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        for a, b in zip(model(x), loaded(x)):
            assert torch.equal(a, b)


def test_truncated_file(tiny, tmp_path):
    data = tiny[2].read_bytes()
    path = tmp_path / "trunc.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        read_checkpoint(path)


def test_non_checkpoint_file(tmp_path):
    path = tmp_path / "notes.pth"
    path.write_text("these are not weights\n")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        read_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "nope.pth")


class _Exploit:
    marker = ""

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_code_executing_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    _Exploit.marker = str(marker)
    path = tmp_path / "evil.pth"
    torch.save({"model": {"x": torch.zeros(1)}, "payload": _Exploit()}, path)
    with pytest.raises(CheckpointError, match="refused to unpickle"):
        read_checkpoint(path)
    assert not marker.exists(), "the pickle payload ran"


def test_other_variant_is_named(tmp_path):
    path = tmp_path / "xs.pth"
    torch.save({"model": create_model("xs").state_dict()}, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(create_model("s"), path)
    msg = str(err.value)
    assert "looks like variant 'xs'" in msg and "shape mismatches" in msg and "missing keys" in msg
    with pytest.raises(CheckpointError, match="looks like variant 'xs'"):
        model_from_checkpoint(path, variant="s")


def test_wrong_class_count(tiny):
    with pytest.raises(CheckpointError) as err:
        model_from_checkpoint(tiny[2], num_classes=1000)
    assert "head.weight (10, 48) vs model (1000, 48)" in str(err.value)
    assert "10 classes" in str(err.value)


def test_failed_load_leaves_model_untouched(tmp_path):
    model = create_model("tiny")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sd = dict(model.state_dict())
    sd = {k: torch.ones_like(v) for k, v in sd.items()}
    sd.pop("head.bias")
    path = tmp_path / "partial.pth"
    torch.save(sd, path)
    with pytest.raises(CheckpointError, match="1 missing keys: head.bias"):
        load_checkpoint(model, path)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_non_casvit_state_dict(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="not a CAS-ViT state dict"):
        model_from_checkpoint(path)
    assert list(extract_state_dict({"module.weight": torch.zeros(3)})) == ["weight"]
