"""Attack metrics on hand-worked arrays, cross-checked against scikit-learn."""

import numpy as np
import pytest
from sklearn import metrics as skm

from wemem.attacks.metrics import accuracy, balanced_accuracy, roc_auc, roc_curve, tpr_at_fpr

S_IN = np.array([0.9, 0.4])
S_OUT = np.array([0.4, 0.1])


def test_balanced_and_plain_accuracy():
    pred_in, pred_out = [True, True, False], [False, True]
    assert balanced_accuracy(pred_in, pred_out) == pytest.approx(0.5 * (2 / 3 + 1 / 2))
    assert accuracy(pred_in, pred_out) == pytest.approx(3 / 5)
    # Predicting "member" for all: BA 0.5, plain accuracy = the member share.
    assert balanced_accuracy([True] * 3, [True]) == 0.5
    assert accuracy([True] * 3, [True]) == 0.75


def test_roc_curve_hand_case():
    fpr, tpr, thr = roc_curve(S_IN, S_OUT)
    np.testing.assert_array_equal(thr, [np.inf, 0.9, 0.4, 0.1])
    np.testing.assert_array_equal(tpr, [0.0, 0.5, 1.0, 1.0])
    np.testing.assert_array_equal(fpr, [0.0, 0.0, 0.5, 1.0])


def test_roc_auc_hand_case():
    # Pairs (in, out): 0.9>0.4, 0.9>0.1, 0.4=0.4 (½), 0.4>0.1 -> 3.5 / 4.
    assert roc_auc(S_IN, S_OUT) == 0.875
    assert roc_auc([1.0], [1.0]) == 0.5
    assert roc_auc([0.0], [1.0]) == 0.0


@pytest.mark.parametrize("seed", range(20))
def test_roc_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    n_in, n_out = rng.integers(1, 60, size=2)
    if seed % 2:  # discrete scores, many ties
        s_in, s_out = rng.integers(0, 5, n_in) / 4, rng.integers(0, 5, n_out) / 4
    else:
        s_in, s_out = rng.normal(0.5, 1, n_in), rng.normal(0, 1, n_out)
    y = np.r_[np.ones(n_in), np.zeros(n_out)]
    s = np.r_[s_in, s_out]
    assert roc_auc(s_in, s_out) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    fpr, tpr, thr = roc_curve(s_in, s_out)
    sk_fpr, sk_tpr, sk_thr = skm.roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    np.testing.assert_array_equal(thr[1:], sk_thr[1:])


def test_tpr_at_fpr_hand_case():
    assert tpr_at_fpr(S_IN, S_OUT, 0.0) == 0.5
    assert tpr_at_fpr(S_IN, S_OUT, 0.49) == 0.5
    assert tpr_at_fpr(S_IN, S_OUT, 0.5) == 1.0  # FPR <= target, not <


def test_tpr_at_fpr_one_percent():
    # 100 non-members at 0..99, members at 98.5 and 50: one false positive (99) is allowed
    # at 1% FPR, which buys threshold 98.5 -> TPR 1/2; threshold 50 would cost 50 more.
    s_out = np.arange(100.0)
    s_in = np.array([98.5, 50.0])
    assert tpr_at_fpr(s_in, s_out, 0.01) == 0.5
    assert tpr_at_fpr(s_in, s_out, 0.001) == 0.0
    assert tpr_at_fpr(s_in, s_out, 0.5) == 1.0


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        roc_auc([], [1.0])
    with pytest.raises(ValueError):
        roc_auc([np.nan], [1.0])
    with pytest.raises(ValueError):
        tpr_at_fpr([1.0], [0.0], 1.5)
    with pytest.raises(ValueError):
        balanced_accuracy([], [True])
