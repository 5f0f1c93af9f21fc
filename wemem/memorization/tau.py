"""The mem-score scale and the threshold τ of the high-risk set D_r = {m ≥ τ} (spec §2.3, §2.4).

The released scores (spec §3.2) are min–max normalized per (dataset, arch) and the paper's τ only
makes sense on that scale (spec §9.16): use :func:`normalize_minmax`, or :func:`calibrate_tau` to
match the high-risk fraction ``m ≥ τ`` of the released files (spec §2.4, §3.4). Scores are ``(n,)``
float arrays, NaN where undefined.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from wemem.errors import ParamsError
from wemem.memorization.arrays import as_scores

# (dataset, arch) -> (τ, fraction of the released pool with m ≥ τ); spec §2.4, second table.
# Texas and Purchase have no released file, hence no fraction.
PAPER_TAU: dict[tuple[str, str], tuple[float, float]] = {
    ("cifar10", "resnet18"): (0.5, 0.176),
    ("cifar10", "vgg16bn"): (0.5, 0.050),
    ("cifar10", "densenet121"): (0.5, 0.179),
    ("cifar100", "resnet18"): (0.6, 0.026),
    ("cifar100", "vgg16bn"): (0.6, 0.126),
    ("cifar100", "densenet121"): (0.6, 0.121),
    ("cinic10", "resnet18"): (0.7, 0.233),
    ("cinic10", "vgg16bn"): (0.7, 0.290),
    ("cinic10", "densenet121"): (0.65, 0.261),
    ("location30", "fc"): (0.6, 0.055),
}

# (dataset, arch) -> τ of the settings table (spec §2.4, "Sliding Windows and Mem-score Threshold").
PAPER_TAU_BY_DATASET: dict[tuple[str, str], float] = {
    **{("cifar10", a): 0.5 for a in ("resnet18", "vgg16bn", "densenet121")},
    **{("cifar100", a): 0.6 for a in ("resnet18", "vgg16bn", "densenet121")},
    ("cinic10", "resnet18"): 0.7,
    ("cinic10", "vgg16bn"): 0.7,
    ("cinic10", "densenet121"): 0.65,
    ("texas100", "fc"): 0.6,
    ("location30", "fc"): 0.6,
    ("purchase100", "fc"): 0.75,
}


def normalize_minmax(scores: ArrayLike) -> NDArray[np.float64]:
    """``(s − min) / (max − min)`` over the non-NaN scores, so min ↦ 0 and max ↦ 1 exactly.

    NaN stays NaN. A constant input (or a single value) maps to zeros: no sample is more memorized
    than another, so none should pass a τ > 0.
    """
    s = as_scores(scores, "scores")
    finite = ~np.isnan(s)
    if not finite.any():
        return s.copy()
    lo, hi = s[finite].min(), s[finite].max()
    if hi == lo:
        return np.where(finite, 0.0, np.nan)
    return np.clip((s - lo) / (hi - lo), 0.0, 1.0)


def fraction_selected(scores: ArrayLike, tau: float) -> float:
    """Fraction of the non-NaN scores with ``m ≥ τ`` (the high-risk set D_r of spec §2.3)."""
    s = as_scores(scores, "scores")
    s = s[~np.isnan(s)]
    if s.size == 0:
        raise ParamsError("scores has no non-NaN value")
    return float(np.mean(s >= tau))


def threshold_for_fraction(scores: ArrayLike, fraction: float) -> float:
    """τ such that the fraction of non-NaN scores with ``m ≥ τ`` is the largest achievable value
    that does not exceed ``fraction``.

    Without ties this selects exactly ``⌊fraction·N⌋`` of the ``N`` non-NaN scores. With ties the
    count is lowered to the next value that ties allow (never above the target). τ is always one of
    the scores, except when nothing can be selected (``fraction`` 0, or ties at the top larger than
    the target): then τ is ``+inf``, which selects nothing under ``m ≥ τ``.
    """
    if not 0 <= fraction <= 1:
        raise ParamsError(f"fraction must lie in [0, 1]; got {fraction}")
    s = as_scores(scores, "scores")
    asc = np.sort(s[~np.isnan(s)])
    n = asc.size
    if n == 0:
        raise ParamsError("scores has no non-NaN value")
    target = int(np.floor(fraction * n + 1e-9))  # tolerance for float products like 0.176 * 50000
    if target == 0:
        return float("inf")
    tau = asc[n - target]  # the target-th largest score
    if n - np.searchsorted(asc, tau, side="left") <= target:
        return float(tau)
    above = np.searchsorted(asc, tau, side="right")  # ties overshoot: take the next larger value
    return float(asc[above]) if above < n else float("inf")


def calibrate_tau(
    scores: ArrayLike, *, tau: float | None = None, fraction: float | None = None
) -> float:
    """τ on the min–max scale of ``scores`` (to be compared with ``normalize_minmax(scores)``).

    Exactly one of ``tau`` (raw mode, the paper's τ in [0, 1], returned as is) and ``fraction``
    (quantile mode, spec §3.4: τ whose high-risk fraction matches ``fraction``, e.g. the released
    files' fraction from :data:`PAPER_TAU`) must be given.
    """
    if (tau is None) == (fraction is None):
        raise ParamsError(
            f"give exactly one of tau and fraction; got tau={tau}, fraction={fraction}"
        )
    if tau is not None:
        if not 0 <= tau <= 1:
            raise ParamsError(f"tau must lie in [0, 1] (min–max scale); got {tau}")
        return float(tau)
    return threshold_for_fraction(normalize_minmax(scores), fraction)


# ----------------------------------------------------------------------------- the rule of a run

#: High-risk share used for the tabular datasets without a released file (spec §2.4: Texas and
#: Purchase). The one released FC file, Location-FC, selects 5.5 % at τ = 0.6; Texas has the same
#: τ and architecture, and Purchase's higher τ (0.75) can only select fewer, so 5.5 % is the share
#: the paper's τ would most plausibly give on a released file of either: this project's choice.
TABULAR_SHARE = 0.055
_TABULAR_SHARE_FOR = {("texas100", "fc"): TABULAR_SHARE, ("purchase100", "fc"): TABULAR_SHARE}


def paper_share(dataset: str, arch: str) -> float:
    """The high-risk share of spec §2.4 for ``(dataset, arch)``: the fraction of the released file
    with m ≥ τ (:data:`PAPER_TAU`), or :data:`TABULAR_SHARE` for Texas and Purchase."""
    if (dataset, arch) in PAPER_TAU:
        return PAPER_TAU[(dataset, arch)][1]
    if (dataset, arch) in _TABULAR_SHARE_FOR:
        return _TABULAR_SHARE_FOR[(dataset, arch)]
    raise ParamsError(
        f"(dataset, arch) = ({dataset!r}, {arch!r}) has no high-risk share in spec §2.4; "
        f"allowed: {sorted({*PAPER_TAU, *_TABULAR_SHARE_FOR})}"
    )


@dataclass(frozen=True)
class TauRule:
    """How a run picks τ (spec §2.3, §2.4, §3.4).

    ``kind = "quantile"``: τ is the quantile of the run's (min–max normalized) mem-scores that
    selects ``share`` of the training pool as high-risk (computed mem-scores: their scale is not the
    released files', so the paper's raw τ would select an arbitrary share). ``kind = "raw"``: τ is
    ``value`` itself, the paper's τ on the released files' scale (released mem-scores only).
    """

    kind: str
    share: float | None = None
    value: float | None = None

    def __post_init__(self) -> None:
        if self.kind == "quantile":
            if self.share is None or not 0 < self.share < 1 or self.value is not None:
                raise ParamsError(f"tau rule quantile: share must lie in (0, 1); got {self.share}")
        elif self.kind == "raw":
            if self.value is None or not 0 <= self.value <= 1 or self.share is not None:
                raise ParamsError(f"tau rule raw: value must lie in [0, 1]; got {self.value}")
        else:
            raise ParamsError(f"tau rule kind = {self.kind!r}: allowed values are quantile, raw")

    def to_json(self) -> dict[str, Any]:
        """``{"kind": "quantile", "share": 0.176}`` or ``{"kind": "raw", "value": 0.5}``."""
        if self.kind == "quantile":
            return {"kind": "quantile", "share": self.share}
        return {"kind": "raw", "value": self.value}

    def tau(self, scores: ArrayLike) -> float:
        """τ on the min–max scale of ``scores`` (:func:`calibrate_tau`)."""
        if self.kind == "raw":
            return calibrate_tau(scores, tau=self.value)
        return calibrate_tau(scores, fraction=self.share)

    def describe(self) -> str:
        if self.kind == "raw":
            return f"the paper's raw τ = {self.value:g} (released mem-scores)"
        return f"the quantile selecting {self.share:.1%} of the pool as high-risk"


def tau_rule(*, share: float, memscore_method: str, dataset: str, arch: str) -> TauRule:
    """The rule of a run: with released mem-scores (``memscore_method == "released"``) the raw τ of
    the settings table (:data:`PAPER_TAU_BY_DATASET`, spec §2.4); otherwise the quantile selecting
    ``share`` (the paper profile sets it to :func:`paper_share`)."""
    if memscore_method == "released":
        if (dataset, arch) not in PAPER_TAU_BY_DATASET:
            raise ParamsError(
                f"memscore_method 'released': ({dataset!r}, {arch!r}) has no τ in the settings "
                f"table; allowed: {sorted(PAPER_TAU_BY_DATASET)}"
            )
        return TauRule("raw", value=PAPER_TAU_BY_DATASET[(dataset, arch)])
    return TauRule("quantile", share=float(share))
