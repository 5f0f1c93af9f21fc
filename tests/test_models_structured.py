"""Fig. 9 (L1- vs L2-structured pruning): claims on hand-worked tables, and the noise margin."""

import math

import pandas as pd
import pytest

from wemem.studies.pruning_choices import (
    approach_claims,
    approaches_text,
    attack_resolution,
    pruning_checks,
)


def test_attack_resolution_is_two_root_two_worst_case_standard_errors():
    # SE = ½·√(¼/100 + ¼/100) = ½·√0.005; resolution = 2·√2·SE = √0.01 = 0.1
    assert attack_resolution(100, 100) == pytest.approx(0.1)
    assert attack_resolution(400, 400) == pytest.approx(0.05)
    assert attack_resolution(100, 100, z=1.0) == pytest.approx(0.05)


def _table(attack: dict, test: dict, n_in=100, n_out=100) -> pd.DataFrame:
    rows = []
    for (approach, setting), values in attack.items():
        for a, v in zip(("conf", "mentr"), values, strict=True):
            rows.append(
                {"pruning_approach": approach, "setting": setting, "attack": a, "paper_metric": v,
                 "test_acc": test[approach, setting], "n_in": n_in, "n_out": n_out}
            )  # fmt: skip
    return pd.DataFrame(rows)


def test_claims_resolve_only_differences_beyond_the_margin():
    attack = {
        ("l1_structured", "Base"): (0.70, 0.72),  # mean 0.71
        ("l1_structured", "RMR"): (0.60, 0.60),
        ("l2_structured", "Base"): (0.66, 0.66),  # L2 − L1 = −0.05 < 0.1: not resolved
        ("l2_structured", "RMR"): (0.75, 0.75),  # +0.15: resolved
    }
    test = {k: 0.8 for k in attack}
    c = approach_claims(_table(attack, test))
    assert c["approaches"] == ["l1_structured", "l2_structured"]
    assert c["attack"]["Base"] == pytest.approx({"l1_structured": 0.71, "l2_structured": 0.66})
    assert c["second_minus_first"] == pytest.approx({"Base": -0.05, "RMR": 0.15})
    assert c["resolved"] == {"Base": False, "RMR": True} and c["any_difference_resolved"]
    # RMR under L1 (0.60) is below Base (0.71) by more than 0.1; under L2 (0.75) it is above
    assert c["defense_below_base_beyond_resolution"] == 1 and c["defense_approach_pairs"] == 2
    assert "exceeds it for RMR" in approaches_text(c)


def test_text_says_when_nothing_is_resolved():
    attack = {("l1_structured", "Base"): (0.6, 0.6), ("l2_structured", "Base"): (0.62, 0.62)}
    c = approach_claims(_table(attack, {k: 0.9 for k in attack}))
    assert not c["any_difference_resolved"] and math.isclose(c["resolution"], 0.1)
    assert "cannot tell the two approaches apart" in approaches_text(c)


def test_checks_cover_only_the_sections_that_ran():
    t = _table({("l1_structured", "Base"): (0.6, 0.6), ("l2_structured", "Base"): (0.6, 0.7)},
               {("l1_structured", "Base"): 0.9, ("l2_structured", "Base"): 0.9})  # fmt: skip
    t["auc"] = 0.5
    checks = pruning_checks(appr=t, approaches=["l1_structured", "l2_structured"])
    assert checks == {"every_approach": True, "metrics_in_unit_interval": True}
