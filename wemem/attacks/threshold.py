"""Threshold calibration of the metric-based attacks (paper §6.2, "Threshold selection").

Rule of the official code (Song & Mittal 2021, ``_thre_setting``; reused by mia_prune and WeMem):

- candidates are every observed score, in the order of ``concat(scores_in, scores_out)``;
- a sample is predicted member iff ``score >= t``;
- the balanced accuracy ``BA(t) = ½(TPR(t) + TNR(t))`` is computed for every candidate, in float64
  exactly as the official code does (``0.5 * (n_tp / n_in + n_tn / n_out)``);
- the **first** maximiser in that concatenated order wins (the code updates only on ``acc >
  max_acc``).

:func:`exhaustive_threshold` is that O(n²) scan (vectorised in chunks). :func:`best_threshold`
returns the identical threshold and BA in O(n log n): BA depends only on the threshold's value, so it
evaluates BA once per distinct value and, among the distinct values that reach the maximum, returns
the one whose first occurrence in the concatenated order is earliest, which is exactly the
candidate the scan stops at. Both functions compute BA from the same integer counts with the same
float expression, so ties, including float-rounding coincidences, resolve identically.

Scores: ``(n,)`` float, higher = more likely member. ``±inf`` is allowed; NaN raises ``ValueError``
(a NaN would silently compare false both as a score and as a candidate, which the official code
never meets because its signals are finite), and so does an empty member or non-member set.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "best_threshold",
    "exhaustive_threshold",
    "per_class_thresholds",
    "predict_members",
]


def _as_scores(scores: ArrayLike, name: str) -> NDArray[np.float64]:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"{name} must have shape (n,); got shape {s.shape}")
    if s.size == 0:
        raise ValueError(f"{name} is empty; a threshold needs at least one member and non-member")
    if np.isnan(s).any():
        raise ValueError(f"{name} contains NaN; scores must be finite or ±inf")
    return s


def _as_labels(labels: ArrayLike, n: int, num_classes: int, name: str) -> NDArray[np.int64]:
    y = np.asarray(labels)
    if y.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},); got shape {y.shape}")
    if n and not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name} must be integers; got dtype {y.dtype}")
    y = y.astype(np.int64, copy=False)
    if n and (y.min() < 0 or y.max() >= num_classes):
        raise ValueError(f"{name} must lie in [0, {num_classes}); got [{y.min()}, {y.max()}]")
    return y


def _balanced_accuracy(
    n_tp: NDArray[np.int64], n_tn: NDArray[np.int64], n_in: int, n_out: int
) -> NDArray[np.float64]:
    """BA from counts, with the official code's float expression (see the module docstring)."""
    return 0.5 * (n_tp / (n_in + 0.0) + n_tn / (n_out + 0.0))


def best_threshold(scores_in: ArrayLike, scores_out: ArrayLike) -> tuple[float, float]:
    """Threshold maximising balanced accuracy, O(n log n), identical to the reference scan.

    Args:
        scores_in: ``(n_in,)`` float, scores of (shadow) members.
        scores_out: ``(n_out,)`` float, scores of (shadow) non-members.

    Returns:
        ``(t, ba)``: the threshold (an observed score; predict member iff ``score >= t``) and its
        balanced accuracy on the given data. Equal to :func:`exhaustive_threshold`, ties included.
    """
    s_in = _as_scores(scores_in, "scores_in")
    s_out = _as_scores(scores_out, "scores_out")
    candidates = np.concatenate([s_in, s_out])
    # np.unique sorts stably when return_index is set, so `first` is each value's first occurrence.
    values, first = np.unique(candidates, return_index=True)
    n_tp = s_in.size - np.searchsorted(np.sort(s_in), values, side="left")  # #{s_in >= t}
    n_tn = np.searchsorted(np.sort(s_out), values, side="left")  # #{s_out < t}
    ba = _balanced_accuracy(n_tp, n_tn, s_in.size, s_out.size)
    maximisers = np.flatnonzero(ba == ba.max())
    k = maximisers[np.argmin(first[maximisers])]
    return float(candidates[first[k]]), float(ba[k])


