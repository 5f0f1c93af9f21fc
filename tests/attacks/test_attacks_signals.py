"""Signals of the metric attacks on hand-worked posteriors."""

import numpy as np
import pytest

from wemem.attacks.signals import LOG_FLOOR, SIGNALS, conf, entr, hconf, hconf_official, mentr

# Row 0 is correct (y = 0 is the arg-max); row 1 is wrong (y = 2, the model says class 1).
PROBS = np.array([[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]])
LABELS = np.array([0, 2])


def test_conf_is_true_class_probability():
    np.testing.assert_allclose(conf(PROBS, LABELS), [0.5, 0.1])


def test_entr_is_negative_entropy():
    # Row 0: 0.5 ln 0.5 + 2 · 0.25 ln 0.25 = -0.5 ln 2 - ln 2 = -1.5 ln 2.
    row1 = 2 * 0.1 * np.log(0.1) + 0.8 * np.log(0.8)
    np.testing.assert_allclose(entr(PROBS, LABELS), [-1.5 * np.log(2), row1])


def test_mentr_is_negative_modified_entropy():
    # -Mentr = (1 - p_y) ln p_y + Σ_{c≠y} p_c ln(1 - p_c).
    row0 = 0.5 * np.log(0.5) + 2 * 0.25 * np.log(0.75)  # = 0.5 ln 0.375
    row1 = 0.9 * np.log(0.1) + 0.1 * np.log(0.9) + 0.8 * np.log(0.2)
    np.testing.assert_allclose(mentr(PROBS, LABELS), [row0, row1])
    np.testing.assert_allclose(row0, 0.5 * np.log(0.375))


def test_hconf_is_top1_and_official_is_true_class():
    np.testing.assert_allclose(hconf(PROBS, LABELS), [0.5, 0.8])
    np.testing.assert_allclose(hconf_official(PROBS, LABELS), [0.5, 0.1])


def test_one_hot_rows_use_the_log_floor():
    probs = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    labels = np.array([0, 1])
    # 0 · log(floor) = 0, so a one-hot posterior has zero entropy.
    np.testing.assert_array_equal(entr(probs, labels), [0.0, 0.0])
    # Correct and certain: Mentr = 0. Certain and wrong: (1 - 0) ln(floor) + 1 · ln(floor).
    np.testing.assert_allclose(mentr(probs, labels), [0.0, 2 * np.log(LOG_FLOOR)])


def test_members_score_higher_for_confident_correct_predictions():
    confident = np.array([[0.98, 0.01, 0.01]])
    unsure = np.array([[0.4, 0.3, 0.3]])
    y = np.array([0])
    for name, fn in SIGNALS.items():
        assert fn(confident, y)[0] > fn(unsure, y)[0], name


@pytest.mark.parametrize(
    ("probs", "labels"),
    [
        (np.ones(3) / 3, np.array([0])),  # not 2-D
        (PROBS, np.array([0])),  # wrong length
        (PROBS, np.array([0, 3])),  # label out of range
        (PROBS, np.array([0.0, 1.0])),  # float labels
    ],
)
def test_bad_inputs_raise(probs, labels):
    with pytest.raises(ValueError):
        conf(probs, labels)
