"""End-to-end metric attacks on synthetic posteriors (no trained model needed)."""

import numpy as np
import pandas as pd
import pytest
import torch

from wemem.attacks import METRIC_ATTACKS, metric_attack, run_metric_attacks
from wemem.attacks.signals import conf
from wemem.attacks.threshold import best_threshold
from wemem.errors import ParamsError

C = 4


def posteriors(rng, n, a, b):
    """(probs (n, C), labels (n,)): p_y ~ Beta(a, b), the rest spread at random over the others."""
    labels = rng.integers(0, C, n)
    p_y = rng.beta(a, b, n)
    rest = rng.dirichlet(np.ones(C - 1), n) * (1 - p_y)[:, None]
    probs = np.empty((n, C))
    probs[np.arange(n), labels] = p_y
    others = np.arange(C)[None, :] != labels[:, None]
    probs[others] = rest.ravel()
    return probs, labels


def dataset(seed, member_ab, nonmember_ab, n=2000):
    rng = np.random.default_rng(seed)
    return [posteriors(rng, n, *ab) for ab in (member_ab, nonmember_ab) * 2]


def test_posteriors_are_distributions():
    probs, labels = posteriors(np.random.default_rng(0), 5, 2, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)


@pytest.mark.parametrize("name", [*METRIC_ATTACKS, "hconf_official"])
def test_planted_signal_is_found(name):
    res = metric_attack(name, *dataset(0, (8, 2), (3, 3)))
    assert res["balanced_accuracy"] > 0.7
    assert res["auc"] > 0.75
    assert res["shadow_balanced_accuracy"] > 0.7
    assert len(res["thresholds"]) == (1 if name.startswith("hconf") else C)
    # The calibrated score's zero is the attack's own operating point.
    assert res["tpr"] == np.mean(res["scores_in"] >= 0)
    assert res["tnr"] == np.mean(res["scores_out"] < 0)
    assert res["balanced_accuracy"] == pytest.approx(0.5 * (res["tpr"] + res["tnr"]))
    assert 0 <= res["tpr_at_01fpr"] <= res["tpr_at_1fpr"] <= 1


@pytest.mark.parametrize("name", METRIC_ATTACKS)
def test_no_signal_stays_at_chance(name):
    res = metric_attack(name, *dataset(1, (4, 4), (4, 4), n=4000))
    assert abs(res["balanced_accuracy"] - 0.5) < 0.05
    assert abs(res["auc"] - 0.5) < 0.05


def test_conf_matches_official_per_class_loop():
    data = dataset(2, (5, 2), (3, 3), n=300)
    (s_si, s_so, s_ti, s_to) = (conf(*d) for d in data)
    (y_si, y_so, y_ti, y_to) = (d[1] for d in data)
    tp = tn = 0
    for c in range(C):  # the official `_mem_inf_thre`: per-class thresholds, pooled counts
        t, _ = best_threshold(s_si[y_si == c], s_so[y_so == c])
        tp += np.sum(s_ti[y_ti == c] >= t)
        tn += np.sum(s_to[y_to == c] < t)
    expected = 0.5 * (tp / len(y_ti) + tn / len(y_to))
    assert metric_attack("conf", *data)["balanced_accuracy"] == expected


def test_hconf_and_hconf_official_differ():
    # Members: correct, p_y = max = 0.6. Non-members: wrong, p_y = 0.1 but max = 0.9.
    member = (np.array([[0.6, 0.3, 0.1]] * 4), np.zeros(4, dtype=int))
    nonmember = (np.array([[0.1, 0.9, 0.0]] * 4), np.zeros(4, dtype=int))
    official = metric_attack("hconf_official", member, nonmember, member, nonmember)
    top1 = metric_attack("hconf", member, nonmember, member, nonmember)
    assert official["balanced_accuracy"] == 1.0
    assert top1["balanced_accuracy"] == 0.5
    assert official["thresholds"] == [0.6]


def test_per_class_fallback_to_global():
    # Class 1 has shadow members but no shadow non-members.
    s_in = (np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]]), np.array([0, 0, 1]))
    s_out = (np.array([[0.4, 0.6], [0.5, 0.5]]), np.array([0, 0]))
    res = metric_attack("conf", s_in, s_out, s_in, s_out)
    global_t, _ = best_threshold([0.9, 0.8, 0.7], [0.4, 0.5])
    assert res["thresholds"] == [0.8, global_t]


def test_torch_tensors_accepted():
    data = dataset(3, (8, 2), (3, 3), n=200)
    as_torch = [(torch.tensor(p, dtype=torch.float32), torch.tensor(y)) for p, y in data]
    res_np = metric_attack("mentr", *[(p.astype(np.float32), y) for p, y in data])
    res_torch = metric_attack("mentr", *as_torch)
    assert res_np["balanced_accuracy"] == res_torch["balanced_accuracy"]


def test_bad_name_raises_params_error():
    data = dataset(4, (8, 2), (3, 3), n=10)
    with pytest.raises(ParamsError, match=r"'top1'.*conf, entr, mentr, hconf"):
        metric_attack("top1", *data)
    with pytest.raises(ParamsError, match="'Conf'"):
        run_metric_attacks(["conf", "Conf"], *data)


def test_mismatched_class_counts_raise():
    data = dataset(5, (8, 2), (3, 3), n=10)
    data[3] = (np.full((10, 3), 1 / 3), np.zeros(10, dtype=int))
    with pytest.raises(ValueError, match="number of classes"):
        metric_attack("conf", *data)


def test_run_metric_attacks_table():
    names = [*METRIC_ATTACKS, "hconf_official"]
    table = run_metric_attacks(names, *dataset(6, (8, 2), (3, 3), n=300))
    assert isinstance(table, pd.DataFrame)
    assert list(table["name"]) == names
    assert "thresholds" not in table and "scores_in" not in table
    numeric = table.drop(columns=["name", "threshold_scope"])
    assert all(pd.api.types.is_numeric_dtype(dtype) for dtype in numeric.dtypes)