def exhaustive_threshold(
    scores_in: ArrayLike, scores_out: ArrayLike, *, chunk_elems: int = 1 << 22
) -> tuple[float, float]:
    """Reference O(n²) scan of the official code, vectorised in chunks of candidates.

    Same arguments and result as :func:`best_threshold`; ``chunk_elems`` bounds the size of the
    boolean comparison matrix held at once (candidates × samples). For tests and benchmarks.
    """
    s_in = _as_scores(scores_in, "scores_in")
    s_out = _as_scores(scores_out, "scores_out")
    candidates = np.concatenate([s_in, s_out])
    step = max(1, chunk_elems // candidates.size)
    n_tp = np.empty(candidates.size, dtype=np.int64)
    n_tn = np.empty(candidates.size, dtype=np.int64)
    for start in range(0, candidates.size, step):
        t = candidates[start : start + step, None]
        n_tp[start : start + step] = np.count_nonzero(s_in[None, :] >= t, axis=1)
        n_tn[start : start + step] = np.count_nonzero(s_out[None, :] < t, axis=1)
    ba = _balanced_accuracy(n_tp, n_tn, s_in.size, s_out.size)
    j = int(np.argmax(ba))  # first maximiser, as the official `if acc > max_acc`
    return float(candidates[j]), float(ba[j])


def per_class_thresholds(
    scores_in: ArrayLike,
    labels_in: ArrayLike,
    scores_out: ArrayLike,
    labels_out: ArrayLike,
    *,
    num_classes: int,
) -> NDArray[np.float64]:
    """One threshold per class, each chosen by :func:`best_threshold` on that class's samples.

    Args:
        scores_in, labels_in: ``(n_in,)`` float scores and int labels of the shadow members.
        scores_out, labels_out: ``(n_out,)`` float scores and int labels of the shadow non-members.
        num_classes: C; labels must lie in ``[0, C)``.

    Returns:
        ``(C,)`` float thresholds; class c's samples are predicted member iff ``score >= t[c]``.

    Fallback: a class without shadow members or without shadow non-members gets the global
    threshold (``best_threshold`` on all samples). The official code would instead return its
    initial value 0 for such a class (its scan finds no ``acc > 0``: NaN ratios or no candidates),
    an artefact rather than a choice; with the paper's datasets every class has both.
    """
    s_in = _as_scores(scores_in, "scores_in")
    s_out = _as_scores(scores_out, "scores_out")
    y_in = _as_labels(labels_in, s_in.size, num_classes, "labels_in")
    y_out = _as_labels(labels_out, s_out.size, num_classes, "labels_out")
    global_t, _ = best_threshold(s_in, s_out)
    # Group by class with a stable sort, which keeps the within-class order (and hence the
    # official tie-break on the concatenated order of that class's candidates).
    order_in = np.argsort(y_in, kind="stable")
    order_out = np.argsort(y_out, kind="stable")
    edges = np.arange(num_classes + 1)
    bounds_in = np.searchsorted(y_in[order_in], edges, side="left")
    bounds_out = np.searchsorted(y_out[order_out], edges, side="left")
    thresholds = np.full(num_classes, global_t, dtype=np.float64)
    for c in range(num_classes):
        idx_in = order_in[bounds_in[c] : bounds_in[c + 1]]
        idx_out = order_out[bounds_out[c] : bounds_out[c + 1]]
        if idx_in.size and idx_out.size:
            thresholds[c], _ = best_threshold(s_in[idx_in], s_out[idx_out])
    return thresholds


def predict_members(
    scores: ArrayLike, thresholds: ArrayLike, labels: ArrayLike | None = None
) -> NDArray[np.bool_]:
    """Apply thresholds: ``(n,)`` bool, True = predicted member (``score >= threshold``).

    ``thresholds`` is a scalar (global) or ``(C,)`` (per class, then ``labels`` ``(n,)`` int
    selects each sample's threshold).
    """
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(thresholds, dtype=np.float64)
    if t.ndim == 0:
        return s >= t
    if labels is None:
        raise ValueError("labels are required with per-class thresholds")
    y = _as_labels(labels, s.size, t.size, "labels")
    return s >= t[y]
