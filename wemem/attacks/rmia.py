"""RMIA, the relative membership inference attack (Zarifzadeh et al., "Low-Cost High-Power
Membership Inference Attacks", ICML 2024): the scores, online and offline, and the offline
coefficient a fitted on shadow models. Pure numpy; inputs are true-class probabilities.

Statistic. For a model θ and a sample x of label y, Pr(x|θ) is θ's softmax probability of y
(:func:`true_class_prob`). With reference models θ'_1 … θ'_S the marginal Pr(x) is, online
(references both trained on x and not, ``a=None``),

$$ \\Pr(x) = \\frac{1}{S} \\sum_{s=1}^{S} \\Pr(x \\mid \\theta'_s) , $$

and offline (every reference is OUT: it never trained on x; ``a`` in [0, 1])

$$ \\Pr(x) = \\tfrac12 \\Big( (1 + a) \\, \\frac{1}{S} \\sum_{s=1}^{S} \\Pr(x \\mid \\theta'_s)
   + (1 - a) \\Big) , $$

the paper's linear approximation of the IN + OUT average ½(Pr_IN(x) + Pr_OUT(x)) from OUT models
alone, assuming Pr_IN ≈ a·Pr_OUT + (1 − a); a = 1 is the plain OUT mean. For a population sample
z (a non-member of the target and of every reference)

$$ \\mathrm{LR}_\\theta(x, z) = \\frac{\\Pr(x \\mid \\theta) / \\Pr(x)}{\\Pr(z \\mid \\theta) / \\Pr(z)} ,
   \\qquad
   \\mathrm{Score}(x) = \\frac{1}{m} \\, \\#\\{ j \\le m : \\mathrm{LR}_\\theta(x, z_j) \\ge \\gamma \\}
   \\in [0, 1] , $$

higher = member, γ ≥ 1 (the paper's default 1; some versions use 2).

Pr(z) is computed by the same formula as Pr(x): the same ``a``, or the plain mean. This is what
Privacy Meter's reference code does (``run_rmia`` computes ``mean_z`` with the offline expression
of ``mean_x``) and what the paper states online (Pr(z) is the average over all reference models,
which are all OUT for z). One map r(·) = Pr(·|θ) / Pr(·) applied to x and z alike keeps a
non-member x exchangeable with the z's, so its score is about uniform on [0, 1] whatever ``a``;
correcting x but not z would move every x relative to every z by the correction alone.

Floor. Every probability, the target's and the references', is clamped below at
:data:`PROB_FLOOR` (1e-7, the value of :data:`wemem.attacks.lira.PROB_FLOOR`) before use, so
Pr(x) ≥ 1e-7 and every ratio r lies in [1e-7, 1e7]: no division by zero, and LR is defined for a
probability of 0. Values outside [0, 1] or NaN are refused. Each sample's reference probabilities
are summed in ascending order, so Pr(x) depends on the set of references and not on their order
(scores are exactly invariant to the order of the reference models, ties included).

Computation. Since r > 0, LR(x, z) ≥ γ ⇔ r_z ≤ r_x / γ: the m population ratios are sorted once
and each x counts them by binary search (``searchsorted(side="right")``, so r_z = r_x / γ, i.e.
LR = γ exactly, counts as ≥ γ), O((n + m) log m) time and O(n + m) memory, never an n × m matrix.
In floating point ``r_z <= r_x / γ`` and ``r_x / r_z >= γ`` can disagree within a rounding of γ
(never for γ a power of 2); a last step moves each count over such borderline values so that it is
exactly #{z : fl(r_x / r_z) ≥ γ}, the formula as written (fl(r_x / r_z) is non-increasing in r_z,
so that set is a prefix of the sorted r_z).

Fitting a (:func:`fit_offline_a`) uses shadow models only, never the victim: each shadow in turn
is a pseudo-target attacked offline with the other shadows as OUT references, and the a of the
best mean AUC over pseudo-targets is kept (as Privacy Meter's ``tune_offline_a``, which attacks
one paired reference model).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from wemem.attacks.metrics import roc_auc
from wemem.errors import ParamsError

__all__ = [
    "DEFAULT_A_GRID",
    "PROB_FLOOR",
    "OfflineAFit",
    "fit_offline_a",
    "rmia_scores",
    "true_class_prob",
]

PROB_FLOOR = 1e-7
"""Lower clamp of every probability (target and references) before ratios are taken."""

DEFAULT_A_GRID = np.arange(11) / 10
"""Values of ``a`` tried by :func:`fit_offline_a`: 0, 0.1, …, 1."""

_Array = NDArray[np.float64]


class OfflineAFit(NamedTuple):
    """Result of :func:`fit_offline_a`.

    Attributes:
        a: the grid value of the highest mean AUC (the smallest such value on ties).
        table: ``(k, 2)`` float64 rows ``(a, mean AUC over pseudo-targets)``, ``a`` ascending.
    """

    a: float
    table: _Array


def true_class_prob(probs: ArrayLike, labels: ArrayLike) -> _Array:
    """Pr(x|θ): the posterior of the true label, like :func:`wemem.attacks.lira.phi`'s input.

    Args:
        probs: ``(n, C)`` posteriors (softmax outputs) of one model.
        labels: ``(n,)`` integer labels in ``[0, C)``.

    Returns:
        ``(n,)`` float64 ``probs[i, labels[i]]``.
    """
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels)
    if p.ndim != 2 or y.shape != (p.shape[0],):
        raise ValueError(f"probs must be (n, C) and labels (n,); got {p.shape} and {y.shape}")
    if y.size and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= p.shape[1]):
        raise ValueError(f"labels must be integers in [0, {p.shape[1]}); got {y.dtype} values")
    return p[np.arange(y.size), y.astype(np.int64)]


def _check_gamma(gamma: float) -> float:
    """``gamma`` as a float, refused (ParamsError) unless finite and >= 1."""
    g = float(gamma)
    if not np.isfinite(g) or g < 1.0:
        raise ParamsError(f"gamma: got {gamma!r}; allowed is a finite number >= 1 (paper: 1)")
    return g


def _check_a(a: float) -> float:
    """``a`` as a float, refused (ParamsError) unless in [0, 1]."""
    v = float(a)
    if not 0.0 <= v <= 1.0:  # also refuses NaN
        raise ParamsError(f"a: got {a!r}; allowed is a number in [0, 1] (or None: online)")
    return v


def _probs(x: ArrayLike, name: str, ndim: int) -> _Array:
    """Validated float64 probabilities of ``ndim`` dimensions, clamped below at PROB_FLOOR."""
    p = np.asarray(x, dtype=np.float64)
    if p.ndim != ndim or p.size == 0:
        want = "(n,)" if ndim == 1 else "(S, n) with S >= 1"
        raise ValueError(f"{name} must be a non-empty {want} array; got shape {p.shape}")
    if not ((p >= 0.0) & (p <= 1.0)).all():  # also catches NaN
        raise ValueError(f"{name} must hold probabilities in [0, 1]; got NaN or values outside")
    return np.maximum(p, PROB_FLOOR)


def _ref_mean(p_ref: _Array, use: NDArray[np.bool_] | None = None) -> _Array:
    """Per-sample mean ``(n,)`` of ``(S, n)`` over the rows (those where ``use``), summed in
    ascending order so that the result does not depend on the order of the rows."""
    vals = np.sort(p_ref if use is None else np.where(use, p_ref, np.inf), axis=0)
    total = np.zeros(vals.shape[1])
    for row in vals:
        total += row if use is None else np.where(np.isfinite(row), row, 0.0)
    count = vals.shape[0] if use is None else use.sum(axis=0)
    return total / count


def _marginal(mean: _Array, a: float | None) -> _Array:
    """Pr(·) from the reference mean: the mean itself (online) or the offline formula."""
    return mean if a is None else 0.5 * ((1.0 + a) * mean + (1.0 - a))


def _fraction_at_least(r_x: _Array, r_z: _Array, gamma: float) -> _Array:
    """``(n,)`` fraction of ``r_z`` with ``r_x / r_z >= gamma`` (module docstring, Computation)."""
    srt = np.sort(r_z)
    m = srt.size
    k = np.searchsorted(srt, r_x / gamma, side="right")
    while True:  # the next distinct r_z still passes fl(r_x / r_z) >= γ: count it and its ties
        nxt = np.minimum(k, m - 1)
        up = (k < m) & (r_x / srt[nxt] >= gamma)
        if not up.any():
            break
        k[up] = np.searchsorted(srt, srt[nxt[up]], side="right")
    while True:  # the last counted r_z fails fl(r_x / r_z) >= γ: drop it and its ties
        last = np.maximum(k - 1, 0)
        down = (k > 0) & (r_x / srt[last] < gamma)
        if not down.any():
            break
        k[down] = np.searchsorted(srt, srt[last[down]], side="left")
    return k / m


def rmia_scores(
    p_target_x: ArrayLike,
    p_ref_x: ArrayLike,
    p_target_z: ArrayLike,
    p_ref_z: ArrayLike,
    *,
    gamma: float,
    a: float | None = None,
) -> _Array:
    """RMIA membership scores of the target model on ``n`` samples x (module docstring).

    Args:
        p_target_x: ``(n,)`` Pr(x|θ), the target model's true-class probabilities on x.
        p_ref_x: ``(S, n)`` the same for S ≥ 1 reference models.
        p_target_z: ``(m,)`` Pr(z|θ) on m population samples (non-members of every model).
        p_ref_z: ``(S, m)`` the same S reference models on z, in any order.
        gamma: γ ≥ 1, the likelihood-ratio threshold (paper: 1).
        a: ``None`` for Pr(·) = mean over the references (online: references IN and OUT), or
            the offline coefficient in [0, 1] (all references OUT; 1 = plain OUT mean).

    Returns:
        ``(n,)`` float64 in [0, 1], the fraction of z with LR(x, z) ≥ γ; higher = member.
    """
    g = _check_gamma(gamma)
    a_ = None if a is None else _check_a(a)
    t_x, t_z = _probs(p_target_x, "p_target_x", 1), _probs(p_target_z, "p_target_z", 1)
    r_x, r_z = _probs(p_ref_x, "p_ref_x", 2), _probs(p_ref_z, "p_ref_z", 2)
    if r_x.shape[1] != t_x.size:
        raise ValueError(f"p_ref_x must be (S, {t_x.size}) like p_target_x; got {r_x.shape}")
    if r_z.shape != (r_x.shape[0], t_z.size):
        raise ValueError(
            f"p_ref_z must be ({r_x.shape[0]}, {t_z.size}): the references of p_ref_x on the "
            f"samples of p_target_z; got {r_z.shape}"
        )
    ratio_x = t_x / _marginal(_ref_mean(r_x), a_)
    ratio_z = t_z / _marginal(_ref_mean(r_z), a_)
    return _fraction_at_least(ratio_x, ratio_z, g)


def _fit_inputs(
    probs: ArrayLike, member: ArrayLike, probs_z: ArrayLike | None, grid: ArrayLike | None
) -> tuple[_Array, NDArray[np.bool_], _Array, NDArray[np.intp], _Array]:
    """Validated ``(probs, member, probs_z, target columns, grid)`` of :func:`fit_offline_a`."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] < 2 or p.shape[1] == 0:
        raise ParamsError(f"probs: got shape {p.shape}; allowed is (S, n) with S >= 2 shadows")
    p = _probs(p, "probs", 2)
    mem = np.asarray(member)
    if mem.shape != p.shape or mem.dtype != np.bool_:
        raise ValueError(
            f"member must be a bool array of shape {p.shape}; got {mem.dtype} {mem.shape}"
        )
    columns = np.arange(p.shape[1])
    if probs_z is None:
        unused = np.flatnonzero(~mem.any(axis=0))
        if unused.size < 2:
            raise ParamsError(
                "probs_z: None needs at least 2 samples that no shadow trained on (columns of "
                f"member all False); got {unused.size}. Pass probs_z, the shadows on a population"
            )
        pz = p[:, unused[::2]]
        columns = np.setdiff1d(columns, unused[::2])
    else:
        pz = _probs(probs_z, "probs_z", 2)
        if pz.shape[0] != p.shape[0]:
            raise ValueError(f"probs_z must be ({p.shape[0]}, m) like probs; got {pz.shape}")
    g = np.unique(np.asarray(DEFAULT_A_GRID if grid is None else grid, dtype=np.float64))
    if g.ndim != 1 or g.size == 0 or not ((g >= 0.0) & (g <= 1.0)).all():
        raise ParamsError(f"grid: got {grid!r}; allowed is a non-empty 1-d array of a in [0, 1]")
    return p, mem, pz, columns, g


