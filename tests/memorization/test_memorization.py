"""Mem-score estimators, released files, scale and τ on hand-worked arrays."""

import numpy as np
import pandas as pd
import pytest

from wemem.errors import DataFormatError, ParamsError
from wemem.memorization import agreement, estimators, released, tau

# 3 models × 4 samples. Sample 0: in models 0, 1, out of 2. Sample 1: in every model (never out).
# Sample 2: in no model (never in). Sample 3: in model 0 only.
INCLUDED = np.array(
    [
        [1, 1, 0, 1],
        [1, 1, 0, 0],
        [0, 1, 0, 0],
    ],
    dtype=bool,
)
CORRECT = np.array(
    [
        [1, 1, 0, 1],
        [1, 0, 1, 0],
        [0, 1, 1, 1],
    ]
)


def test_estimate_hand_case_with_never_in_and_never_out():
    score = estimators.estimate(CORRECT, INCLUDED)
    # Sample 0: in {1, 1} -> 1, out {0} -> 0. Sample 3: in {1} -> 1, out {0, 1} -> 0.5.
    np.testing.assert_array_equal(score, [1.0, np.nan, np.nan, 0.5])
    assert score.dtype == np.float64


def test_estimate_probability_case():
    prob = np.array([[0.9, 0.2], [0.7, 0.4], [0.2, 0.6], [0.4, 0.8]])
    included = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=bool)
    # Sample 0: 0.8 − 0.3; sample 1: 0.7 − 0.3.
    np.testing.assert_allclose(estimators.estimate(prob, included), [0.5, 0.4])
    # 0/1 integers are accepted as the mask too.
    np.testing.assert_allclose(estimators.estimate(prob, included.astype(int)), [0.5, 0.4])


def test_stats_counts_and_stderr_by_hand():
    prob = np.array([[0.9], [0.7], [0.8], [0.2], [0.4]])
    included = np.array([[1], [1], [1], [0], [0]], dtype=bool)
    r = estimators.estimate_with_stats(prob, included, method="fz_prob")
    # in: mean 0.8, var (0.01 + 0.01 + 0) / 2 = 0.01; out: mean 0.3, var (0.01 + 0.01) / 1 = 0.02.
    np.testing.assert_allclose(r.score, [0.5])
    np.testing.assert_allclose(r.stderr, [np.sqrt(0.01 / 3 + 0.02 / 2)])
    assert r.n_in.tolist() == [3] and r.n_out.tolist() == [2] and r.method == "fz_prob"
    # Fewer than two models on either side -> stderr NaN.
    r = estimators.estimate_with_stats(CORRECT, INCLUDED)
    assert np.isnan(r.stderr).all()
    assert r.n_in.tolist() == [2, 3, 0, 1] and r.n_out.tolist() == [1, 0, 3, 2]


def test_fz_scores_returns_both_variants():
    prob = np.where(CORRECT == 1, 0.9, 0.1)
    out = estimators.fz_scores(CORRECT, prob, INCLUDED)
    assert set(out) == {"fz_correct", "fz_prob"}
    np.testing.assert_allclose(out["fz_prob"].score, [0.8, np.nan, np.nan, 0.4])
    with pytest.raises(ParamsError, match="correct"):
        estimators.fz_scores(prob, prob, INCLUDED)


@pytest.mark.parametrize(
    ("correct", "included", "match"),
    [
        (CORRECT[0], INCLUDED, "correct"),
        (CORRECT, INCLUDED[:2], "included"),
        (CORRECT, INCLUDED.astype(float), "included"),
        (CORRECT * 2, INCLUDED, "correct"),
        (np.full((3, 4), "a"), INCLUDED, "correct"),
    ],
)
def test_estimate_validates_arguments(correct, included, match):
    with pytest.raises(ParamsError, match=match):
        estimators.estimate(correct, included)
    with pytest.raises(ParamsError, match="method"):
        estimators.estimate_with_stats(CORRECT, INCLUDED, method="lira")


