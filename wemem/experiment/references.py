"""Online LiRA's reference models (Carlini et al., S&P 2022), trained and pruned like the victim.

Targets. Online LiRA needs, for every target row, models trained on it (IN) and models not
trained on it (OUT). Its target set here is the training pool P (rows ``0..n_train-1``): the
mem-scores the WeMem defenses rank a model's training rows by exist for P rows only, so the
references train on P rows only. The victim's members are IN; every other P row (the held-out
10 % of the victim half and the whole shadow half) is a victim non-member. T rows are never
trained on by a reference; the victim's dev rows in T are every reference's early-stopping rows.

Keep matrix. Reference ``k`` of ``K`` is the role ``ref{k}of{K}``
(:func:`wemem.experiment.keys.parse_reference_role`) of the experiment; its training rows are row
``k`` of the replicate's balanced keep matrix (:meth:`Experiment.reference_keep
<wemem.experiment.replicate.Experiment.reference_keep>`, :func:`wemem.data.reference_keep`):
every P row is IN for exactly ``K/2`` references and OUT for the other ``K/2``. Its split's
``test`` rows are the P rows it did not keep, so its cached outputs cover all of P and φ of every
reference on every target comes from the cache (:func:`phi_matrix`). The keep matrix is seeded
by the run's split seed and the replicate seed (:func:`wemem.experiment.keys.keep_seed`).

Adaptive. Every reference is trained (:meth:`~wemem.experiment.replicate.Experiment.dense`) and
pruned with the victim's defense and settings
(:meth:`~wemem.experiment.replicate.Experiment.defended`), cached under its own keys (its own
model seed, :func:`wemem.experiment.keys.reference_seed`, and a ``reference`` part in its spec)
and prefetched, so the ``pool``/``ray`` executors train them in parallel
(:mod:`wemem.experiment.executor`; a worker resolves the role string alone).

Variance. :func:`online_lira_scores` and :func:`offline_lira_scores` default to one global
variance per IN/OUT distribution (``global_variance=True``), as Carlini et al. recommend for few
reference models (below about 64): a per-sample σ from ``K/2`` values is too noisy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from torch import nn

from wemem.attacks.lira import lira_offline, lira_online, phi, shadow_phi_on
from wemem.errors import ParamsError
from wemem.experiment import keys
from wemem.experiment.executor import Request
from wemem.experiment.outputs import ModelOutputs
from wemem.experiment.replicate import Experiment

__all__ = [
    "ReferenceStage",
    "keep_for",
    "offline_lira_scores",
    "online_lira_scores",
    "phi_matrix",
    "signal_matrix",
    "reference_roles",
    "reference_stage",
    "split_in_out",
]

STAGES = ("dense", "one-shot", "iterative")


@dataclass
class ReferenceStage:
    """The ``K`` reference models of one stage: their outputs, models and summaries by role.

    Attributes:
        name: the stage (``dense``, ``one-shot`` or ``iterative``).
        defense: the defense every reference was pruned with (the victim's).
        settings: the defense's settings.
        roles: ``ref0ofK .. ref{K-1}ofK``.
        keep: ``(K, n_train)`` bool keep matrix over P; ``keep[k]`` = ``roles[k]``'s training rows.
        outputs, models, summaries: by role; a summary is the dense training's or the pruning
            run's (DP-SGD's ε under ``"defense"``).
    """

    name: str
    defense: str
    settings: dict[str, Any]
    roles: list[str]
    keep: np.ndarray
    outputs: dict[str, ModelOutputs]
    models: dict[str, nn.Module]
    summaries: dict[str, dict]

    @property
    def n_refs(self) -> int:
        return len(self.roles)


def reference_roles(exp: Experiment, n_refs: int) -> list[str]:
    """The role strings of the experiment's ``n_refs`` references (``n_refs`` checked: even,
    >= 2; ParamsError otherwise)."""
    exp.reference_keep(n_refs)
    return [keys.reference_role(k, n_refs) for k in range(n_refs)]


def _stage_name(stage: str | None, one_shot: bool) -> str:
    name = stage or ("one-shot" if one_shot else "iterative")
    if name not in STAGES:
        raise ParamsError(f"stage = {name!r}: allowed values are {', '.join(STAGES)}")
    if one_shot and name != "one-shot":
        raise ParamsError(f"stage = {name!r} with one_shot = True: give one of the two")
    return name


def reference_stage(
    exp: Experiment,
    defense: str = "base",
    *,
    n_refs: int,
    one_shot: bool = False,
    stage: str | None = None,
    **settings: Any,
) -> ReferenceStage:
    """The experiment's ``n_refs`` reference models at a stage, trained like the victim.

    Args:
        exp: the replicate (the victim's experiment).
        defense: the victim's defense; every reference is pruned with it and ``settings`` (the
            adaptive attacker). DP-SGD on a BatchNorm CNN runs on ``exp.for_defense(defense)``
            (the GroupNorm twin), as :func:`wemem.experiment.adaptive.defended_stage` does.
        n_refs: K, even and >= 2 (online LiRA needs K >= 4: two IN and two OUT per target).
        one_shot: prune one-shot (the same as ``stage="one-shot"``).
        stage: ``dense``, ``one-shot`` or ``iterative`` (default: by ``one_shot``). ``dense``
            takes no settings: the dense model of the defense's experiment.
        **settings: the defense's own settings (e.g. ``width``, ``step``, ``tau``).

    Returns:
        The references' outputs (each covering all of P), models (eval mode) and summaries.
    """
    name = _stage_name(stage, one_shot)
    if name == "dense" and settings:
        raise ParamsError(f"stage 'dense' takes no defense settings; got {sorted(settings)}")
    roles = reference_roles(exp, n_refs)
    if name == "dense":
        exp.prefetch([Request("dense", r, defense) for r in roles])
    else:
        shot = name == "one-shot"
        exp.prefetch([Request("defended", r, defense, shot, settings) for r in roles])
    target = exp.for_defense(defense)
    outputs, models, summaries = {}, {}, {}
    for role in roles:
        if name == "dense":
            model, summary, out = target.dense(role)
        else:
            run = target.defended(role, defense, one_shot=name == "one-shot", **settings)
            model, summary, out = target.load_pruned_model(run, role), run.summary, run.final
        outputs[role], models[role], summaries[role] = out, model.eval(), summary
    keep = exp.reference_keep(n_refs)
    return ReferenceStage(name, defense, dict(settings), roles, keep, outputs, models, summaries)


def _p_rows(st: ReferenceStage, rows: ArrayLike) -> NDArray[np.int64]:
    r = np.asarray(rows, dtype=np.int64)
    n_train = st.keep.shape[1]
    if r.ndim != 1 or (r.size and (r.min() < 0 or r.max() >= n_train)):
        raise ValueError(f"rows must be a 1-d array of P rows in [0, {n_train})")
    return r


def signal_matrix(
    st: ReferenceStage, rows: ArrayLike, signal: Callable[[ArrayLike, ArrayLike], NDArray]
) -> NDArray[np.float64]:
    """``(K, n)`` float64 ``signal(probs, labels)`` of every reference on P ``rows``, from the
    references' cached outputs (their members and non-members together cover P)."""
    r = _p_rows(st, rows)
    out = np.empty((st.n_refs, len(r)), dtype=np.float64)
    for k, role in enumerate(st.roles):
        o = st.outputs[role]
        full = np.full(st.keep.shape[1], np.nan)
        full[o.rows_in] = signal(o.probs_in, o.labels_in)
        full[o.rows_out] = signal(o.probs_out, o.labels_out)
        out[k] = full[r]
    return out


