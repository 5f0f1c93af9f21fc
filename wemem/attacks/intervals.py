"""Bootstrap intervals of an attack's AUC and its TPR at low FPR.

A low-FPR figure is read off a handful of non-members (TPR at 0.1 % FPR on 2,000 non-members is
decided by the 2 highest-scoring ones), so a difference between two defenses means something only
beside its noise. :func:`metric_intervals` resamples the members and the non-members separately
(a stratified bootstrap: the member share stays fixed), recomputes each metric on every resample (the TPRs read off one ROC curve, as
:func:`wemem.attacks.metrics.tpr_at_fpr` does)
and reports the point value on the full data, the percentile interval and the bootstrap standard
error (the resolution :mod:`wemem.studies.verdicts` compares differences against).

``resolvable`` says whether the non-members can resolve an FPR at all: with ``n_out`` non-members
the smallest non-zero FPR is ``1 / n_out``, so TPR at an FPR below that is TPR at FPR 0 (no
non-member above the threshold), a figure that says little about the FPR asked for.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from wemem.attacks.metrics import roc_auc, roc_curve
from wemem.errors import ParamsError

__all__ = ["metric_intervals", "metric_name"]


def metric_name(fpr: float) -> str:
    """Column name of TPR at ``fpr``: ``tpr@0.1%`` for 0.001, ``tpr@1%`` for 0.01."""
    return f"tpr@{100 * fpr:g}%"


def _metrics(s_in: np.ndarray, s_out: np.ndarray, fprs: Sequence[float]) -> list[float]:
    """AUC and TPR at each FPR; one ROC curve for every TPR (read as
    :func:`wemem.attacks.metrics.tpr_at_fpr` reads it)."""
    fpr, tpr, _ = roc_curve(s_in, s_out)
    return [roc_auc(s_in, s_out), *(float(tpr[fpr <= f].max()) for f in fprs)]


def metric_intervals(
    scores_in: ArrayLike,
    scores_out: ArrayLike,
    *,
    fprs: Sequence[float] = (0.001, 0.01),
    n_boot: int = 200,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, float | bool]]:
    """AUC and TPR at each of ``fprs`` with stratified-bootstrap intervals.

    Args:
        scores_in: ``(n_in,)`` member scores (higher = member); scores_out: ``(n_out,)``.
        fprs: false-positive rates in (0, 1).
        n_boot: bootstrap resamples (≥ 20).
        level: two-sided level of the percentile interval, in (0, 1).
        seed: seed of the resampling.

    Returns:
        ``{"auc": {...}, "tpr@0.1%": {...}, ...}``, each ``{"value", "lo", "hi", "se",
        "resolvable"}``: the metric on all samples, the interval's ends, the bootstrap standard
        error (ddof 1) and, for a TPR, whether ``fpr >= 1 / n_out`` (always True for the AUC).
    """
    s_in = np.asarray(scores_in, dtype=np.float64)
    s_out = np.asarray(scores_out, dtype=np.float64)
    if s_in.ndim != 1 or s_out.ndim != 1 or not s_in.size or not s_out.size:
        raise ValueError(f"scores must be non-empty 1-d arrays; got {s_in.shape}, {s_out.shape}")
    if not isinstance(n_boot, int | np.integer) or isinstance(n_boot, bool) or n_boot < 20:
        raise ParamsError(f"n_boot: {n_boot!r} is not allowed; must be an int >= 20")
    if not 0.0 < level < 1.0:
        raise ParamsError(f"level: {level!r} is not allowed; must be in (0, 1)")
    for f in fprs:
        if not 0.0 < f < 1.0:
            raise ParamsError(f"fprs: {f!r} is not allowed; each must be in (0, 1)")
    rng = np.random.default_rng(seed)
    names = ["auc", *(metric_name(f) for f in fprs)]
    point = _metrics(s_in, s_out, fprs)
    boot = np.empty((n_boot, len(names)))
    for b in range(n_boot):
        bi = s_in[rng.integers(0, s_in.size, s_in.size)]
        bo = s_out[rng.integers(0, s_out.size, s_out.size)]
        boot[b] = _metrics(bi, bo, fprs)
    tail = 100 * (1 - level) / 2
    lo, hi = np.percentile(boot, [tail, 100 - tail], axis=0)
    se = boot.std(axis=0, ddof=1)
    ok = [True, *(f >= 1.0 / s_out.size for f in fprs)]
    return {
        n: {
            "value": point[i],
            "lo": float(lo[i]),
            "hi": float(hi[i]),
            "se": float(se[i]),
            "resolvable": bool(ok[i]),
        }  # fmt: skip
        for i, n in enumerate(names)
    }