def test_kfold_scores_hand_case_and_equivalence():
    prob = np.array([[0.9, 0.3, 0.5], [0.1, 0.8, 0.5], [0.2, 0.1, 0.7]])
    fold = np.array([0, 1, 2])
    r = estimators.kfold_scores(prob, fold)
    np.testing.assert_allclose(r.score, [0.9 - 0.15, 0.8 - 0.2, 0.7 - 0.5])
    assert r.method == "kfold" and r.n_in.tolist() == [1, 1, 1] and r.n_out.tolist() == [2, 2, 2]

    rng = np.random.default_rng(0)
    k, n = 5, 200
    prob = rng.random((k, n))
    fold = estimators.kfold_assignment(n, k=k, seed=1)
    direct = prob[fold, np.arange(n)] - (prob.sum(axis=0) - prob[fold, np.arange(n)]) / (k - 1)
    np.testing.assert_allclose(estimators.kfold_scores(prob, fold).score, direct)
    included = fold[None, :] == np.arange(k)[:, None]
    np.testing.assert_array_equal(
        estimators.kfold_scores(prob, fold).score, estimators.estimate(prob, included)
    )
    with pytest.raises(ParamsError, match="fold"):
        estimators.kfold_scores(prob, np.full(n, k))


def test_kfold_assignment_balanced_stratified_and_seeded():
    labels = np.repeat([0, 1, 2], [10, 7, 4])
    fold = estimators.kfold_assignment(21, k=4, seed=3, labels=labels)
    assert np.ptp(np.bincount(fold, minlength=4)) <= 1
    for c in range(3):
        assert np.ptp(np.bincount(fold[labels == c], minlength=4)) <= 1
    np.testing.assert_array_equal(fold, estimators.kfold_assignment(21, k=4, seed=3, labels=labels))
    assert not np.array_equal(fold, estimators.kfold_assignment(21, k=4, seed=4, labels=labels))
    with pytest.raises(ParamsError, match="k"):
        estimators.kfold_assignment(3, k=4, seed=0)


def test_subset_masks_size_determinism_and_balance():
    a = estimators.subset_masks(50, k=6, ratio=0.7, seed=7)
    assert a.shape == (6, 50) and a.dtype == np.bool_
    assert (a.sum(axis=1) == 35).all()
    np.testing.assert_array_equal(a, estimators.subset_masks(50, k=6, ratio=0.7, seed=7))
    assert not np.array_equal(a, estimators.subset_masks(50, k=6, ratio=0.7, seed=8))
    b = estimators.subset_masks(50, k=7, ratio=0.3, seed=7, balanced=True)
    assert (b.sum(axis=1) == 15).all()
    counts = b.sum(axis=0)  # 7 · 15 / 50 = 2.1 -> every count 2 or 3
    assert set(counts.tolist()) <= {2, 3}
    assert estimators.subset_masks(5, k=1, ratio=0.5, seed=0).sum() == 3  # half rounds up
    with pytest.raises(ParamsError, match="ratio"):
        estimators.subset_masks(10, k=2, ratio=1.0, seed=0)


def test_simulation_memorized_samples_rank_on_top():
    n, k = 200, 16
    memorized = np.zeros(n, dtype=bool)
    memorized[np.random.default_rng(0).choice(n, 20, replace=False)] = True
    included = estimators.subset_masks(n, k=k, ratio=0.5, seed=1, balanced=True)
    correct = np.where(memorized[None, :], included, True).astype(int)
    score = estimators.estimate(correct, included)
    np.testing.assert_array_equal(score, memorized.astype(float))
    assert agreement.precision_at_k(score, memorized, 20) == 1.0
    norm = tau.normalize_minmax(score)
    assert tau.fraction_selected(norm, tau.calibrate_tau(score, fraction=0.1)) == 0.1


