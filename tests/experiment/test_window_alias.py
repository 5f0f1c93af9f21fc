"""Pruning runs whose sliding windows select the same rows every epoch are one training."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import wemem.experiment.stages as S
from wemem.experiment.replicate import Experiment


@pytest.fixture(scope="module")
def shared_settings(tmp_path_factory, tiny_values):
    """The tiny setting with one cache for the module's tests that only build specs: its dense
    models and mem-scores train once."""
    from wemem import params

    return params.validate({**tiny_values, "cache_dir": str(tmp_path_factory.mktemp("cache"))})


def _final(run):
    return run.final.probs_in, run.final.probs_out


def test_windows_wider_than_every_class_train_once(tiny_settings, monkeypatch):
    exp = Experiment(tiny_settings, seed=0)
    sizes = np.bincount(exp.pool.y[exp.split("victim").train].cpu().numpy())
    assert sizes.max() < 500  # both widths below cover every class: the same schedule
    first = exp.defended("victim", "rsw_h2l", width=500, step=20)
    assert "same_training_as" not in first.summary

    def boom(*a, **k):
        raise AssertionError("retrained although the window schedule is cached")

    with monkeypatch.context() as m:
        m.setattr(S, "prune_and_finetune", boom)
        wider = exp.defended("victim", "rsw_h2l", width=900, step=20)
    assert wider.summary["same_training_as"]
    for a, b in zip(_final(first), _final(wider), strict=True):
        np.testing.assert_array_equal(a, b)

    # the reused entry is what training that setting gives: train it in an empty cache
    fresh = Experiment(
        replace(tiny_settings, cache_dir=str(tiny_settings.cache_dir) + "-2"), seed=0
    )
    trained = fresh.defended("victim", "rsw_h2l", width=900, step=20)
    assert "same_training_as" not in trained.summary
    for a, b in zip(_final(trained), _final(wider), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "other",
    [
        ("rsw_h2l", {"width": 500, "step": 30}),  # epoch 1 starts elsewhere
        ("rsw_h2l", {"width": 5, "step": 20}),  # narrower than the classes
        ("rsw_l2h", {"width": 500, "step": 20}),  # another order: another row order
        ("swmr_h2l", {"width": 500, "step": 20, "tau": 0.5, "lambda_r": 0.1}),  # another defense
    ],
    ids=["step", "width", "order", "defense"],
)
def test_another_schedule_or_defense_is_not_the_same_training(shared_settings, other):
    exp = Experiment(shared_settings, seed=0)
    base = exp.defense_parts("rsw_h2l", False, {"width": 500, "step": 20})
    parts = exp.defense_parts(other[0], False, other[1])
    spec = exp.pruned_spec("victim", defense="rsw_h2l", defense_spec=base.spec)
    alias = S.window_schedule_spec(exp, "victim", spec, base.hooks_factory, base.window)
    spec2 = exp.pruned_spec("victim", defense=other[0], defense_spec=parts.spec)
    alias2 = S.window_schedule_spec(exp, "victim", spec2, parts.hooks_factory, parts.window)
    assert alias is not None and alias2 is not None and alias != alias2
    assert "width" not in alias["defense_spec"] and "window_schedule" in alias["defense_spec"]


def test_defenses_without_a_window_have_no_schedule(shared_settings):
    exp = Experiment(shared_settings, seed=0)
    for name, settings in (("rmr", {"tau": 0.5, "lambda_r": 0.1}), ("ppb", {"beta": 4.0})):
        parts = exp.defense_parts(name, False, settings)
        assert parts.window == ()
        spec = exp.pruned_spec("victim", defense=name, defense_spec=parts.spec)
        assert (
            S.window_schedule_spec(exp, "victim", spec, parts.hooks_factory, parts.window) is None
        )


def test_a_sweep_warns_of_windows_wider_than_every_class(tiny_settings):
    from wemem.defenses.config import DefenseConfig
    from wemem.studies import sweeps

    exp = Experiment(tiny_settings, seed=0)
    y = exp.pool.y.cpu().numpy()
    largest = max(int(np.bincount(y[exp.split(r).train]).max()) for r in exp.roles)

    def rsw(width):
        return DefenseConfig("rsw_h2l", {"width": width, "step": 1}, {"setting": f"w={width}"})

    configs = [DefenseConfig("base", {}, {"setting": "Base"}), rsw(largest - 1), rsw(largest)]
    text = sweeps.wide_windows(exp, configs)
    assert text.startswith("1 of 2 window settings") and text.endswith(f"w={largest}")
    assert f"({largest} training rows)" in text
    assert sweeps.wide_windows(exp, configs[:2]) == ""