def phi_matrix(st: ReferenceStage, rows: ArrayLike) -> NDArray[np.float64]:
    """``(K, n)`` float64 φ (:func:`wemem.attacks.lira.phi`) of every reference on P ``rows``
    (:func:`signal_matrix`)."""
    return signal_matrix(st, rows, phi)


def keep_for(st: ReferenceStage, rows: ArrayLike) -> NDArray[np.bool_]:
    """``(K, n)`` bool: whether each reference trained on each of P ``rows``."""
    return st.keep[:, _p_rows(st, rows)]


def split_in_out(
    phi_refs: ArrayLike, keep: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """φ of the IN and of the OUT references per target, each ``(K/2, n)``.

    ``keep`` must be balanced (every column holds ``K/2`` True, as every column of
    :func:`wemem.data.reference_keep` does), so the IN and OUT values gather into matrices
    without a loop per sample: a stable argsort of ``~keep`` along the references puts each
    column's IN references first.

    Raises:
        ValueError: shapes differ, or a column of ``keep`` is not balanced.
    """
    p = np.asarray(phi_refs, dtype=np.float64)
    kp = np.asarray(keep, dtype=bool)
    if p.ndim != 2 or p.shape != kp.shape:
        raise ValueError(f"phi_refs and keep must be (K, n) alike; got {p.shape} and {kp.shape}")
    half = p.shape[0] // 2
    if p.shape[0] % 2 or not (kp.sum(axis=0) == half).all():
        raise ValueError("keep must hold K/2 IN references for every target (K even)")
    order = np.argsort(~kp, axis=0, kind="stable")
    return (
        np.take_along_axis(p, order[:half], axis=0),
        np.take_along_axis(p, order[half:], axis=0),
    )


def _targets(
    exp: Experiment, victim_model: nn.Module, st: ReferenceStage, phi_victim: ArrayLike | None
) -> tuple[NDArray, NDArray, NDArray, NDArray, NDArray]:
    """P rows, victim membership, the victim's φ (computed unless given) and the references'
    IN/OUT φ on them."""
    rows = np.arange(st.keep.shape[1], dtype=np.int64)
    if phi_victim is None:
        labels = exp.pool.y[: len(rows)].cpu().numpy()  # the labels the models trained on
        phi_victim = shadow_phi_on([victim_model], exp.pool.x, rows, labels)[0]
    phi_victim = np.asarray(phi_victim, dtype=np.float64)
    if phi_victim.shape != rows.shape:
        raise ValueError(f"phi_victim must be ({len(rows)},): the victim's φ on every P row")
    phi_in, phi_out = split_in_out(phi_matrix(st, rows), st.keep)
    member = np.isin(rows, exp.split("victim").train)
    return rows, member, phi_victim, phi_in, phi_out


def online_lira_scores(
    exp: Experiment,
    victim_model: nn.Module,
    st: ReferenceStage,
    *,
    global_variance: bool = True,
    phi_victim: ArrayLike | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.int64]]:
    """Online LiRA on the victim over every P row, with the stage's references.

    Per target row: Gaussians fitted to φ of its ``K/2`` IN and ``K/2`` OUT references, score =
    log N(φ_victim; μ_in, σ_in²) − log N(φ_victim; μ_out, σ_out²)
    (:func:`wemem.attacks.lira.lira_online`), higher = member. Needs ``K >= 4``.

    Args:
        exp: the victim's experiment (its pool, labels and victim split).
        victim_model: the attacked model (e.g. the victim of the same stage and defense).
        st: :func:`reference_stage` of the same stage and defense.
        global_variance: one σ_in and one σ_out over all targets (default; module docstring).
        phi_victim: the victim's φ on every P row, when the caller has it (else computed).

    Returns:
        ``(scores, member, rows)``: ``(n_train,)`` scores, whether each row is a victim member,
        and the rows (``0..n_train-1``).
    """
    rows, member, t, phi_in, phi_out = _targets(exp, victim_model, st, phi_victim)
    return lira_online(t, phi_in, phi_out, global_variance=global_variance), member, rows


def offline_lira_scores(
    exp: Experiment, victim_model: nn.Module, st: ReferenceStage, *, global_variance: bool = True
) -> tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.int64]]:
    """Offline LiRA on the same targets as :func:`online_lira_scores`, with only each row's
    ``K/2`` OUT references (:func:`wemem.attacks.lira.lira_offline`); the same return value."""
    rows, member, t, _, phi_out = _targets(exp, victim_model, st, None)
    return lira_offline(t, phi_out, global_variance=global_variance), member, rows
