"""Agreement between mem-score estimates: rank correlation, precision at k, convergence in K.

Scores are ``(n,)`` float arrays (higher = more memorized, NaN where undefined); model outputs
and subsets are ``(K, n)`` as in :mod:`.estimators`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from wemem.errors import ParamsError
from wemem.memorization.arrays import as_mask, as_outputs, as_scores, check_int
from wemem.memorization.estimators import estimate


def _average_ranks(x: NDArray[np.float64]) -> NDArray[np.float64]:
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # 1-based rank of the last member of each tie group
    return (ends - (counts - 1) / 2.0)[inverse]


def spearman(a: ArrayLike, b: ArrayLike) -> float:
    """Spearman rank correlation of two ``(n,)`` arrays, average ranks for ties.

    Pairs with a NaN on either side are dropped; NaN when fewer than two pairs remain or one side
    is constant.
    """
    x, y = as_scores(a, "a"), as_scores(b, "b")
    if x.shape != y.shape:
        raise ParamsError(f"a and b must have the same shape; got {x.shape} and {y.shape}")
    keep = ~(np.isnan(x) | np.isnan(y))
    if keep.sum() < 2:
        return float("nan")
    rx, ry = _average_ranks(x[keep]), _average_ranks(y[keep])
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = np.sqrt((rx**2).sum() * (ry**2).sum())
    return float((rx * ry).sum() / denom) if denom > 0 else float("nan")


def precision_at_k(scores: ArrayLike, positives: ArrayLike, k: int) -> float:
    """Fraction of the ``k`` (``1 ≤ k ≤ n``) highest ``(n,)`` scores whose sample is one of the
    ``(n,)`` bool ``positives``. NaN scores rank last; equal scores keep index order."""
    s = as_scores(scores, "scores")
    pos = np.asarray(positives)
    if pos.shape != s.shape or pos.dtype != np.bool_:
        raise ParamsError(f"positives must be a bool array of shape {s.shape}; got {pos.shape}")
    k = check_int(k, "k", 1, s.size)
    nan = np.isnan(s)
    order = np.lexsort((-np.where(nan, 0.0, s), nan))
    return float(pos[order[:k]].mean())


def convergence(
    correct: ArrayLike,
    included: ArrayLike,
    *,
    ks: list[int],
    reference: ArrayLike | None = None,
) -> pd.DataFrame:
    """Spearman of the estimate from the first ``k`` models (``k`` in ``ks``, each in ``[1, K]``)
    against ``reference`` (``(n,)``; default the estimate from all ``K`` models).

    Returns one row per ``k``: ``k``, ``spearman``, ``n_defined`` (samples with a defined estimate).
    """
    c = as_outputs(correct, "correct")
    inc = as_mask(included, "included", c.shape)
    ref = estimate(c, inc) if reference is None else as_scores(reference, "reference")
    if ref.shape != (c.shape[1],):
        raise ParamsError(f"reference must have shape ({c.shape[1]},); got {ref.shape}")
    rows = []
    for k in ks:
        k = check_int(k, "ks[]", 1, c.shape[0])
        est = estimate(c[:k], inc[:k])
        rows.append(
            {"k": k, "spearman": spearman(est, ref), "n_defined": int((~np.isnan(est)).sum())}
        )
    return pd.DataFrame(rows, columns=["k", "spearman", "n_defined"])
