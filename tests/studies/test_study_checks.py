"""Checks and decided claims of notebooks 01, 08 and 09 on hand-made tables."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from wemem.studies import attack_report, memorization, pruning_choices
from wemem.studies import verdicts as v


def _attacks(auc_dense, auc_iter, *, n=200, tpr01=0.01):
    rows = []
    for stage, aucs in (("dense", auc_dense), ("iterative", auc_iter)):
        for attack, auc in zip(("conf", "nn"), aucs, strict=True):
            rows.append(
                {"stage": stage, "attack": attack, "family": "metric", "auc": auc,
                 "balanced_accuracy": auc, "tpr_at_1fpr": 0.02, "tpr_at_01fpr": tpr01,
                 "n_in": n, "n_out": n}
            )  # fmt: skip
    return pd.DataFrame(rows)


def test_attack_checks_catch_a_falling_roc_curve_and_skip_statistics_in_tiny():
    t = _attacks((0.6, 0.6), (0.7, 0.7))
    assert attack_report.checks(t, profile="cpu") == {
        "auc_finite_metrics_in_unit_interval": True,
        "tpr_rises_with_fpr": True,
        "last_stage_leaks_above_chance": True,  # .7 - .5 against ~.026
    }
    assert not attack_report.checks(_attacks((0.6, 0.6), (0.7, 0.7), tpr01=0.05), profile="cpu")[
        "tpr_rises_with_fpr"
    ]
    chance = attack_report.checks(_attacks((0.5, 0.5), (0.5, 0.5)), profile="cpu")
    assert chance["last_stage_leaks_above_chance"] is False
    tiny = attack_report.checks(_attacks((0.5, 0.5), (0.5, 0.5)), profile="tiny")
    assert tiny["last_stage_leaks_above_chance"] == "not applicable (tiny profile)"
    nan = attack_report.checks(_attacks((0.6, np.nan), (0.7, 0.7)), profile="cpu")
    assert not nan["auc_finite_metrics_in_unit_interval"]


def test_attack_claims_decide_the_last_stage_against_the_first():
    c = attack_report.claims(_attacks((0.60, 0.62), (0.70, 0.63)))
    assert c["attacks_gaining"] == 2 and c["attacks_gaining_beyond_noise"] == 1  # .10 vs .01
    d = c["last_stage_leaks_more"]
    assert d["difference"] == pytest.approx(0.055) and d["status"] == v.HOLDS


def _pruning(values, n=400):
    rows = []
    for (defense, pruning), acc in values.items():
        for attack in ("conf", "mentr"):
            rows.append(
                {"defense_name": defense, "pruning": pruning, "attack": attack,
                 "paper_metric": acc, "test_acc": 0.8, "n_in": n, "n_out": n}
            )  # fmt: skip
    return pd.DataFrame(rows)


def test_pruning_claims_are_decided_with_the_binomial_se():
    t = _pruning(
        {
            ("Base", "iterative"): 0.66,
            ("Base", "one-shot"): 0.60,
            ("RSW", "iterative"): 0.55,
            ("RSW", "one-shot"): 0.55,
            ("RMR", "iterative"): 0.65,
            ("RMR", "one-shot"): 0.60,
        }
    )
    c = pruning_choices.pruning_claims(t)
    base = c["iterative_leaks_more_for_base"]
    se = v.difference_se(
        v.balanced_accuracy_se(0.66, 400, 400), v.balanced_accuracy_se(0.6, 400, 400)
    )
    assert base["status"] == v.HOLDS and base["resolution"] == pytest.approx(se)  # .06 vs ~.034
    assert c["below_base_iterative"]["RSW"]["status"] == v.HOLDS  # -.11
    assert c["below_base_iterative"]["RMR"]["status"] == v.UNRESOLVED  # -.01
    assert c["defenses_reduce_iterative_leakage"] == 1
    assert "1 of the 2 WeMem methods" in pruning_choices.pruning_text(c)


def _memscores(raw, score, n_filled=0):
    est = {"fz_prob": SimpleNamespace(score=np.asarray(raw, float))}
    return SimpleNamespace(score=np.asarray(score, float), estimates=est, n_filled=n_filled)


def test_memorization_checks_fail_when_models_did_not_fit_their_subsets():
    rng = np.random.default_rng(0)
    recovery = pd.DataFrame(
        [{"estimate": "used (normalized)", "k": 100, "precision_at_k": 0.6, "flip_rate": 0.1,
          "auc_flipped_vs_clean": 0.9}]
    )  # fmt: skip
    fitted = _memscores(rng.normal(0.1, 0.2, 1000), rng.random(1000))
    c = memorization.checks(fitted, recovery, agreement=0.5, profile="cpu")
    assert all(x is True for x in c.values()), c
    untrained = _memscores(rng.normal(0.0, 0.2, 1000) - 0.05, rng.random(1000))
    assert not memorization.checks(untrained, recovery, agreement=0.5, profile="cpu")[
        "models_fit_their_subsets"
    ]
    perfect = recovery.assign(precision_at_k=1.0, auc_flipped_vs_clean=1.0)  # Hanley-McNeil SE 0
    assert memorization.checks(fitted, perfect, agreement=0.5, profile="cpu")[
        "flipped_score_above_clean"
    ]
    flat = recovery.assign(precision_at_k=0.12, auc_flipped_vs_clean=0.5)
    c = memorization.checks(fitted, flat, agreement=0.01, profile="cpu")
    assert not c["flipped_labels_rank_on_top"] and not c["flipped_score_above_clean"]
    assert not c["kfold_agrees_with_fz"]  # .01 against 1/sqrt(999) ~ .032
    tiny = memorization.checks(fitted, flat, agreement=0.01, profile="tiny")
    assert tiny["kfold_agrees_with_fz"] == "not applicable (tiny profile)"