def fit_offline_a(
    probs: ArrayLike,
    member: ArrayLike,
    *,
    gamma: float,
    probs_z: ArrayLike | None = None,
    grid: ArrayLike | None = None,
) -> OfflineAFit:
    """The offline ``a`` of the best mean AUC when each shadow is attacked by the others.

    Protocol. Shadow s is the pseudo-target in turn. Its target samples are the columns of
    ``probs`` (minus the default population, below); sample i is a member iff ``member[s, i]``.
    Sample i's references are the other shadows t ≠ s with ``member[t, i]`` False (never trained
    on i), so Pr(x_i) is the offline formula on their mean; a sample with no such shadow is left
    out. The population z are the samples of ``probs_z`` (no shadow trained on them; references:
    all shadows t ≠ s) or, by default, every other one (positions 0, 2, 4, …) of the samples that
    no shadow trained on, which are then not targets, so that no sample is compared with itself.
    For each ``a`` of the grid, the AUC (:func:`wemem.attacks.metrics.roc_auc`) of the RMIA scores
    of s's members against its non-members is averaged over the pseudo-targets that have both.

    Args:
        probs: ``(S, n)`` Pr(x|θ_s) of S ≥ 2 shadow models on n samples of the shadow pool.
        member: ``(S, n)`` bool, ``member[s, i]`` iff shadow s trained on sample i.
        gamma: γ ≥ 1 of the scores (module docstring).
        probs_z: ``(S, m)`` the shadows on a population no shadow trained on, or ``None``.
        grid: the ``a`` values to try, in [0, 1]; default :data:`DEFAULT_A_GRID`.

    Returns:
        :class:`OfflineAFit`: the best ``a`` (smallest on ties) and the ``(a, mean AUC)`` table.
    """
    g_ = _check_gamma(gamma)
    p, mem, pz, cols, grid_ = _fit_inputs(probs, member, probs_z, grid)
    aucs = []
    for s in range(p.shape[0]):
        others = np.delete(np.arange(p.shape[0]), s)
        use = ~mem[np.ix_(others, cols)]
        ok = use.any(axis=0)
        is_in = mem[s, cols][ok]
        if is_in.all() or not is_in.any():
            continue
        mean_x = _ref_mean(p[np.ix_(others, cols)][:, ok], use[:, ok])
        mean_z = _ref_mean(pz[others])
        t_x, t_z = p[s, cols][ok], pz[s]
        row = []
        for a in grid_:
            sc = _fraction_at_least(t_x / _marginal(mean_x, a), t_z / _marginal(mean_z, a), g_)
            row.append(roc_auc(sc[is_in], sc[~is_in]))
        aucs.append(row)
    if not aucs:
        raise ParamsError(
            "member: no shadow has both members and non-members among the samples that another "
            "shadow did not train on; allowed are memberships that leave each such pair"
        )
    mean_auc = np.mean(aucs, axis=0)
    return OfflineAFit(float(grid_[np.argmax(mean_auc)]), np.column_stack([grid_, mean_auc]))
