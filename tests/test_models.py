"""Unit tests for wemem.models: shapes, parameter counts, init and errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision import models as tv
from torchvision.models.vgg import cfgs, make_layers

from wemem.errors import ParamsError
from wemem.models import (
    ARCHITECTURES,
    build_model,
    count_parameters,
    xavier_init,
)

CNNS = ("resnet18", "vgg16bn", "densenet121")


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _stem_difference(in_channels: int = 3, out: int = 64) -> int:
    """torchvision's 7×7 stem conv minus the CIFAR 3×3 stem conv (no bias in either)."""
    return in_channels * out * 49 - in_channels * out * 9


# --- parameter counts at width 1 against torchvision ---------------------------------------------


def test_resnet18_parameter_count_matches_torchvision_with_3x3_stem():
    expected = count_parameters(tv.resnet18(weights=None, num_classes=10)) - _stem_difference()
    assert count_parameters(build_model("resnet18", num_classes=10)) == expected


def test_densenet121_parameter_count_matches_torchvision_with_3x3_stem():
    expected = count_parameters(tv.densenet121(weights=None, num_classes=10)) - _stem_difference()
    assert count_parameters(build_model("densenet121", num_classes=10)) == expected


@pytest.mark.parametrize("num_classes", [10, 100])
def test_vgg16bn_parameter_count_is_torchvision_features_plus_small_classifier(num_classes):
    # torchvision's own builder of vgg16_bn().features, without its 25088-input classifier
    features = count_parameters(make_layers(cfgs["D"], batch_norm=True))
    classifier = (512 * 4096 + 4096) + (4096 * 4096 + 4096) + (4096 * num_classes + num_classes)
    model = build_model("vgg16bn", num_classes=num_classes)
    assert count_parameters(model) == features + classifier


def test_fc_parameter_count():
    model = build_model("fc", num_classes=100, in_features=600)
    assert count_parameters(model) == 600 * 256 + 256 + 256 * 128 + 128 + 128 * 100 + 100


def test_stem_maxpool_changes_no_parameters():
    with_pool = build_model("resnet18", num_classes=10, width=0.125)
    without = build_model("resnet18", num_classes=10, width=0.125, stem_maxpool=False)
    assert count_parameters(with_pool) == count_parameters(without)
    assert isinstance(without.maxpool, nn.Identity)
    assert isinstance(with_pool.maxpool, nn.MaxPool2d)


def test_count_parameters_counts_shared_tensor_once():
    layer = nn.Linear(3, 2)
    assert count_parameters(nn.Sequential(layer, layer)) == 3 * 2 + 2


# --- forward shapes ----------------------------------------------------------------------------


@pytest.mark.parametrize("arch", CNNS)
@pytest.mark.parametrize("stem_maxpool", [True, False])
@pytest.mark.parametrize(("in_channels", "size"), [(1, 8), (3, 32)])
def test_cnn_forward_shape(arch, stem_maxpool, in_channels, size):
    model = build_model(
        arch,
        num_classes=10,
        in_channels=in_channels,
        width=0.125,
        stem_maxpool=stem_maxpool,
        seed=0,
    ).eval()
    with torch.no_grad():
        out = model(torch.randn(2, in_channels, size, size))
    assert out.shape == (2, 10)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("arch", CNNS)
def test_cnn_forward_channels_last_matches_contiguous(arch):
    model = build_model(arch, num_classes=5, width=0.125, seed=1).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        got = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_fc_forward_shape():
    model = build_model("fc", num_classes=30, in_features=446, seed=0).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 446)).shape == (2, 30)


def test_vgg_pools_keep_1x1_at_8x8_and_halve_at_32x32():
    model = build_model("vgg16bn", num_classes=10, in_channels=1, width=0.125)
    with torch.no_grad():
        small = model.features(torch.randn(2, 1, 8, 8))
    assert small.shape[-2:] == (1, 1)
    model = build_model("vgg16bn", num_classes=10, width=0.125)
    with torch.no_grad():
        large = model.features(torch.randn(2, 3, 32, 32))
    assert large.shape[-2:] == (1, 1)  # 32 / 2**5, as with floor pooling


def test_densenet_spatial_sizes_at_32x32_match_floor_pooling():
    model = build_model("densenet121", num_classes=10, width=0.125)
    sizes = []
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        for layer in model.features:
            x = layer(x)
            sizes.append(x.shape[-1])
    # stem 32, max-pool 16, then the three transitions halve: 8, 4, 2; global pool 1.
    assert sorted(set(sizes), reverse=True) == [32, 16, 8, 4, 2, 1]


def test_width_scales_channels():
    model = build_model("resnet18", num_classes=10, width=0.5)
    assert model.conv1.out_channels == 32
    assert model.fc.in_features == 256
    tiny = build_model("fc", num_classes=2, in_features=4, width=0.001)
    assert (tiny.fc1.out_features, tiny.fc2.out_features) == (1, 1)


def test_no_inplace_relu_anywhere():
    for arch in ARCHITECTURES:
        model = build_model(arch, num_classes=3, in_features=5, width=0.125)
        relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
        assert relus and not any(m.inplace for m in relus)


# --- initialization ----------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_xavier_init_zero_biases_and_unit_norms(arch):
    model = build_model(arch, num_classes=4, in_features=7, width=0.125, seed=3)
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)) and module.bias is not None:
            assert torch.count_nonzero(module.bias) == 0
        if isinstance(module, nn.BatchNorm2d):
            assert torch.all(module.weight == 1)
            assert torch.count_nonzero(module.bias) == 0


def test_xavier_init_overrides_default_init_with_xavier_normal_scale():
    torch.manual_seed(0)
    layer = xavier_init(nn.Sequential(nn.Linear(400, 600), nn.LayerNorm(600)))
    std = (2.0 / (400 + 600)) ** 0.5
    assert abs(layer[0].weight.std().item() - std) < 0.05 * std
    assert torch.count_nonzero(layer[0].bias) == 0
    assert torch.all(layer[1].weight == 1)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_seed_determines_weights(arch):
    kwargs = {"num_classes": 4, "in_features": 7, "width": 0.125}
    first = build_model(arch, seed=11, **kwargs).state_dict()
    second = build_model(arch, seed=11, **kwargs).state_dict()
    other = build_model(arch, seed=12, **kwargs).state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)


def test_seed_leaves_global_rng_untouched():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    build_model("fc", num_classes=2, in_features=3, seed=99)
    torch.testing.assert_close(torch.rand(3), expected)


# --- errors ------------------------------------------------------------------------------------


def test_bad_arch_names_field_value_and_choices():
    with pytest.raises(ParamsError, match=r"arch.*'resnet50'.*resnet18.*densenet121.*fc"):
        build_model("resnet50", num_classes=10)


@pytest.mark.parametrize("width", [0, -1.0, float("nan"), float("inf"), True])
def test_bad_width(width):
    with pytest.raises(ParamsError, match=r"width.*> 0"):
        build_model("resnet18", num_classes=10, width=width)


@pytest.mark.parametrize("num_classes", [1, 0, 2.0])
def test_bad_num_classes(num_classes):
    with pytest.raises(ParamsError, match=r"num_classes.*>= 2"):
        build_model("vgg16bn", num_classes=num_classes)


def test_fc_requires_in_features():
    with pytest.raises(ParamsError, match="in_features"):
        build_model("fc", num_classes=10)
    with pytest.raises(ParamsError, match="in_features"):
        build_model("fc", num_classes=10, in_features=0)


def test_bad_in_channels():
    with pytest.raises(ParamsError, match="in_channels"):
        build_model("densenet121", num_classes=10, in_channels=0)