def test_released_round_trip_and_format(tmp_path):
    path = tmp_path / "memscore_cifar10_resnet18.csv"
    path.write_text(",0\n0,0.25\n1,1.0\n2,0.0\n3,0.123456789\n")
    scores = released.load_released(path, n=4)
    np.testing.assert_array_equal(scores, [0.25, 1.0, 0.0, 0.123456789])
    assert pd.read_csv(path, index_col=0).columns.tolist() == ["0"]

    out = released.save_released(tmp_path / "sub" / "out.csv", scores / 3)
    assert out.read_text().splitlines()[0] == ",0"
    assert out.read_text().splitlines()[1].startswith("0,")
    np.testing.assert_array_equal(released.load_released(out, n=4), scores / 3)
    assert [p.name for p in out.parent.iterdir()] == ["out.csv"]  # no temp file left
    with pytest.raises(ParamsError, match="NaN"):
        released.save_released(out, [0.1, np.nan])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (",0\n0,0.1\n1,0.2\n2,0.3\n", r"expected 4 rows.*found 3"),
        (",0\n0,0.1\n2,0.2\n1,0.3\n3,0.4\n", r"row 1 has index 2"),
        (",0\n0,0.1\n1,0.2\n1,0.3\n3,0.4\n", r"1 missing, 1 duplicated"),
        (",0\n0,0.1\n1,x\n2,0.3\n3,0.4\n", r"row 1"),
        (",0,1\n0,0.1,1\n1,0.2,1\n2,0.3,1\n3,0.4,1\n", "2 columns"),
    ],
)
def test_released_mismatches_raise(tmp_path, text, match):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataFormatError, match=match) as info:
        released.load_released(path, n=4)
    assert str(path) in str(info.value)


def test_released_filename_official_names():
    assert released.released_filename("cinic10", "densenet121") == "memscore_cinic_densenet121.csv"
    assert released.released_filename("location30", "fc") == "memscore_location_columnfc.csv"
    assert released.released_filename("cifar100", "vgg16bn") == "memscore_cifar100_vgg16bn.csv"
    with pytest.raises(ParamsError, match="dataset"):
        released.released_filename("mnist", "fc")


def test_paper_tau_tables_are_consistent():
    assert len(tau.PAPER_TAU) == 10 and len(tau.PAPER_TAU_BY_DATASET) == 12
    for key, (t, fraction) in tau.PAPER_TAU.items():
        assert tau.PAPER_TAU_BY_DATASET[key] == t and 0 < fraction < 1
        released.released_filename(*key)
    assert tau.PAPER_TAU_BY_DATASET[("purchase100", "fc")] == 0.75
    assert tau.PAPER_TAU[("cifar10", "resnet18")] == (0.5, 0.176)


def test_normalize_minmax_properties():
    rng = np.random.default_rng(0)
    s = rng.normal(size=100) * 7 + 3
    s[[5, 17]] = np.nan
    z = tau.normalize_minmax(s)
    assert np.nanmin(z) == 0.0 and np.nanmax(z) == 1.0
    assert np.isnan(z[[5, 17]]).all()
    keep = ~np.isnan(s)
    assert agreement.spearman(s[keep], z[keep]) == pytest.approx(1.0)  # order preserved
    np.testing.assert_array_equal(tau.normalize_minmax(z), z)  # idempotent
    np.testing.assert_array_equal(tau.normalize_minmax([2.0, np.nan, 2.0]), [0.0, np.nan, 0.0])
    assert np.isnan(tau.normalize_minmax([np.nan, np.nan])).all()


def test_threshold_for_fraction_round_trip_random():
    rng = np.random.default_rng(1)
    s = rng.random(1000)
    s[:10] = np.nan  # 990 defined scores
    for fraction in [0.0, 0.05, 0.176, 0.5, 0.999, 1.0]:
        t = tau.threshold_for_fraction(s, fraction)
        assert tau.fraction_selected(s, t) == np.floor(fraction * 990) / 990
    assert tau.threshold_for_fraction(s, 0.0) == np.inf
    assert tau.threshold_for_fraction(s, 1.0) == np.nanmin(s)


def test_threshold_for_fraction_with_ties_never_overshoots():
    s = np.array([0.9, 0.9, 0.9, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1, 0.0])
    assert tau.threshold_for_fraction(s, 0.5) == 0.5  # exact: 5 of 10
    assert tau.threshold_for_fraction(s, 0.4) == 0.9  # 4 impossible -> 3
    assert tau.threshold_for_fraction(s, 0.35) == 0.9  # floor(3.5) = 3
    assert tau.threshold_for_fraction(s, 0.2) == np.inf  # top tie of 3 exceeds 2
    assert tau.threshold_for_fraction(s, 0.95) == 0.1  # 9 of 10
    for fraction in np.linspace(0, 1, 21):
        t = tau.threshold_for_fraction(s, fraction)
        assert tau.fraction_selected(s, t) <= fraction + 1e-12
    assert tau.fraction_selected(s, 0.5) == 0.5  # m ≥ τ counts the ties at τ
    with pytest.raises(ParamsError, match="fraction"):
        tau.threshold_for_fraction(s, 1.5)


