import numpy as np
import pytest

from wemem.errors import DataFormatError, ParamsError
from wemem.experiment.replicate import Experiment
from wemem.memorization import agreement, memscores, released, tau
from wemem.params import validate
from wemem.studies import memorization


@pytest.fixture
def exp(tmp_path):
    s = validate(
        {
            "data_options": {"n_samples": 1500, "n_features": 80, "n_classes": 5, "bitflip": 0.25},
            "label_noise": 0.1,
            "memscore_models": 8,
            "memscore_epochs": 15,
            "cache_dir": str(tmp_path / "cache"),
        }
    )
    return Experiment(s, seed=0)


def test_fz_scores_rank_flipped_labels_on_top_and_are_cached(exp, monkeypatch):
    fz = memscores.compute(exp, method="fz")
    n = exp.pool.n_train
    assert fz.score.shape == (n,) and fz.prob.shape == (8, n)
    assert np.all((fz.score >= 0) & (fz.score <= 1))
    flipped = exp.pool.flipped[:n]
    rec = memorization.flip_recovery(fz, flipped)
    used = rec[rec.estimate == "used (normalized)"].iloc[0]
    assert used.precision_at_k > 3 * used.flip_rate  # clearly above chance

    def boom(*a, **k):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(memscores, "train_ensemble", boom)
    again = memscores.compute(exp, method="fz")
    np.testing.assert_array_equal(again.score, fz.score)


def test_kfold_proxy_agrees_with_fz(exp):
    fz = memscores.compute(exp, method="fz")
    kf = memscores.compute(exp, method="kfold", models=4)
    assert kf.included.sum(0).tolist() == [1] * exp.pool.n_train  # each row in exactly one fold
    assert agreement.spearman(fz.score, kf.score) > 0.3


def test_released_file_loads_aligned_to_the_pool(exp, tmp_path):
    n = exp.pool.n_train
    y = exp.pool.y_clean[:n].numpy()
    # class-structured like real mem-scores: the class shifts the score, plus noise
    raw = 0.3 + 0.05 * y + np.random.default_rng(0).normal(0, 0.1, n)
    path = released.save_released(tmp_path / "memscore_synthetic_fc.csv", raw)
    res = memscores.compute(exp, method="released", released_file=str(path))
    np.testing.assert_allclose(res.score, tau.normalize_minmax(raw))
    assert res.score.min() == 0 and res.score.max() == 1
    moved = released.save_released(
        tmp_path / "moved.csv", np.random.default_rng(1).permutation(raw)
    )
    with pytest.raises(DataFormatError, match=r"moved\.csv.*synthetic.*score of pool row i"):
        memscores.compute(exp, method="released", released_file=str(moved))
    opted_out = memscores.compute(
        exp, method="released", released_file=str(moved), check_released=False
    )
    assert opted_out.score.shape == (n,)
    short = released.save_released(tmp_path / "short.csv", raw[:-5])
    with pytest.raises(DataFormatError):
        memscores.compute(exp, method="released", released_file=str(short))
    with pytest.raises(ParamsError):
        memscores.compute(exp, method="released", released_file="")


def test_tau_table_covers_the_paper_rows(exp):
    score = tau.normalize_minmax(np.random.default_rng(0).random(1000))
    t = memorization.tau_table(score)
    assert len(t) == len(tau.PAPER_TAU)
    for _, r in t.iterrows():
        assert abs(tau.fraction_selected(score, r.tau_quantile) - r.paper_fraction) <= 0.001
