"""GroupNorm only where DP-SGD needs it: a BatchNorm CNN run's DP rows train on a GroupNorm twin."""

from __future__ import annotations

from dataclasses import replace

import pytest
from torch import nn

from wemem import params
from wemem.experiment import adaptive, executor, keys
from wemem.experiment.executor import Request
from wemem.experiment.replicate import Experiment


@pytest.fixture
def cnn_settings(tmp_path) -> params.Settings:
    """A few-second CNN setting (digits, a thin ResNet18) with BatchNorm, its own cache."""
    return params.validate(
        {
            "dataset": "digits",
            "arch": "resnet18",
            "width": 0.0625,
            "label_noise": 0.0,
            "n_shadows": 1,
            "max_epochs": 1,
            "finetune_epochs": 1,
            "pruning_rounds": 2,
            "cache_dir": str(tmp_path / "cache"),
        }
    )


def _norms(model: nn.Module) -> set[str]:
    return {type(m).__name__ for m in model.modules() if "Norm" in type(m).__name__}


def test_dp_norm_is_validated():
    assert params.Settings().dp_norm == "group"
    with pytest.raises(params.ParamsError, match="'dp_norm'"):
        params.validate({"dp_norm": "batch"})


def test_defense_settings_change_the_norm_of_dp_on_a_batchnorm_cnn_only(cnn_settings):
    s = cnn_settings
    assert keys.defense_settings(s, "dp") == replace(s, norm="group")
    for name in ("base", "rsw", "rmr", "swmr", "ppb", "adv", "relaxloss"):
        assert keys.defense_settings(s, name) is s
    group, fc = replace(s, norm="group"), replace(s, arch="fc")
    assert keys.defense_settings(group, "dp") is group  # a whole GroupNorm run, as before
    assert keys.defense_settings(fc, "dp") is fc  # no norm layer


def test_for_defense_returns_a_cached_twin_sharing_data_and_seeds(cnn_settings):
    exp = Experiment(cnn_settings, seed=3)
    assert exp.for_defense("base") is exp and exp.for_defense("rmr") is exp
    twin = exp.for_defense("dp")
    assert twin is not exp and exp.for_defense("dp") is twin and twin.for_defense("dp") is twin
    assert twin.settings == replace(exp.settings, norm="group") and twin.seed == 3
    assert twin.pool is exp.pool and twin.cache.root == exp.cache.root
    for role in exp.roles:
        assert (twin.split(role).train == exp.split(role).train).all()
    assert _norms(exp.new_model("victim")) == {"BatchNorm2d"}
    assert _norms(twin.new_model("victim")) == {"GroupNorm"}
    assert exp.dense_spec("victim").get("norm") is None
    assert twin.dense_spec("victim")["norm"] == "group"
    assert {k: v for k, v in twin.dense_spec("victim").items() if k != "norm"} == exp.dense_spec(
        "victim"
    )
    dp = Request("defended", "victim", "dp", settings={"noise_multiplier": 1.0})
    base = Request("defended", "victim", "base")
    assert exp.resolve(dp)[1]["dense"]["norm"] == "group"
    assert exp.resolve(base)[1]["dense"].get("norm") is None
    assert exp.resolve(Request("dense", "victim", "dp"))[1] == twin.dense_spec("victim")


def test_a_dp_row_runs_on_groupnorm_and_every_other_row_on_the_runs_models(cnn_settings):
    exp = Experiment(cnn_settings, seed=0)
    dp = adaptive.defended_stage(exp, "dp", noise_multiplier=0.5)
    assert all(_norms(m) == {"GroupNorm"} for m in dp.models.values())
    assert "epsilon" in dp.summary["defense"]
    table = adaptive.evaluate(exp, dp, ["conf"])
    assert 0.0 <= float(table.auc.iloc[0]) <= 1.0
    again = exp.defended("victim", "dp", noise_multiplier=0.5)  # the cached twin run
    assert again.summary == dp.summary
    base = adaptive.defended_stage(exp, "base")
    assert all(_norms(m) == {"BatchNorm2d"} for m in base.models.values())


def test_prefetch_asks_for_each_dense_model_once(cnn_settings, monkeypatch):
    exp = Experiment(cnn_settings, seed=0)
    asked: list[list[Request]] = []
    monkeypatch.setenv("WEMEM_EXECUTOR", "ray")
    monkeypatch.setattr(executor, "_run_ray", lambda e, rs: asked.append(list(rs)) or 0)
    requests = [
        Request("defended", role, name, settings=st)
        for role in exp.roles
        for name, st in (
            ("dp", {"noise_multiplier": 0.5}),
            ("dp", {"target_epsilon": 8}),
            ("ppb", {}),
        )
    ]
    executor.prefetch(exp, requests)
    dense = [(r.role, exp.resolve(r)[1].get("norm")) for r in asked[0]]
    assert sorted(dense, key=str) == sorted(
        [(role, norm) for role in exp.roles for norm in ("group", None)], key=str
    )