def test_calibrate_tau_modes():
    s = np.arange(10.0) * 3 - 4  # min–max scale: 0, 1/9, ..., 1
    assert tau.calibrate_tau(s, tau=0.6) == 0.6
    t = tau.calibrate_tau(s, fraction=0.3)
    assert t == pytest.approx(7 / 9)
    assert tau.fraction_selected(tau.normalize_minmax(s), t) == 0.3
    with pytest.raises(ParamsError, match="exactly one"):
        tau.calibrate_tau(s)
    with pytest.raises(ParamsError, match="exactly one"):
        tau.calibrate_tau(s, tau=0.5, fraction=0.1)
    with pytest.raises(ParamsError, match="tau"):
        tau.calibrate_tau(s, tau=5.0)


def test_spearman_hand_case_ties_and_nan():
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert agreement.spearman(a, a**3) == pytest.approx(1.0)
    assert agreement.spearman(a, -a) == pytest.approx(-1.0)
    # Ranks a: 1..5, b: [1.5, 1.5, 3, 5, 4] -> Σd² = 0.25 + 0.25 + 0 + 1 + 1; ρ = r(ranks).
    b = np.array([0.0, 0.0, 1.0, 3.0, 2.0])
    rb = np.array([1.5, 1.5, 3.0, 5.0, 4.0])
    assert agreement.spearman(a, b) == pytest.approx(np.corrcoef(a, rb)[0, 1])
    assert agreement.spearman([1.0, np.nan, 2.0, 3.0], [1.0, 5.0, np.nan, 2.0]) == pytest.approx(
        1.0
    )
    assert np.isnan(agreement.spearman([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
    assert np.isnan(agreement.spearman([1.0, np.nan], [np.nan, 1.0]))


def test_spearman_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(2)
    a = rng.integers(0, 10, 300).astype(float)
    b = a + rng.integers(0, 5, 300)
    a[::17] = np.nan
    keep = ~np.isnan(a)
    expected = stats.spearmanr(a[keep], b[keep]).statistic
    assert agreement.spearman(a, b) == pytest.approx(expected, rel=1e-12)


def test_precision_at_k_hand_case():
    scores = np.array([0.9, np.nan, 0.8, 0.1, 0.8, 0.5])
    positives = np.array([True, True, False, False, True, False])
    # Order: 0 (0.9), 2 (0.8), 4 (0.8, tie keeps index order), 5, 3, then 1 (NaN last).
    assert agreement.precision_at_k(scores, positives, 1) == 1.0
    assert agreement.precision_at_k(scores, positives, 3) == pytest.approx(2 / 3)
    assert agreement.precision_at_k(scores, positives, 5) == pytest.approx(2 / 5)
    assert agreement.precision_at_k(scores, positives, 6) == pytest.approx(3 / 6)
    with pytest.raises(ParamsError, match="k"):
        agreement.precision_at_k(scores, positives, 7)


def test_convergence_table():
    rng = np.random.default_rng(3)
    k, n = 12, 300
    included = estimators.subset_masks(n, k=k, ratio=0.5, seed=4)
    true = rng.random(n)
    prob = np.clip(0.5 + np.where(included, 0.5, -0.5) * true + rng.normal(0, 0.1, (k, n)), 0, 1)
    table = agreement.convergence(prob, included, ks=[2, 6, 12])
    assert table.columns.tolist() == ["k", "spearman", "n_defined"]
    assert table["k"].tolist() == [2, 6, 12]
    assert table["spearman"].iloc[-1] == pytest.approx(1.0)
    assert table["n_defined"].iloc[-1] == n
    with_ref = agreement.convergence(prob, included, ks=[12], reference=true)
    assert with_ref["spearman"].iloc[0] > 0.9
    with pytest.raises(ParamsError, match="ks"):
        agreement.convergence(prob, included, ks=[13])
