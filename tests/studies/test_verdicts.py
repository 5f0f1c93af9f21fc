import math

import pytest

from wemem.studies import verdicts as v


@pytest.mark.parametrize(
    ("d", "r", "direction", "status"),
    [
        (0.05, 0.02, "greater", v.HOLDS),
        (-0.05, 0.02, "greater", v.FAILS),
        (0.01, 0.02, "greater", v.UNRESOLVED),
        (-0.01, 0.02, "greater", v.UNRESOLVED),
        (0.02, 0.02, "greater", v.UNRESOLVED),  # on the edge: not beyond the noise
        (-0.05, 0.02, "less", v.HOLDS),
        (0.05, 0.02, "less", v.FAILS),
        (0.05, float("nan"), "greater", v.UNRESOLVED),  # noise not measured
        (0.05, 0.0, "greater", v.UNRESOLVED),  # one seed: zero spread is not zero noise
        (float("nan"), 0.02, "greater", v.UNRESOLVED),
    ],
)
def test_verdict(d, r, direction, status):
    assert v.verdict(d, r, direction=direction) == status


def test_verdict_rejects_a_negative_resolution_and_an_unknown_direction():
    with pytest.raises(ValueError, match="resolution"):
        v.verdict(0.1, -0.01)
    with pytest.raises(ValueError, match="direction"):
        v.verdict(0.1, 0.01, direction="up")


def test_decide_records_the_figures():
    assert v.decide(0.1, 0.03, direction="less") == {
        "status": v.FAILS,
        "difference": 0.1,
        "resolution": 0.03,
        "direction": "less",
        "noise": "",
    }
    assert v.is_decision(v.decide(0.1, 0.03)) and not v.is_decision({"status": "maybe"})


def test_paired_decision_uses_the_seed_spread_or_the_sampling_se():
    # differences .10, .12, .14: mean .12, SEM = .02/sqrt(3) = .0115 -> holds
    d = v.paired_decision([0.10, 0.12, 0.14], sampling_se=1.0)
    assert d["status"] == v.HOLDS and d["difference"] == pytest.approx(0.12)
    assert d["resolution"] == pytest.approx(0.02 / math.sqrt(3))
    assert d["noise"] == "seed spread (3 seeds)"
    # one seed: the sampling SE decides (.12 < .2 -> unresolved)
    one = v.paired_decision([0.12], sampling_se=0.2)
    assert one["status"] == v.UNRESOLVED and one["resolution"] == 0.2
    assert v.paired_decision([0.12], sampling_se=0.05, direction="less")["status"] == v.FAILS


def test_standard_error_of_mean():
    # values 1, 2, 3: std (ddof 1) = 1, n = 3 -> 1/sqrt(3)
    assert v.standard_error_of_mean([1, 2, 3]) == pytest.approx(1 / math.sqrt(3))
    assert v.standard_error_of_mean([1, 2, 3, float("nan")]) == pytest.approx(1 / math.sqrt(3))
    assert math.isnan(v.standard_error_of_mean([4.0]))


def test_accuracy_and_auc_standard_errors():
    assert v.accuracy_se(0.5, 100) == pytest.approx(0.05)  # sqrt(.25/100)
    assert v.accuracy_se(0.9, 400) == pytest.approx(0.015)  # sqrt(.09/400)
    assert math.isnan(v.accuracy_se(0.5, 0))
    # two accuracies 0.5 on 200 samples: sqrt(2 * .25 / 200) = 0.05
    assert v.accuracy_difference_se(0.5, 0.5, 200) == pytest.approx(0.05)
    assert v.difference_se(0.03, 0.04) == pytest.approx(0.05)
    # Hanley-McNeil at AUC 0.5, 50 + 50: q1 = 1/3, q2 = 1/3,
    # var = (.25 + 49 (1/3 - 1/4) * 2) / 2500 = (.25 + 49/6) / 2500
    assert v.auc_se(0.5, 50, 50) == pytest.approx(math.sqrt((0.25 + 49 / 6) / 2500))
    assert math.isnan(v.auc_se(0.7, 0, 10))
    # balanced accuracy .5 on 100 + 100: .5 * sqrt(.25 * .02) = .5 * .0707 = .03536
    assert v.balanced_accuracy_se(0.5, 100, 100) == pytest.approx(0.5 * math.sqrt(0.005))


def test_share_verdict():
    # 9 of 10 true: share .9, se sqrt(.25/10) = .158; .4 > .158 -> holds
    d = v.share_decision([True] * 9 + [False])
    assert d["status"] == v.HOLDS
    assert d["share"] == pytest.approx(0.9)
    assert d["resolution"] == pytest.approx(math.sqrt(0.025))
    # 6 of 10: .1 < .158 -> unresolved; 1 of 10: -.4 -> does not hold
    assert v.share_verdict([True] * 6 + [False] * 4) == v.UNRESOLVED
    assert v.share_verdict([True] + [False] * 9) == v.FAILS
    # too few settings, and missing flags dropped
    assert v.share_verdict([True, True]) == v.UNRESOLVED
    assert v.share_decision([True, None, float("nan"), True, True])["n"] == 3


def test_verdict_text():
    assert v.verdict_text(v.HOLDS) == "holds"
    assert v.verdict_text(v.FAILS) == "does **not** hold"
    assert v.verdict_text(v.UNRESOLVED) == "is **unresolved** (within noise)"
    with pytest.raises(ValueError):
        v.verdict_text("maybe")
