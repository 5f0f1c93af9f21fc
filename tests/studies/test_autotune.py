from dataclasses import replace

import pandas as pd
import pytest

from wemem.experiment.replicate import Experiment
from wemem.studies import autotune, sweeps
from wemem.studies import verdicts as v


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


def _victim(auto_auc, n=400):
    rows = []
    for setting, choice, acc, auc in [
        ("Base", "base", 0.80, 0.70),
        ("auto", "automatic", 0.78, auto_auc),
        ("hand1", "hand-picked", 0.77, 0.66),
        ("hand2", "hand-picked", 0.75, 0.64),
    ]:
        for attack in ("conf", "nn"):
            rows.append(
                {"setting": setting, "choice": choice, "attack": attack, "test_acc": acc,
                 "finetune_seconds": 1.0, "paper_metric": auc, "auc": auc, "n_in": n, "n_out": n}
            )  # fmt: skip
    return pd.DataFrame(rows)


def test_claims_are_decided_against_the_sampling_noise():
    trace = pd.DataFrame({"rung": [0, 0, 1], "n_models": [2, 2, 3]})
    c = autotune.claims(trace, _victim(auto_auc=0.60))
    below = c["auto_below_base_auc"]
    se = v.difference_se(v.auc_se(0.60, 400, 400), v.auc_se(0.70, 400, 400))
    assert below["status"] == v.HOLDS and below["difference"] == pytest.approx(-0.10)
    assert below["resolution"] == pytest.approx(se) and below["direction"] == "less"
    # test accuracy .78 against the hand-picked mean .76 on 400 non-members: SE ~ .03 -> unresolved
    acc = c["auto_test_acc_ge_hand_mean"]
    assert acc["status"] == v.UNRESOLVED and acc["difference"] == pytest.approx(0.02)
    assert autotune.claims(trace, _victim(auto_auc=0.69))["auto_below_base_auc"]["status"] == (
        v.UNRESOLVED
    )
    assert "is **unresolved** (within noise)" in autotune.summary_text(c)


def test_checks_catch_a_tau_that_misses_its_share_and_skip_statistics_in_tiny():
    trace = pd.DataFrame({"advantage": [0.1, 0.2], "dev_acc": [0.7, 0.8]})
    good = pd.DataFrame({"share": [0.1], "kind": ["quantile"], "tau": [0.4], "selected": [0.099]})
    c = autotune.checks(trace, _victim(0.6), good, chance=0.1, profile="cpu")
    assert all(v_ is True for v_ in c.values())
    bad = good.assign(selected=0.3)
    assert not autotune.checks(trace, _victim(0.6), bad, chance=0.1, profile="cpu")[
        "tau_selects_its_share"
    ]
    tiny = autotune.checks(trace, _victim(0.6), good, chance=0.1, profile="tiny")
    assert tiny["base_leaks_above_chance"] == "not applicable (tiny profile)"


def test_tau_comes_from_the_runs_rule(exp):
    t = autotune.tau_table(exp, [0.1, 0.25])
    assert list(t.share) == [0.1, 0.25] and (t.kind == "quantile").all()
    assert (t.selected <= t.share + 1e-9).all() and (t.selected > t.share - 0.02).all()
    assert t.tau.iloc[0] >= t.tau.iloc[1]
    rmr = [c for c in autotune.candidates(exp, tau_shares=(0.25,)) if c.defense == "rmr"]
    assert [c.settings["tau"] for c in rmr] == pytest.approx([t.tau.iloc[1]] * len(rmr))
