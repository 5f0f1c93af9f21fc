"""Per-sample signals of the metric-based membership inference attacks (paper §6.2).

Every signal maps model posteriors to one score per sample with the convention **higher = more
likely a member**, so that every attack predicts "member" iff ``score >= threshold``.

Inputs throughout:

- ``probs``: ``(n, C)`` float, softmax posteriors of the attacked (or shadow) model, rows sum to 1.
- ``labels``: ``(n,)`` int in ``[0, C)``, the true labels.

References: Song & Mittal, "Systematic Evaluation of Privacy Risks of Machine Learning Models"
(USENIX Security 2021) for Conf, Entr and Mentr; the official WeMem / mia_prune code for Hconf.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["LOG_FLOOR", "SIGNALS", "conf", "entr", "hconf", "hconf_official", "mentr"]

LOG_FLOOR = 1e-20
"""Arguments of ``log`` are clamped from below at this value, as in the official code
(``_log_value(probs, small_value=1e-20)``), so that ``0 · log 0`` evaluates to 0, not NaN."""


def _check(probs: ArrayLike, labels: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Validate and convert to ``(n, C)`` float64 and ``(n,)`` int64 arrays."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels)
    if p.ndim != 2:
        raise ValueError(f"probs must have shape (n, C); got shape {p.shape}")
    if y.shape != (p.shape[0],):
        raise ValueError(f"labels must have shape ({p.shape[0]},); got shape {y.shape}")
    if y.size and not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be integers; got dtype {y.dtype}")
    y = y.astype(np.int64, copy=False)
    if y.size and (y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"labels must lie in [0, {p.shape[1]}); got range [{y.min()}, {y.max()}]")
    return p, y


def _log(x: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.log(np.maximum(x, LOG_FLOOR))


def conf(probs: ArrayLike, labels: ArrayLike) -> NDArray[np.float64]:
    """Conf: true-class confidence ``p_y``.

    Returns ``(n,)`` float in ``[0, 1]``. Thresholded per class in the paper (§6.2).
    """
    p, y = _check(probs, labels)
    return p[np.arange(p.shape[0]), y]


def entr(probs: ArrayLike, labels: ArrayLike) -> NDArray[np.float64]:
    """Entr: negative prediction entropy ``-H(p) = Σ_c p_c log p_c`` (logs clamped at 1e-20).

    ``labels`` is not used by the score; it is accepted (and validated) so that all signals share
    one signature. Returns ``(n,)`` float in ``[-log C, 0]``; 0 for a one-hot posterior.
    """
    p, _ = _check(probs, labels)
    return np.sum(p * _log(p), axis=1)


def mentr(probs: ArrayLike, labels: ArrayLike) -> NDArray[np.float64]:
    """Mentr: negative modified entropy ``-Mentr(p, y)`` (Song & Mittal 2021, eq. 4), where

    ``Mentr(p, y) = -(1 - p_y) log p_y - Σ_{c≠y} p_c log(1 - p_c)``,

    with both logs clamped at 1e-20 as in the official code. Mentr is 0 for a confident correct
    prediction and grows when the model is confidently wrong, so ``-Mentr`` is high for members.
    Returns ``(n,)`` float ``<= 0``.
    """
    p, y = _check(probs, labels)
    is_true = np.arange(p.shape[1])[None, :] == y[:, None]
    # Term by term, as the official code, rather than "sum over all c minus the y term": the
    # subtraction would cancel catastrophically when p_y is close to 1.
    terms = np.where(is_true, (1.0 - p) * _log(p), p * _log(1.0 - p))
    return np.sum(terms, axis=1)


def hconf(probs: ArrayLike, labels: ArrayLike) -> NDArray[np.float64]:
    """Hconf as its name reads: the highest (top-1) confidence ``max_c p_c``.

    Class-agnostic: the attack uses one global threshold. ``labels`` is validated but unused.
    This is the *corrected* reading; the official code thresholds the true-class confidence
    instead (spec §9.9), see :func:`hconf_official`. Returns ``(n,)`` float in ``[1/C, 1]``.
    """
    p, _ = _check(probs, labels)
    return p.max(axis=1)


def hconf_official(probs: ArrayLike, labels: ArrayLike) -> NDArray[np.float64]:
    """Hconf as the official WeMem code computes it: the true-class confidence ``p_y``.

    Deviation from the name (spec §9.9): the official code, inherited from mia_prune's
    "Top1-conf", feeds ``p_y`` (not ``max_c p_c``) to one class-agnostic threshold. The score is
    therefore identical to :func:`conf`; only the threshold scope (global, not per class)
    differs. The two Hconf variants agree on correctly classified samples and differ on
    misclassified ones, where ``max_c p_c > p_y``. Returns ``(n,)`` float in ``[0, 1]``.
    """
    return conf(probs, labels)


SIGNALS = {
    "conf": conf,
    "entr": entr,
    "mentr": mentr,
    "hconf": hconf,
    "hconf_official": hconf_official,
}
"""Signal function of each metric attack, by its lower-case paper name."""
