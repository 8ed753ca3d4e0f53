import json

import pytest
import torch

from casvit import VARIANTS, CASAtt, create_model
from casvit.model import CASViT

OFFICIAL = ("xs", "s", "m", "t")


@pytest.fixture(scope="module")
def reference_shapes(reference_dir):
    return json.loads((reference_dir / "state_dict_shapes.json").read_text())


@pytest.mark.parametrize("variant", OFFICIAL)
def test_state_dict_and_param_count_match_official(variant, reference_shapes):
    model = create_model(variant)
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert shapes == reference_shapes[f"rcvit_{variant}"]
    assert list(shapes) == list(reference_shapes[f"rcvit_{variant}"]), "key order differs"
    assert sum(p.numel() for p in model.parameters()) == reference_shapes[f"rcvit_{variant}_params"]


def test_custom_configuration():
    model = create_model("custom", layers=[1, 2, 1, 1], embed_dims=[8, 16, 24, 32], num_classes=5).eval()
    assert model(torch.randn(1, 3, 64, 96)).shape == (1, 5)
    with pytest.raises(ValueError, match="needs both"):
        create_model("custom", layers=[1, 1, 1, 1])
    with pytest.raises(ValueError, match="unknown variant"):
        create_model("xxl")


def test_train_mode_returns_both_heads_eval_their_mean():
    model = create_model("tiny", num_classes=7)
    x = torch.randn(2, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        pooled = model.norm(model.forward_features(x)).mean((2, 3))
        expected = (model.head(pooled) + model.dist_head(pooled)) / 2
        assert torch.allclose(model(x), expected, atol=1e-6)
    model.train()
    out = model(x)
    assert isinstance(out, tuple) and len(out) == 2 and out[0].shape == (2, 7)


def test_without_distillation_has_single_head():
    model = create_model("tiny", num_classes=3, distillation=False).eval()
    assert model.dist_head is None and "dist_head.weight" not in model.state_dict()
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 3)


@pytest.mark.parametrize("size", [(224, 224), (256, 256), (192, 256), (384, 384)])
def test_backbone_shapes(size):
    model = create_model("xs", backbone=True).eval()
    h, w = size
    with torch.no_grad():
        feats = model(torch.randn(1, 3, h, w))
    dims = VARIANTS["xs"].embed_dims
    assert [tuple(f.shape) for f in feats] == [(1, c, h // s, w // s) for c, s in zip(dims, (4, 8, 16, 32))]
    assert not hasattr(model, "head") and {"norm0.weight", "norm6.weight"} <= set(model.state_dict())


@pytest.mark.parametrize("size", [(100, 224), (224, 225), (31, 31)])
def test_input_size_not_multiple_of_32_is_refused(size):
    model = create_model("tiny").eval()
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.randn(1, 3, *size))


@pytest.mark.parametrize("hw", [(13, 17), (1, 1), (7, 30)])
def test_casatt_plugs_into_odd_sizes(hw):
    torch.manual_seed(0)
    mixer = CASAtt(12).eval()
    x = torch.randn(2, 12, *hw, requires_grad=True)
    out = mixer(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    # Per-sample independence: the mixer must not leak across the batch.
    with torch.no_grad():
        assert torch.allclose(mixer(x[:1]), out[:1], atol=1e-6)


def test_casatt_matches_its_definition():
    """out = proj(dwc(chan(spat(q)) + chan(spat(k))) * v), computed here with functional ops."""
    import torch.nn.functional as F

    torch.manual_seed(1)
    m = CASAtt(8).eval()
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-1, 1)
            mod.running_var.uniform_(0.5, 2)
    x = torch.randn(1, 8, 9, 11)

    def gate(t, oper):
        sp, ch = oper[0].block, oper[1].block
        dw = F.conv2d(t, sp[0].weight, sp[0].bias, padding=1, groups=8)
        bn = F.batch_norm(dw, sp[1].running_mean, sp[1].running_var, sp[1].weight, sp[1].bias, False)
        t = t * torch.sigmoid(F.conv2d(F.relu(bn), sp[3].weight))
        return t * torch.sigmoid(F.conv2d(t.mean((2, 3), keepdim=True), ch[1].weight))

    with torch.no_grad():
        q, k, v = F.conv2d(x, m.qkv.weight).split(8, dim=1)
        mixed = F.conv2d(gate(q, m.oper_q) + gate(k, m.oper_k), m.dwc.weight, m.dwc.bias, padding=1, groups=8)
        expected = F.conv2d(mixed * v, m.proj.weight, m.proj.bias, padding=1, groups=8)
        assert torch.allclose(m(x), expected, atol=1e-5)


def test_model_class_rejects_bad_config():
    with pytest.raises(ValueError):
        CASViT(layers=[1, 1, 1], embed_dims=[8, 8, 8])
    with pytest.raises(ValueError, match="num_classes"):
        CASViT(num_classes=0)
