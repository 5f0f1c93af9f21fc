"""Memorization scores (mem-scores): estimators, released files, scale and threshold τ.

Definition (Feldman 2020; spec §3.1): mem(x, y) = Pr_{f←A(D)}[f(x)=y] − Pr_{f←A(D∖(x,y))}[f(x)=y].
:func:`estimate` is the Feldman & Zhang (2020) subsampling estimator over ``K`` models trained on
random subsets (:func:`subset_masks`); :func:`kfold_scores` is the cheap k-fold proxy of spec §3.3,
i.e. :func:`estimate` with ``included[k, i] = (fold[i] == k)``. Arrays: ``correct`` / ``prob`` /
``included`` are ``(K, n)`` (model × pool sample); scores are ``(n,)`` float64, higher = more
memorized, NaN where undefined. The released scores (spec §3.2) are min–max normalized per
(dataset, arch) and the paper's τ only makes sense on that scale (spec §9.16): use
:func:`normalize_minmax`, or :func:`calibrate_tau` to match the high-risk fraction ``m ≥ τ`` of the
released files (spec §2.4, §3.4).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from wemem.errors import DataFormatError, DatasetMissingError, ParamsError
from wemem.io import atomic_path
from wemem.names import ARCHITECTURES

METHODS = ("fz_correct", "fz_prob", "kfold", "released")

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

# wemem dataset name -> the name in the released file names (memscore_<dataset>_<arch>.csv).
_OFFICIAL_DATASET = dict(
    zip(
        ("cifar10", "cifar100", "cinic10", "location30", "texas100", "purchase100"),
        ("cifar10", "cifar100", "cinic", "location", "texas", "purchase"),
        strict=True,
    )
)


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


def _as_outputs(x: ArrayLike, name: str) -> NDArray[np.float64]:
    a = np.asarray(x)
    if a.ndim != 2 or a.size == 0:
        raise ParamsError(f"{name} must be a non-empty (K, n) array; got shape {a.shape}")
    if a.dtype.kind not in "biuf":
        raise ParamsError(f"{name} must be bool or numeric; got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
        raise ParamsError(f"{name} must hold finite values in [0, 1] (correctness or probability)")
    return a


def _as_mask(x: ArrayLike, name: str, shape: tuple[int, ...]) -> NDArray[np.bool_]:
    a = np.asarray(x)
    if a.shape != shape:
        raise ParamsError(f"{name} must have shape {shape} like the model outputs; got {a.shape}")
    if a.dtype.kind in "iu" and np.isin(a, (0, 1)).all():
        a = a.astype(bool)
    if a.dtype != np.bool_:
        raise ParamsError(f"{name} must be a bool array (or 0/1 integers); got dtype {a.dtype}")
    return a


def _as_scores(x: ArrayLike, name: str) -> NDArray[np.float64]:
    a = np.asarray(x)
    if a.ndim != 1 or a.dtype.kind not in "biuf":
        raise ParamsError(f"{name} must be a numeric (n,) array; got shape {a.shape}, {a.dtype}")
    a = a.astype(np.float64)
    if np.isinf(a).any():
        raise ParamsError(f"{name} contains ±inf; scores must be finite or NaN")
    return a


def _check_int(value: object, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ParamsError(f"{name} must be an integer; got {value!r}")
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ParamsError(f"{name} must be {allowed}; got {value}")
    return int(value)


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
    c = _as_outputs(correct, "correct")
    inc = _as_mask(included, "included", c.shape)
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
    c = _as_outputs(correct, "correct")
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
    p, f = _as_outputs(prob, "prob"), np.asarray(fold)
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
    n = _check_int(n, "n", 1)
    k = _check_int(k, "k", 2, n)
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
    n = _check_int(n, "n", 2)
    k = _check_int(k, "k", 1)
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


def released_filename(dataset: str, arch: str) -> str:
    """``memscore_<dataset>_<arch>.csv`` in the official names (cinic10 → cinic, fc → columnfc)."""
    if dataset not in _OFFICIAL_DATASET:
        raise ParamsError(f"dataset must be one of {sorted(_OFFICIAL_DATASET)}; got {dataset!r}")
    if arch not in ARCHITECTURES:
        raise ParamsError(f"arch must be one of {sorted(ARCHITECTURES)}; got {arch!r}")
    return f"memscore_{_OFFICIAL_DATASET[dataset]}_{ARCHITECTURES[arch].official}.csv"


def load_released(path: str | os.PathLike, *, n: int) -> NDArray[np.float64]:
    """``(n,)`` float64 scores from a file in the released format (spec §3.2).

    The file has the header ``,0`` and rows ``index,score``; row ``i`` must carry index ``i`` (the
    score of pool row ``i``), for exactly ``n`` rows, and every score must be a finite number.
    """
    n = _check_int(n, "n", 1)
    path = Path(path)
    if not path.is_file():
        raise DatasetMissingError(f"mem-score file {path} not found (expected {n} rows)")
    try:
        df = pd.read_csv(path, header=0)
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataFormatError(f"{path}: not a CSV in the released format ({exc})") from exc
    if df.shape[1] != 2:
        raise DataFormatError(f"{path}: expected 2 columns (',0' header); found {list(df.columns)}")
    if len(df) != n:
        raise DataFormatError(f"{path}: expected {n} rows (pool size); found {len(df)}")
    idx = df.iloc[:, 0].to_numpy()
    bad = np.flatnonzero(idx != np.arange(n))
    if bad.size:
        r = int(bad[0])
        n_dup = int(n - np.unique(idx).size)
        n_missing = int(np.setdiff1d(np.arange(n), idx).size)
        raise DataFormatError(
            f"{path}: index must be 0..{n - 1} in order; row {r} has index {idx[r]} "
            f"({n_missing} missing, {n_dup} duplicated, otherwise out of order)"
        )
    score = pd.to_numeric(df.iloc[:, 1], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(score))
    if bad.size:
        r = int(bad[0])
        raise DataFormatError(
            f"{path}: score in row {r} is {df.iloc[r, 1]!r}; must be a finite number"
        )
    return score


def save_released(path: str | os.PathLike, scores: ArrayLike) -> Path:
    """Write ``(n,)`` finite scores in the released format (header ``,0``), atomically.

    The file is written to a temporary file in the same folder and moved into place with
    ``os.replace``, so a reader never sees a half-written file. Returns the path.
    """
    s = _as_scores(scores, "scores")
    if np.isnan(s).any():
        raise ParamsError("scores contains NaN; the released format holds finite scores only")
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        pd.DataFrame({"0": s}).to_csv(fh, float_format="%.17g")
    return path


def normalize_minmax(scores: ArrayLike) -> NDArray[np.float64]:
    """``(s − min) / (max − min)`` over the non-NaN scores, so min ↦ 0 and max ↦ 1 exactly.

    NaN stays NaN. A constant input (or a single value) maps to zeros: no sample is more memorized
    than another, so none should pass a τ > 0.
    """
    s = _as_scores(scores, "scores")
    finite = ~np.isnan(s)
    if not finite.any():
        return s.copy()
    lo, hi = s[finite].min(), s[finite].max()
    if hi == lo:
        return np.where(finite, 0.0, np.nan)
    return np.clip((s - lo) / (hi - lo), 0.0, 1.0)


def fraction_selected(scores: ArrayLike, tau: float) -> float:
    """Fraction of the non-NaN scores with ``m ≥ τ`` (the high-risk set D_r of spec §2.3)."""
    s = _as_scores(scores, "scores")
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
    s = _as_scores(scores, "scores")
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


def _average_ranks(x: NDArray[np.float64]) -> NDArray[np.float64]:
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # 1-based rank of the last member of each tie group
    return (ends - (counts - 1) / 2.0)[inverse]


def spearman(a: ArrayLike, b: ArrayLike) -> float:
    """Spearman rank correlation of two ``(n,)`` arrays, average ranks for ties.

    Pairs with a NaN on either side are dropped; NaN when fewer than two pairs remain or one side
    is constant.
    """
    x, y = _as_scores(a, "a"), _as_scores(b, "b")
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
    s = _as_scores(scores, "scores")
    pos = np.asarray(positives)
    if pos.shape != s.shape or pos.dtype != np.bool_:
        raise ParamsError(f"positives must be a bool array of shape {s.shape}; got {pos.shape}")
    k = _check_int(k, "k", 1, s.size)
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
    c = _as_outputs(correct, "correct")
    inc = _as_mask(included, "included", c.shape)
    ref = estimate(c, inc) if reference is None else _as_scores(reference, "reference")
    if ref.shape != (c.shape[1],):
        raise ParamsError(f"reference must have shape ({c.shape[1]},); got {ref.shape}")
    rows = []
    for k in ks:
        k = _check_int(k, "ks[]", 1, c.shape[0])
        est = estimate(c[:k], inc[:k])
        rows.append(
            {"k": k, "spearman": spearman(est, ref), "n_defined": int((~np.isnan(est)).sum())}
        )
    return pd.DataFrame(rows, columns=["k", "spearman", "n_defined"])
