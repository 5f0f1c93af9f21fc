from dataclasses import replace

import pytest

from wemem.experiment.replicate import Experiment
from wemem.studies import autotune, sweeps


@pytest.fixture
def exp(tiny_settings):
    return Experiment(replace(tiny_settings, n_shadows=5), seed=0)


def _fake(values):
    def estimate(exp, cand, *, n_models, attacks=None):
        dev, adv = values[cand.name]
        return {"dev_acc": dev, "advantage": adv + 0.001 * n_models, "seconds": 0.0}

    return estimate


def test_successive_halving_keeps_the_best_third_and_picks_the_top(exp, monkeypatch):
    cands = [autotune.Candidate("rsw_l2h", {"width": i, "step": 1}, f"c{i}") for i in range(9)]
    values = {f"c{i}": (0.5 + 0.05 * i, 0.1 * i) for i in range(9)}  # score = dev - adv
    monkeypatch.setattr(autotune, "estimate", _fake(values))
    chosen, trace = autotune.successive_halving(exp, cands, rungs=(2, 3, 5), eta=3)
    assert trace.groupby("rung").size().tolist() == [9, 3, 1]
    assert chosen.name == "c0"  # dev - adv = 0.5 - 0.05 i: the smallest i wins
    assert trace[trace.rung == 0].kept.sum() == 3


def test_target_advantage_maximises_utility_among_feasible(exp, monkeypatch):
    cands = [autotune.Candidate("rsw_l2h", {"width": i, "step": 1}, f"c{i}") for i in range(9)]
    values = {f"c{i}": (0.5 + 0.05 * i, 0.1 * i) for i in range(9)}
    monkeypatch.setattr(autotune, "estimate", _fake(values))
    chosen, _ = autotune.successive_halving(exp, cands, rungs=(2, 3), eta=3, target_advantage=0.45)
    assert chosen.name == "c4"  # the most accurate with advantage <= 0.45


def test_candidates_cover_methods_orders_and_windows(exp):
    cands = autotune.candidates(exp)
    grid = sweeps.window_grid_for(exp)
    assert len(cands) == 2 * len(grid) * 2 + 3
    assert {c.defense for c in cands} == {"rsw_h2l", "rsw_l2h", "swmr_h2l", "swmr_l2h", "rmr"}
    assert len({c.name for c in cands}) == len(cands)


def test_estimate_uses_only_shadow_models(exp, monkeypatch):
    seen = []
    original = Experiment.defended

    def spy(self, role, defense, **kw):
        seen.append(role)
        return original(self, role, defense, **kw)

    monkeypatch.setattr(Experiment, "defended", spy)
    c = autotune.hand_picked(exp)[0]
    r = autotune.estimate(exp, c, n_models=2)
    assert set(seen) == {"shadow0", "shadow1"} and 0 <= r["dev_acc"] <= 1
