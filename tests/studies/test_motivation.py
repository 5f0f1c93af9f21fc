import math

import pandas as pd
import pytest

from wemem.params import validate
from wemem.studies import motivation
from wemem.studies import verdicts as v


def _attacks(auc_by_seed_stage: dict, *, n=200, high=0.7, low=0.55) -> pd.DataFrame:
    rows = []
    for (seed, stage, rnd), auc in auc_by_seed_stage.items():
        for attack in ("conf", "entr"):
            rows.append(
                {
                    "seed": seed,
                    "stage": stage,
                    "round": rnd,
                    "attack": attack,
                    "auc": auc,
                    "balanced_accuracy": auc,
                    "accuracy": auc,
                    "tpr_at_1fpr": 0.02,
                    "n_in": n,
                    "n_out": n,
                    "auc_high_mem": high + (0.05 if stage == "iterative" else 0.0),
                    "auc_low_mem": low,
                    "n_high_mem_members": 50,
                    "n_high_mem_nonmembers": 50,
                    "n_low_mem_members": 50,
                    "n_low_mem_nonmembers": 50,
                }
            )
    return pd.DataFrame(rows)


def test_claims_use_the_seed_spread_with_several_seeds():
    aucs = {}
    for seed, bump in enumerate((0.04, 0.05, 0.06)):
        aucs |= {
            (seed, "dense", 0): 0.60,
            (seed, "one-shot", 0): 0.60 + bump - 0.05,  # one-shot: gains -.01, 0, .01 -> mean 0
            (seed, "iterative", 0): 0.60,
            (seed, "iterative", 1): 0.60 + bump,
        }
    c = motivation.claims(_attacks(aucs))
    dense = c["iterative_gt_dense"]
    # per-seed differences .04, .05, .06: mean .05, SEM .01/sqrt(3)
    assert dense["status"] == v.HOLDS and dense["difference"] == pytest.approx(0.05)
    assert dense["resolution"] == pytest.approx(0.01 / math.sqrt(3))
    assert dense["noise"] == "seed spread (3 seeds)"
    # iterative - one-shot = .05 in every seed: a zero spread is not zero noise -> unresolved
    assert c["iterative_gt_one_shot"]["status"] == v.UNRESOLVED


def test_claims_use_the_auc_standard_error_with_one_seed():
    aucs = {(0, "dense", 0): 0.60, (0, "one-shot", 0): 0.61, (0, "iterative", 0): 0.70}
    c = motivation.claims(_attacks(aucs, n=200))
    se = v.difference_se(v.auc_se(0.70, 200, 200), v.auc_se(0.60, 200, 200))
    assert c["iterative_gt_dense"]["resolution"] == pytest.approx(se)
    assert c["iterative_gt_dense"]["status"] == v.HOLDS  # .10 against ~.053
    assert c["iterative_gt_one_shot"]["status"] == v.HOLDS  # .09
    small = motivation.claims(_attacks(aucs, n=20))  # same AUCs on 20 + 20 samples: noise
    assert small["iterative_gt_dense"]["status"] == v.UNRESOLVED


def test_scenario_claims_decide_reuse_and_memorability():
    aucs = {(0, "dense", 0): 0.60, (0, "iterative", 0): 0.65}
    attacks = _attacks(aucs)
    sweep = pd.DataFrame(
        {
            "max_epochs_per_round": [1, 1, 21, 21],
            "auc": [0.60, 0.60, 0.62, 0.62],
            "n_in": 200,
            "n_out": 200,
        }
    )
    c = motivation.scenario_claims(sweep, attacks)
    assert c["reuse_increases_leakage"]["status"] == v.UNRESOLVED  # .02 against ~.05
    assert c["reuse_auc_by_epochs"] == {1: pytest.approx(0.60), 21: pytest.approx(0.62)}
    # gap .20 after iterative pruning with 50 + 50 samples per group: SE ~ .08 -> holds
    assert c["high_mem_leaks_more"]["status"] == v.HOLDS
    assert c["high_mem_leaks_more"]["difference"] == pytest.approx(0.20)
    assert c["gap_grows_with_pruning"]["status"] == v.UNRESOLVED  # .05 against ~.16
    text = motivation.scenario_text(c)
    assert "is **unresolved** (within noise)" in text and "Δ = +0.200" in text


def test_leakage_check_is_not_applicable_in_the_tiny_profile():
    aucs = {(0, "dense", 0): 0.5, (0, "one-shot", 0): 0.5, (0, "iterative", 0): 0.5}
    res = {
        "attacks": _attacks(aucs),
        "models": pd.DataFrame({"seed": [0], "test_acc": [0.5], "chance": [0.1]}),
        "layers": pd.DataFrame({"sparsity": [0.6], "target": [0.6]}),
    }
    for profile, want in (("tiny", "not applicable (tiny profile)"), ("cpu", False)):
        s = validate({"profile": profile, "pruning_rounds": 1})
        assert motivation.checks(res, s)["iterative_leaks_above_chance"] == want
