import copy

import pytest
import torch

from casvit import create_model, deploy, op_census
from casvit.deploy import fold_batchnorms, fold_bn_into_next_conv
from casvit.fusion import bn_affine
from casvit.layers import AdditiveBlock, Downsample, LocalIntegration, SpatialOperation, Stem
from casvit.seeding import randomize_batchnorm

from .helpers import photo_batch


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.fixture(scope="module")
def photos():
    return {(224, 224): photo_batch(224, 224), (192, 256): photo_batch(192, 256)}


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["xs", "s", "m", "t"])
def test_deploy_equals_eval_model_on_real_photos(variant, photos):
    torch.manual_seed(0)
    model = randomize_batchnorm(create_model(variant)).eval()
    deployed = deploy(model)
    with torch.no_grad():
        for size, x in photos.items():
            assert _rel(deployed(x), model(x)) <= 1e-5, size


def test_deploy_op_census_has_no_bn_no_linear():
    deployed = deploy(randomize_batchnorm(create_model("xs")).eval())
    census = op_census(deployed)
    assert census.keys() <= {"Conv2d", "ReLU", "GELU", "Sigmoid", "AdaptiveAvgPool2d", "Identity"}, census
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.Linear, torch.nn.Softmax)) for m in deployed.modules())


@pytest.mark.parametrize("input_range", [1.0, 255.0])
def test_embedded_normalization(input_range):
    model = randomize_batchnorm(create_model("tiny")).eval()
    raw = photo_batch(64, 96, normalize=False)
    normalized = photo_batch(64, 96, normalize=True)
    deployed = deploy(model, normalize_input=True, input_range=input_range)
    with torch.no_grad():
        assert _rel(deployed(raw * input_range), model(normalized)) <= 1e-5


def test_deploy_without_distillation_and_leaves_model_untouched():
    model = randomize_batchnorm(create_model("tiny", num_classes=5, distillation=False)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    deployed = deploy(model)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert _rel(deployed(x), model(x)) <= 1e-5
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.norm.__class__ is torch.nn.BatchNorm2d


def test_deploy_refuses_backbone_and_bad_range():
    with pytest.raises(ValueError, match="backbone"):
        deploy(create_model("tiny", backbone=True))
    with pytest.raises(ValueError, match="input_range"):
        deploy(create_model("tiny"), normalize_input=True, input_range=2.0)


def test_fold_bn_into_next_conv_only_where_exact():
    bn = randomize_batchnorm(torch.nn.Sequential(torch.nn.BatchNorm2d(4)))[0].eval()
    conv = torch.nn.Conv2d(4, 6, 1, bias=False)
    x = torch.randn(2, 4, 5, 5)
    with torch.no_grad():
        assert torch.allclose(fold_bn_into_next_conv(bn, conv)(x), conv(bn(x)), atol=1e-5)
    with pytest.raises(ValueError, match="1x1"):
        fold_bn_into_next_conv(bn, torch.nn.Conv2d(4, 6, 3, padding=1))


def test_bn_affine_is_the_eval_batchnorm():
    bn = randomize_batchnorm(torch.nn.Sequential(torch.nn.BatchNorm2d(5)))[0].eval()
    x = torch.randn(3, 5, 4, 4)
    scale, shift = bn_affine(bn)
    with torch.no_grad():
        assert torch.allclose(x * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1), bn(x), atol=1e-6)


@pytest.mark.parametrize(
    "layer, channels",
    [
        (Stem(3, 16), 3),
        (Downsample(16, 24), 16),
        (LocalIntegration(16), 16),
        (SpatialOperation(16), 16),
        (AdditiveBlock(16), 16),
    ],
)
def test_each_layer_folds_its_batchnorms_and_keeps_its_output(layer, channels):
    layer = randomize_batchnorm(layer).eval()
    holder = torch.nn.Sequential(copy.deepcopy(layer))
    fold_batchnorms(holder)
    x = torch.randn(2, channels, 32, 32)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in holder.modules())
    with torch.no_grad():
        assert _rel(holder(x), layer(x)) <= 1e-5
