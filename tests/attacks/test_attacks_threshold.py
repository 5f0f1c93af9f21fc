"""Threshold calibration: hand cases and equality of the sort-based and exhaustive scans."""

import numpy as np
import pytest

from wemem.attacks.threshold import (
    best_threshold,
    exhaustive_threshold,
    per_class_thresholds,
    predict_members,
)


def official_scan(tr_values, te_values):
    """Literal port of the official `_thre_setting` loop, returning (threshold, BA)."""
    thre, max_acc = 0, 0
    for value in np.concatenate((tr_values, te_values)):
        tr_ratio = np.sum(tr_values >= value) / (len(tr_values) + 0.0)
        te_ratio = np.sum(te_values < value) / (len(te_values) + 0.0)
        acc = 0.5 * (tr_ratio + te_ratio)
        if acc > max_acc:
            thre, max_acc = value, acc
    return float(thre), float(max_acc)


def test_hand_case():
    # Candidates 3, 1, 2, 0, 2 give BA 2/3, 3/4, 7/12, 1/2, 7/12.
    s_in, s_out = np.array([3.0, 1.0, 2.0]), np.array([0.0, 2.0])
    for fn in (best_threshold, exhaustive_threshold, official_scan):
        t, ba = fn(s_in, s_out)
        assert t == 1.0
        assert ba == pytest.approx(0.75)


def test_tie_goes_to_first_candidate_in_concatenated_order():
    # t = 2 and t = 5 both reach BA 3/4; the one met first in concat(in, out) wins.
    assert best_threshold([2.0, 5.0], [1.0, 4.0]) == (2.0, 0.75)
    assert best_threshold([5.0, 2.0], [1.0, 4.0]) == (5.0, 0.75)
    # Candidates 3, 1, 0, 2 give BA 3/4, 3/4, 1/2, 1/2: the larger value wins by coming first.
    assert best_threshold([3.0, 1.0], [0.0, 2.0]) == (3.0, 0.75)
    assert exhaustive_threshold([3.0, 1.0], [0.0, 2.0]) == (3.0, 0.75)


def _random_case(rng, kind):
    n_in, n_out = rng.integers(1, 40, size=2)
    if kind == "discrete":  # heavy ties
        return rng.integers(0, 4, n_in).astype(float), rng.integers(0, 4, n_out).astype(float)
    if kind == "constant":
        return np.full(n_in, 0.5), np.full(n_out, 0.5)
    if kind == "inf":
        values = np.array([-np.inf, 0.0, -0.0, 1.0, np.inf])
        return rng.choice(values, n_in), rng.choice(values, n_out)
    if kind == "fractions":  # BA ties that float rounding could break differently
        return rng.integers(0, 7, n_in) / 7, rng.integers(0, 7, n_out) / 7
    return rng.normal(0.3, 1.0, n_in), rng.normal(0.0, 1.0, n_out)


@pytest.mark.parametrize(
    ("kind", "seed"),
    [("discrete", 0), ("constant", 1), ("inf", 2), ("fractions", 3), ("continuous", 4)],
)
def test_sort_based_equals_exhaustive_and_official(kind, seed):
    rng = np.random.default_rng(seed)
    for _ in range(150):
        s_in, s_out = _random_case(rng, kind)
        fast = best_threshold(s_in, s_out)
        assert fast == exhaustive_threshold(s_in, s_out, chunk_elems=37)
        assert fast == official_scan(s_in, s_out)


def test_float32_input_gives_the_same_threshold():
    rng = np.random.default_rng(0)
    s_in, s_out = rng.random(50).astype(np.float32), rng.random(60).astype(np.float32)
    t, _ = best_threshold(s_in, s_out)
    assert t == official_scan(s_in, s_out)[0]


@pytest.mark.parametrize(
    ("s_in", "s_out"),
    [([], [1.0]), ([1.0], []), ([np.nan, 1.0], [0.0]), ([[1.0]], [0.0])],
)
def test_bad_scores_raise(s_in, s_out):
    with pytest.raises(ValueError):
        best_threshold(s_in, s_out)
    with pytest.raises(ValueError):
        exhaustive_threshold(s_in, s_out)


def test_per_class_thresholds_and_fallback():
    # Class 0: in [5, 6], out [1, 2] -> t = 5. Class 1: in [0.5], out [0.2, 0.9] -> t = 0.5.
    # Class 2: members only -> global threshold. Class 3: absent -> global threshold.
    s_in = np.array([5.0, 0.5, 6.0, 3.0])
    y_in = np.array([0, 1, 0, 2])
    s_out = np.array([1.0, 0.2, 2.0, 0.9])
    y_out = np.array([0, 1, 0, 1])
    global_t, _ = best_threshold(s_in, s_out)
    t = per_class_thresholds(s_in, y_in, s_out, y_out, num_classes=4)
    np.testing.assert_array_equal(t, [5.0, 0.5, global_t, global_t])
    assert global_t == 3.0


def test_per_class_matches_class_subsets_including_tie_order():
    rng = np.random.default_rng(1)
    s_in, s_out = rng.integers(0, 3, 200).astype(float), rng.integers(0, 3, 150).astype(float)
    y_in, y_out = rng.integers(0, 5, 200), rng.integers(0, 5, 150)
    t = per_class_thresholds(s_in, y_in, s_out, y_out, num_classes=5)
    for c in range(5):
        assert t[c] == official_scan(s_in[y_in == c], s_out[y_out == c])[0]


def test_per_class_rejects_bad_labels():
    with pytest.raises(ValueError):
        per_class_thresholds([1.0], [3], [0.0], [0], num_classes=3)


def test_predict_members():
    np.testing.assert_array_equal(predict_members([1.0, 2.0], 2.0), [False, True])
    np.testing.assert_array_equal(
        predict_members([1.0, 1.0], [1.0, 2.0], labels=[0, 1]), [True, False]
    )
    with pytest.raises(ValueError):
        predict_members([1.0], [1.0, 2.0])
