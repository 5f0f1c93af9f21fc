"""Attack metrics as pure functions over member / non-member arrays.

Conventions: ``*_in`` are the members (positives), ``*_out`` the non-members (negatives); a
prediction is ``(n,)`` bool with True = "member"; a score is ``(n,)`` float with higher = more likely
member, and thresholding predicts member iff ``score >= t``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["accuracy", "balanced_accuracy", "roc_auc", "roc_curve", "tpr_at_fpr"]


def _as_pred(pred: ArrayLike, name: str) -> NDArray[np.bool_]:
    p = np.asarray(pred)
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"{name} must be a non-empty (n,) array; got shape {p.shape}")
    return p.astype(bool, copy=False)


def _as_scores(scores: ArrayLike, name: str) -> NDArray[np.float64]:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"{name} must be a non-empty (n,) array; got shape {s.shape}")
    if np.isnan(s).any():
        raise ValueError(f"{name} contains NaN")
    return s


def balanced_accuracy(pred_in: ArrayLike, pred_out: ArrayLike) -> float:
    """``½(TPR + TNR)``, pooled over all members / non-members (paper §6.2, metric attacks).

    Args:
        pred_in: ``(n_in,)`` bool, predictions on members (True = correct).
        pred_out: ``(n_out,)`` bool, predictions on non-members (False = correct).
    """
    p_in, p_out = _as_pred(pred_in, "pred_in"), _as_pred(pred_out, "pred_out")
    return float(0.5 * (p_in.mean() + (~p_out).mean()))


def accuracy(pred_in: ArrayLike, pred_out: ArrayLike) -> float:
    """Plain accuracy on the pooled, possibly imbalanced set (``(TP + TN) / (n_in + n_out)``).

    What the official code reports for the classifier attacks (spec §9.10); its floor is the
    member share ``n_in / (n_in + n_out)``, not 0.5.
    """
    p_in, p_out = _as_pred(pred_in, "pred_in"), _as_pred(pred_out, "pred_out")
    return float((p_in.sum() + (~p_out).sum()) / (p_in.size + p_out.size))


def roc_curve(
    scores_in: ArrayLike, scores_out: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Full ROC curve of the rule "member iff score >= t" over every distinct score.

    Returns:
        ``(fpr, tpr, thresholds)``, each ``(k + 1,)`` for k distinct scores. ``thresholds`` is
        decreasing; its first entry is ``+inf`` with ``fpr = tpr = 0`` (nobody predicted member),
        and the last is the smallest score with ``fpr = tpr = 1``. No point is dropped, so this
        equals ``sklearn.metrics.roc_curve(..., drop_intermediate=False)``.
    """
    s_in, s_out = _as_scores(scores_in, "scores_in"), _as_scores(scores_out, "scores_out")
    values = np.unique(np.concatenate([s_in, s_out]))[::-1]
    tp = s_in.size - np.searchsorted(np.sort(s_in), values, side="left")
    fp = s_out.size - np.searchsorted(np.sort(s_out), values, side="left")
    fpr = np.concatenate([[0.0], fp / s_out.size])
    tpr = np.concatenate([[0.0], tp / s_in.size])
    return fpr, tpr, np.concatenate([[np.inf], values])


def roc_auc(scores_in: ArrayLike, scores_out: ArrayLike) -> float:
    """Area under the ROC curve by the Mann–Whitney statistic, ties counted ½.

    ``AUC = (#{(i, j): s_in_i > s_out_j} + ½ #{s_in_i = s_out_j}) / (n_in · n_out)``, the
    probability that a random member outscores a random non-member. Equals
    ``sklearn.metrics.roc_auc_score`` (trapezoidal area of the full ROC curve). O(n log n).
    """
    s_in, s_out = _as_scores(scores_in, "scores_in"), _as_scores(scores_out, "scores_out")
    sorted_out = np.sort(s_out)
    below = np.searchsorted(sorted_out, s_in, side="left")  # non-members strictly below
    below_or_tied = np.searchsorted(sorted_out, s_in, side="right")
    wins = int(below.sum())
    ties = int((below_or_tied - below).sum())
    return float((wins + 0.5 * ties) / (s_in.size * s_out.size))


def tpr_at_fpr(scores_in: ArrayLike, scores_out: ArrayLike, fpr: float) -> float:
    """Highest TPR of the rule "member iff score >= t" over thresholds with ``FPR <= fpr``.

    The low-FPR figure of Carlini et al. 2022 ("Membership Inference Attacks From First
    Principles", LiRA). Their plotting code reads ``tpr[np.where(fpr < target)[0][-1]]`` (strict
    ``<``); this uses ``<=`` as the phrase "at FPR" reads. It is never below 0 because the curve
    starts at (0, 0); no interpolation between operating points.

    Args:
        scores_in: ``(n_in,)`` float member scores; scores_out: ``(n_out,)`` non-member scores.
        fpr: target false-positive rate in ``[0, 1]``, e.g. 0.01 for TPR@1%FPR.
    """
    if not 0.0 <= fpr <= 1.0:
        raise ValueError(f"fpr must lie in [0, 1]; got {fpr}")
    fprs, tprs, _ = roc_curve(scores_in, scores_out)
    return float(tprs[fprs <= fpr].max())
