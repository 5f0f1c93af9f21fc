"""Mem-score estimators: Feldman–Zhang subsampling and the k-fold proxy, with their subsets.

Definition (Feldman 2020; spec §3.1): mem(x, y) = Pr_{f←A(D)}[f(x)=y] − Pr_{f←A(D∖(x,y))}[f(x)=y].
:func:`estimate` is the Feldman & Zhang (2020) subsampling estimator over ``K`` models trained on
random subsets (:func:`subset_masks`); :func:`kfold_scores` is the cheap k-fold proxy of spec §3.3,
i.e. :func:`estimate` with ``included[k, i] = (fold[i] == k)``. Arrays: ``correct`` / ``prob`` /
``included`` are ``(K, n)`` (model × pool sample); scores are ``(n,)`` float64, higher = more
memorized, NaN where undefined. The raw scores are not on the released files' scale: see
:mod:`.tau` for min–max normalization and the threshold τ, :mod:`.released` for the released files
and :mod:`.agreement` for comparing estimates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from wemem.errors import ParamsError
from wemem.memorization.arrays import as_mask, as_outputs, check_int

METHODS = ("fz_correct", "fz_prob", "kfold", "released")


@dataclass(frozen=True)
class MemScores:
    """Per-sample mem-scores with their uncertainty.

    Attributes:
        score: ``(n,)`` float64 raw estimate, higher = more memorized; NaN where undefined.
        stderr: ``(n,)`` float64 Welch standard error ``sqrt(var_in/n_in + var_out/n_out)`` (sample
            variances, ddof 1); NaN when ``n_in < 2`` or ``n_out < 2``.
        n_in: ``(n,)`` int64, number of models that trained on the sample.
        n_out: ``(n,)`` int64, number of models that did not.
        method: one of :data:`METHODS`.
    """

    score: NDArray[np.float64]
    stderr: NDArray[np.float64]
    n_in: NDArray[np.int64]
    n_out: NDArray[np.int64]
    method: str


def estimate_with_stats(
    correct: ArrayLike, included: ArrayLike, *, method: str = "fz_correct"
) -> MemScores:
    """Feldman–Zhang estimate ``mean(correct | in) − mean(correct | out)`` with counts and stderr.

    ``correct``: ``(K, n)`` 0/1 correctness or true-class probability of model ``k`` on sample
    ``i``; ``included``: ``(K, n)`` bool, sample ``i`` was in model ``k``'s training subset;
    ``method``: the label stored in the result (one of :data:`METHODS`).
    """
    if method not in METHODS:
        raise ParamsError(f"method must be one of {METHODS}; got {method!r}")
    c = as_outputs(correct, "correct")
    inc = as_mask(included, "included", c.shape)
    n_in = inc.sum(axis=0)
    n_out = inc.shape[0] - n_in
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_in = np.where(inc, c, 0.0).sum(axis=0) / n_in
        mean_out = np.where(inc, 0.0, c).sum(axis=0) / n_out
        dev = c - np.where(inc, np.nan_to_num(mean_in), np.nan_to_num(mean_out))
        ss_in = np.where(inc, dev**2, 0.0).sum(axis=0)
        ss_out = np.where(inc, 0.0, dev**2).sum(axis=0)
        var_in = np.where(n_in >= 2, ss_in / (n_in - 1), np.nan)
        var_out = np.where(n_out >= 2, ss_out / (n_out - 1), np.nan)
        stderr = np.sqrt(var_in / n_in + var_out / n_out)
    return MemScores(
        score=mean_in - mean_out,  # NaN where n_in == 0 or n_out == 0 (0/0)
        stderr=stderr,
        n_in=n_in.astype(np.int64),
        n_out=n_out.astype(np.int64),
        method=method,
    )


def estimate(correct: ArrayLike, included: ArrayLike) -> NDArray[np.float64]:
    """``(n,)`` raw Feldman–Zhang (2020) estimates (arguments: :func:`estimate_with_stats`); NaN
    where a sample was never in or never out."""
    return estimate_with_stats(correct, included).score


def fz_scores(correct: ArrayLike, prob: ArrayLike, included: ArrayLike) -> dict[str, MemScores]:
    """Both Feldman–Zhang variants: on 0/1 correctness (``"fz_correct"``) and on the true-class
    probability (``"fz_prob"``); all three arrays are ``(K, n)``."""
    c = as_outputs(correct, "correct")
    if not np.isin(c, (0.0, 1.0)).all():
        raise ParamsError("correct must be 0/1 (or bool) correctness; got other values")
    return {
        "fz_correct": estimate_with_stats(c, included, method="fz_correct"),
        "fz_prob": estimate_with_stats(prob, included, method="fz_prob"),
    }


def kfold_scores(prob: ArrayLike, fold: ArrayLike) -> MemScores:
    """k-fold proxy (spec §3.3): ``prob[fold_i, i]`` minus the mean over the other ``K − 1`` models.

    ``prob``: ``(K, n)`` true-class probability of fold model ``k`` (trained on fold ``k`` only);
    ``fold``: ``(n,)`` int in ``[0, K)``, each sample's fold (see :func:`kfold_assignment`).
    """
    p, f = as_outputs(prob, "prob"), np.asarray(fold)
    if p.shape[0] < 2:
        raise ParamsError(f"prob must have shape (K, n) with K >= 2 folds; got shape {p.shape}")
    if f.shape != (p.shape[1],) or f.dtype.kind not in "iu":
        raise ParamsError(f"fold must be an int array of shape ({p.shape[1]},); got {f.shape}")
    if f.size and (f.min() < 0 or f.max() >= p.shape[0]):
        raise ParamsError(f"fold values must lie in [0, {p.shape[0]}); got [{f.min()}, {f.max()}]")
    included = f[None, :] == np.arange(p.shape[0])[:, None]
    return estimate_with_stats(p, included, method="kfold")


def kfold_assignment(
    n: int, *, k: int, seed: int, labels: ArrayLike | None = None
) -> NDArray[np.int64]:
    """``(n,)`` fold of each pool sample, in ``[0, k)``; fold sizes differ by at most one.

    With ``labels`` (``(n,)`` int) the split is stratified: samples are ordered by label (randomly
    within a label) and dealt round-robin, so each class's count also differs by at most one
    between folds.
    """
    n = check_int(n, "n", 1)
    k = check_int(k, "k", 2, n)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    if labels is not None:
        y = np.asarray(labels)
        if y.shape != (n,):
            raise ParamsError(f"labels must have shape ({n},); got {y.shape}")
        order = order[np.argsort(y[order], kind="stable")]
    fold = np.empty(n, dtype=np.int64)
    fold[order] = np.arange(n) % k
    return fold


def subset_masks(
    n: int, *, k: int, ratio: float, seed: int, balanced: bool = False
) -> NDArray[np.bool_]:
    """``(k, n)`` bool: row ``j`` is model ``j``'s training subset of exactly ``round(ratio·n)``
    samples (half rounded up). Feldman & Zhang (2020) use ``ratio = 0.7``.

    ``balanced=False``: each row is an independent uniformly random subset.
    ``balanced=True``: each row takes the samples with the lowest in-count so far (random among
    ties), so every sample's in-count over the ``k`` rows is ``⌊k·m/n⌋`` or ``⌈k·m/n⌉``. This
    removes the variance of ``n_in`` (no sample left never-in or never-out when ``0 < k·m/n`` and
    ``k·m/n < k``), at the cost of rows that are no longer independent.
    """
    n = check_int(n, "n", 2)
    k = check_int(k, "k", 1)
    if not 0 < ratio < 1:
        raise ParamsError(f"ratio must lie in (0, 1); got {ratio}")
    m = int(np.floor(ratio * n + 0.5))
    if not 0 < m < n:
        raise ParamsError(f"ratio·n must round to 1..{n - 1} samples; got {m} (ratio {ratio})")
    rng = np.random.default_rng(seed)
    masks = np.zeros((k, n), dtype=bool)
    counts = np.zeros(n, dtype=np.int64)
    for j in range(k):
        key = counts + rng.random(n) if balanced else rng.random(n)
        chosen = np.argpartition(key, m - 1)[:m]
        masks[j, chosen] = True
        counts[chosen] += 1
    return masks
