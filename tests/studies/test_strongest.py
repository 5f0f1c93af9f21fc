"""The strongest attacks (issue 15): bootstrap intervals, the four attacks on a tiny trained run
(Base and a WeMem defense), the claim's verdicts and the mem-score decile view."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wemem import params
from wemem.attacks.intervals import metric_intervals, metric_name
from wemem.defenses.config import BASE, DefenseConfig
from wemem.errors import ParamsError
from wemem.experiment.replicate import Experiment
from wemem.studies import strongest, strongest_report
from wemem.studies.strongest import Scores
from wemem.studies.verdicts import FAILS, HOLDS, UNRESOLVED

RSW = DefenseConfig("rsw_l2h", {"width": 20, "step": 5}, {"setting": "RSW w=20", "method": "RSW"})


# ---- intervals --------------------------------------------------------------------------------
def test_intervals_cover_the_value_and_shrink_with_more_samples():
    rng = np.random.default_rng(0)
    small = metric_intervals(rng.normal(1, 1, 200), rng.normal(0, 1, 200), n_boot=200)
    large = metric_intervals(rng.normal(1, 1, 5000), rng.normal(0, 1, 5000), n_boot=100)
    for m in (small, large):
        for v in m.values():
            assert v["lo"] <= v["value"] <= v["hi"]
    assert large["auc"]["se"] < small["auc"]["se"] / 2  # ~ 1/sqrt(n): 5x fewer -> ~2.2x wider
    assert abs(large["auc"]["value"] - 0.760) < 0.02  # Phi(1/sqrt 2)
    assert small[metric_name(0.001)]["resolvable"] is False  # 200 non-members cannot say 0.1 %
    assert large[metric_name(0.001)]["resolvable"] is True


def test_interval_values_are_the_metrics_functions():
    from wemem.attacks.metrics import roc_auc, tpr_at_fpr

    rng = np.random.default_rng(3)
    s_in, s_out = np.round(rng.normal(0.5, 1, 700), 1), np.round(rng.normal(0, 1, 900), 1)  # ties
    m = metric_intervals(s_in, s_out, fprs=(0.001, 0.01, 0.1), n_boot=20)
    assert m["auc"]["value"] == roc_auc(s_in, s_out)
    for f in (0.001, 0.01, 0.1):
        assert m[metric_name(f)]["value"] == tpr_at_fpr(s_in, s_out, f)


@pytest.mark.parametrize("kw", [{"n_boot": 5}, {"level": 1.0}, {"fprs": (0.0,)}])
def test_intervals_refuse_bad_parameters(kw):
    with pytest.raises(ParamsError):
        metric_intervals([1.0, 2.0], [0.0, 1.0], **kw)


# ---- claims and deciles on constructed scores ---------------------------------------------------
def _scores(method: str, shift: float, *, n=3000, seed=0, attack="lira_online") -> Scores:
    rng = np.random.default_rng(seed)
    rows_in = np.arange(n)
    s_in = rng.normal(0, 1, n) + shift * (rows_in >= n // 2)  # only the upper half leaks
    return Scores(method, method, attack, s_in, rng.normal(0, 1, n), rows_in, np.arange(n, 2 * n))


def test_claim_holds_fails_or_is_unresolved_by_the_noise():
    def table(shifts):
        return strongest_report.strongest_table(
            [_scores(m, s, seed=i) for i, (m, s) in enumerate(shifts.items())], n_boot=100
        )

    lower = strongest_report.claims(table({"Base": 3.0, "RSW": 0.5, "RMR": 0.5, "SWMR": 0.0}))
    assert lower["status"] == HOLDS and lower["strongest_attack"] == "LiRA (online)"
    higher = strongest_report.claims(table({"Base": 0.5, "RSW": 3.0, "RMR": 0.5, "SWMR": 0.5}))
    assert higher["status"] == FAILS and higher["by_method"]["RSW"]["status"] == FAILS
    same = strongest_report.claims(table({"Base": 1.0, "RSW": 1.0, "RMR": 1.0, "SWMR": 1.0}))
    assert same["status"] != HOLDS  # equal leakage never counts as lower
    assert strongest_report.claims(table({"Base": 1.0}))["status"] == UNRESOLVED


def test_decile_view_finds_where_the_leak_is():
    mem = np.linspace(0, 1, 3000)  # mem-score rises with the row: the leaking half is the top
    d = strongest_report.decile_table([_scores("Base", 4.0)], mem, attack="lira_online")
    assert list(d.decile) == list(range(1, 11)) and d.n.sum() == 3000
    assert d[d.decile >= 6].tpr.min() > 0.5 > 0.1 > d[d.decile <= 5].tpr.max()


# ---- the four attacks on a tiny trained run -----------------------------------------------------
@pytest.fixture(scope="module")
def exp(tmp_path_factory, tiny_values):
    cache = tmp_path_factory.mktemp("strongest")
    s = {
        **tiny_values,
        "cache_dir": str(cache),
        "memscore_models": 4,
        "memscore_epochs": 2,
        "n_shadows": 2,
    }  # a is fitted on two shadows
    return Experiment(params.validate(s), seed=0)


def test_every_attack_scores_every_target_of_base_and_a_wemem_defense(exp):
    scores = [*strongest.config_scores(exp, BASE, n_refs=4),
              *strongest.config_scores(exp, RSW, n_refs=4)]  # fmt: skip
    assert [s.attack for s in scores] == list(strongest.ATTACKS) * 2
    v = exp.split("victim")
    for s in scores:
        assert np.isfinite(s.scores_in).all() and np.isfinite(s.scores_out).all()
        assert set(s.rows_in) == set(v.train)  # members are the victim's members, every attack
        if s.attack.endswith("offline"):
            assert set(s.rows_out) == set(v.test)
        else:  # the rest of P
            assert len(s.rows_in) + len(s.rows_out) == exp.pool.n_train
    assert 0.0 <= scores[0].extra["a"] <= 1.0 and scores[0].extra["a_fitted"]
    table = strongest_report.strongest_table(scores, n_boot=50)
    assert table.shape[0] == 8 and table.auc.between(0, 1).all()
    assert (
        table[table.method == "RSW"].auc.values != table[table.method == "Base"].auc.values
    ).any()
    c = strongest_report.claims(table)
    assert c["status"] in (HOLDS, FAILS, UNRESOLVED) and set(c["by_method"]) == {"RSW"}
    mem = exp.memscores().score
    d = strongest_report.decile_table(scores, mem, attack="lira_online")
    assert set(d.method) == {"Base", "RSW"} and isinstance(d, pd.DataFrame)


def test_base_stage_scores_for_notebook_08(exp):
    scores = strongest.stage_scores(exp, "dense", n_refs=4)
    assert [s.attack for s in scores] == list(strongest.ATTACKS)
    assert all(s.setting == "dense" for s in scores)
