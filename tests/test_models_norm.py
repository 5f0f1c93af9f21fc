"""GroupNorm models (``norm: group``) for DP-SGD on CNNs: building, settings, cache keys, and a tiny
ResNet18 pruned and DP-fine-tuned through ``Experiment.defended``."""

import math

import pytest
import torch
from torch import nn

from wemem import params
from wemem.defenses.config import BASE, DefenseConfig
from wemem.defenses.dp import check_settings
from wemem.errors import ParamsError
from wemem.experiment.replicate import Experiment
from wemem.models import build_model, to_group_norm
from wemem.pruning import prunable_modules
from wemem.studies.sweeps import check_configs

#: a digits-shaped (1×8×8) ResNet18 at width 1/8, one epoch of dense training and per round
TINY_CNN = {
    "profile": "tiny",
    "dataset": "digits",
    "data_options": {},
    "arch": "resnet18",
    "width": 0.125,
    "n_shadows": 1,
    "max_epochs": 1,
    "finetune_epochs": 1,
}


def _bn(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@pytest.mark.parametrize("arch", ["resnet18", "vgg16bn", "densenet121"])
def test_group_norm_models_have_no_batchnorm_and_the_same_conv_weights(arch):
    bn = build_model(arch, num_classes=3, in_channels=1, width=0.125, seed=4)
    gn = build_model(arch, num_classes=3, in_channels=1, width=0.125, norm="group", seed=4)
    assert _bn(bn) and not _bn(gn)
    groups = [m for m in gn.modules() if isinstance(m, nn.GroupNorm)]
    assert len(groups) == len(_bn(bn))
    assert all(g.num_channels % g.num_groups == 0 and g.num_groups <= 32 for g in groups)
    convs = {k: v for k, v in bn.state_dict().items() if v.dim() == 4}
    assert all(torch.equal(v, gn.state_dict()[k]) for k, v in convs.items())
    assert not [m for m in gn.modules() if isinstance(m, nn.ReLU) and m.inplace]
    x = torch.randn(2, 1, 8, 8)
    assert gn(x).shape == (2, 3)


def test_group_count_is_gcd_of_32_and_channels():
    model = to_group_norm(nn.Sequential(nn.BatchNorm2d(64), nn.BatchNorm2d(24), nn.BatchNorm2d(8)))
    assert [(m.num_groups, m.num_channels) for m in model] == [(32, 64), (8, 24), (8, 8)]


def test_fc_ignores_norm():
    fc = build_model("fc", num_classes=3, in_features=5, norm="group", seed=0)
    assert not any(isinstance(m, nn.GroupNorm) for m in fc.modules())


def test_bad_norm_names_field_value_and_choices():
    with pytest.raises(ParamsError, match=r"norm.*'layer'.*batch, group"):
        build_model("resnet18", num_classes=3, norm="layer")
    with pytest.raises(
        ParamsError, match=r"parameter 'norm' = 'layer': allowed values are batch, group"
    ):
        params.validate({"norm": "layer"})
    assert params.validate({}).norm == "batch"


def test_norm_enters_the_dense_key_only_when_it_changes_the_model(tmp_path):
    def spec(**kw):
        s = params.validate({**TINY_CNN, "cache_dir": str(tmp_path), **kw})
        return Experiment(s, seed=0).dense_spec("victim")

    assert "norm" not in spec() and spec(norm="group")["norm"] == "group"
    assert "norm" not in spec(arch="fc", norm="group")  # the FC model is the same either way
    assert spec(arch="fc", norm="group") == spec(arch="fc")


def test_dp_on_a_batchnorm_cnn_runs_on_its_group_norm_twin(tmp_path):
    check_settings(arch="fc", norm="batch")
    check_settings(arch="resnet18", norm="group")
    with pytest.raises(ParamsError, match="DP rows need GroupNorm models"):
        check_settings(arch="vgg16bn", norm="batch")
    exp = Experiment(params.validate({**TINY_CNN, "cache_dir": str(tmp_path)}), seed=0)
    check_configs(exp, [BASE, DefenseConfig("dp", {"noise_multiplier": 1.0})])  # the twin's
    twin = exp.for_defense("dp")
    assert twin is not exp and twin.settings.norm == "group" and exp.settings.norm == "batch"
    assert exp.for_defense("base") is exp and exp.for_defense("dp") is twin


def test_group_norm_resnet_is_pruned_and_dp_finetuned_through_the_experiment(tmp_path):
    s = params.validate({**TINY_CNN, "norm": "group", "cache_dir": str(tmp_path)})
    exp = Experiment(s, seed=0)
    dense, _, _ = exp.dense("victim")
    assert not _bn(dense) and any(isinstance(m, nn.GroupNorm) for m in dense.modules())
    run = exp.defended("victim", "dp", noise_multiplier=1.0, lr=0.05)
    report = run.summary["defense"]
    assert 0 < report["epsilon"] < math.inf and report["steps"] > 0
    n = len(exp.split("victim").train)
    assert report["delta"] == pytest.approx(min(1e-5, 0.1 / n))  # the default δ
    model = exp.load_pruned_model(run, "victim")
    assert not _bn(model)
    for name, m in prunable_modules(model, "resnet18", "l1_unstructured"):
        zeros = int((m.weight == 0).sum())
        assert zeros == int(m.weight.numel() * s.pruning_rate), name  # sparsity survived DP
        assert run.summary["layer_sparsity"][name] == pytest.approx(s.pruning_rate, abs=1e-2)
    assert math.isfinite(run.final.test_acc)
