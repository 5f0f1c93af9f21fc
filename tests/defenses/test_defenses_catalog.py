import json

import numpy as np
import pytest
import torch

from wemem.defenses import BASELINES, DELTA_RULE, resolved_settings
from wemem.defenses.catalog import DefenseContext, baseline_factory, defense_parts, defense_spec
from wemem.errors import ParamsError
from wemem.models import build_model
from wemem.training.loop import TrainConfig, fit

# --- resolved_settings -------------------------------------------------------------------------


def test_resolved_settings_of_base_and_wemem_methods_are_their_defense_spec():
    assert resolved_settings("base", {}) == {}
    rsw = resolved_settings("rsw_l2h", {"width": 500, "step": 50})
    assert rsw == {"order": "L2H", "width": 500, "step": 50, "mode": "per_class"}
    swmr = {"width": 5, "step": 2, "tau": 0.5, "realisation": "per_sample"}
    assert resolved_settings("swmr_h2l", swmr) == defense_spec("swmr_h2l", **swmr)
    assert resolved_settings("rmr", {"tau": 0.3}) == {
        "tau": 0.3,
        "lambda_r": 0.1,
        "realisation": "official",
    }


def test_resolved_settings_of_the_baselines_fill_every_default():
    assert resolved_settings("ppb", {"beta": 4.0}) == {"beta": 4.0}
    assert resolved_settings("relaxloss", {"alpha": 1.0}) == {"alpha": 1.0, "upper": 1.0}
    assert resolved_settings("adv", {"theta": 2.0}) == {
        "theta": 2.0,
        "k_attack": 7,
        "attack_every": 1,
        "mode": "nasr",
    }
    official = resolved_settings("adv", {"theta": 1, "mode": "official"})
    assert official["mode"] == "official" and official["k_attack"] == 7


def test_resolved_settings_of_dp_give_the_delta_rule_or_its_value():
    got = resolved_settings("dp", {"noise_multiplier": 0.1})
    assert got == {
        "noise_multiplier": 0.1,
        "max_grad_norm": 1.0,
        "delta": "min(1e-5, 0.1/N)",
        "epochs_planned": "pruning_rounds × finetune_epochs",
        "lr": "config.lr",
        "mode": "auto",
        "passes_per_epoch": 1.0,
    }
    assert resolved_settings("dp", {"noise_multiplier": 0.1}, n_train=5000)["delta"] == 1e-5
    big = resolved_settings("dp", {"target_epsilon": 8.0, "passes_per_epoch": 100}, n_train=50_000)
    assert big["delta"] == pytest.approx(2e-6) and "noise_multiplier" not in big
    assert big["target_epsilon"] == 8.0 and big["passes_per_epoch"] == 100
    given = {"noise_multiplier": 1.0, "delta": 1e-3, "lr": 0.05, "epochs_planned": 105}
    assert resolved_settings("dp", given, n_train=50_000).items() >= given.items()


@pytest.mark.parametrize("name", ["base", "rsw_h2l", "rmr", "ppb", "adv", "relaxloss", "dp"])
def test_resolved_settings_are_plain_json(name):
    settings = {
        "rsw_h2l": {"width": 3, "step": 1},
        "rmr": {"tau": 0.5},
        "ppb": {"beta": 4.0},
        "adv": {"theta": 2.0},
        "relaxloss": {"alpha": 1.0},
        "dp": {"noise_multiplier": 0.1},
    }.get(name, {})
    got = resolved_settings(name, settings)
    assert json.loads(json.dumps(got)) == got


@pytest.mark.parametrize(
    "name, settings, match",
    [
        ("nope", {}, "nope"),
        ("adv", {}, "theta"),
        ("adv", {"theta": 1.0, "beta": 2}, "beta"),
        ("adv", {"theta": 1.0, "mode": "paper"}, "mode = 'paper'"),
        ("dp", {"noise_multiplier": 0.1, "passes_per_epoch": 0}, "passes_per_epoch = 0"),
        ("rsw_h2l", {"width": 3}, "step"),
    ],
)
def test_resolved_settings_refuse_bad_settings(name, settings, match):
    with pytest.raises(ParamsError, match=match):
        resolved_settings(name, settings)


def test_baselines_allow_adv_mode_and_dp_passes_per_epoch():
    assert "mode" in BASELINES["adv"][0]
    assert "passes_per_epoch" in BASELINES["dp"][0]


# --- cache-key specs ----------------------------------------------------------------------------


def test_adv_nasr_spec_is_today_s_and_official_adds_the_mode():
    today = {"theta": 2.0}
    assert baseline_factory("adv", theta=2.0)[0] == today
    assert baseline_factory("adv", theta=2.0, mode="nasr")[0] == today
    assert baseline_factory("adv", theta=2.0, mode="official")[0] == {**today, "mode": "official"}


def test_dp_spec_records_the_delta_rule_and_passes_only_when_not_one():
    spec = baseline_factory("dp", noise_multiplier=0.1)[0]
    assert spec == {"delta": DELTA_RULE, "noise_multiplier": 0.1}
    assert baseline_factory("dp", noise_multiplier=0.1, passes_per_epoch=1)[0] == spec
    assert baseline_factory("dp", noise_multiplier=0.1, passes_per_epoch=1.0)[0] == spec
    official = baseline_factory("dp", noise_multiplier=0.1, passes_per_epoch=100, delta=1e-6)[0]
    assert official == {"delta": 1e-6, "noise_multiplier": 0.1, "passes_per_epoch": 100}


def test_dp_defense_parts_report_epsilon_with_the_default_delta():
    context = DefenseContext(
        arch="fc",
        norm="batch",
        epochs_planned=2,
        memscores=lambda: np.zeros(1),
        labels=lambda: np.zeros(1, dtype=np.int64),
    )
    parts = defense_parts("dp", {"noise_multiplier": 1.0, "lr": 0.05}, context)
    assert parts.spec == {"delta": DELTA_RULE, "epochs_planned": 2, "lr": 0.05,
                          "noise_multiplier": 1.0}  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(60, 6, generator=gen), torch.randint(0, 3, (60,), generator=gen)
    model = build_model("fc", num_classes=3, in_features=6, width=0.125, seed=0)
    config = TrainConfig(batch_size=10, max_epochs=1, patience=10)
    fit(model, x, y, torch.arange(40), torch.arange(40, 60), config=config,
        hooks=parts.hooks_factory())  # fmt: skip
    report = parts.report()
    assert report["delta"] == 1e-5 and report["steps"] == 4 and report["epsilon"] > 0
