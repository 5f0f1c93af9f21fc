"""Beyond the paper (issue 15): the strongest attacks, RMIA and LiRA offline and online, against a
victim pruned with a defense, every reference model pruned with the same defense (adaptive).

Four attacks, each a score per target sample (higher = member):

* **RMIA (offline)** (Zarifzadeh et al., ICML 2024; :mod:`wemem.attacks.rmia`): references =
  the adaptive shadows, every one OUT for every target; the offline coefficient ``a`` is fitted
  on the shadows alone (:func:`~wemem.attacks.rmia.fit_offline_a`, each shadow a pseudo-target of
  the others), never on the victim (with one shadow there is nothing to fit: a = 1, the plain
  OUT mean, recorded as not fitted); population z = the victim's dev rows (non-members of the
  victim and of every shadow: shadows train on the other half of P).
* **LiRA (offline)** (Carlini et al., S&P 2022): the same shadows, a global variance
  (:func:`wemem.attacks.lira.lira_offline`), as notebook 08's LiRA row.
* **LiRA (online)**: K reference models trained on balanced random halves of P and pruned like
  the victim (:mod:`wemem.experiment.references`), per-sample IN and OUT Gaussians.
* **RMIA (online)**: the same K references, Pr(x) = their mean; population z = the victim's
  test rows in T (no model trained on them and none selected its epochs on them).

Targets. The offline attacks read the paper's split (the victim's members against its
non-members, as every attack of notebook 08); the online ones every row of P (the victim's
members against the rest of P, the rows the references can be IN for). Each table row says which.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from wemem.attacks.lira import lira_offline, phi
from wemem.attacks.posteriors import posteriors
from wemem.attacks.rmia import fit_offline_a, rmia_scores, true_class_prob
from wemem.defenses.config import DefenseConfig
from wemem.errors import ParamsError
from wemem.experiment import adaptive, references
from wemem.experiment.replicate import Experiment
from wemem.training.device import to_device

__all__ = ["ATTACKS", "LABELS", "TARGETS", "Scores", "config_scores", "stage_scores"]

#: The strongest attacks, in the order of every table.
ATTACKS = ("rmia_offline", "lira_offline", "lira_online", "rmia_online")
LABELS = {
    "rmia_offline": "RMIA (offline)",
    "lira_offline": "LiRA (offline)",
    "lira_online": "LiRA (online)",
    "rmia_online": "RMIA (online)",
}
TARGETS = {
    "rmia_offline": "victim split, shadows OUT",
    "lira_offline": "victim split, shadows OUT",
    "lira_online": "all of P, K references",
    "rmia_online": "all of P, K references",
}


@dataclass
class Scores:
    """One attack's scores on the victim's members (``scores_in``, pool rows ``rows_in``) and
    non-members; ``extra`` holds what the attack fitted (RMIA's ``a``) or was given."""

    setting: str
    method: str
    attack: str
    scores_in: np.ndarray
    scores_out: np.ndarray
    rows_in: np.ndarray
    rows_out: np.ndarray
    extra: dict = field(default_factory=dict)


def _signals(
    models: list[nn.Module], exp: Experiment, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(S, n)`` true-class probabilities (RMIA) and ``(S, n)`` φ (LiRA) of each model on pool
    ``rows``, from one forward pass per model (float32 posteriors,
    :func:`wemem.attacks.posteriors.posteriors`); ``x[rows]`` moves once to each model's device."""
    rows = np.asarray(rows, dtype=np.int64)
    y = exp.pool.y.cpu().numpy()[rows]
    picked = exp.pool.x[torch.as_tensor(rows, device=exp.pool.x.device)]
    inputs: dict[torch.device, torch.Tensor] = {}
    p_true, phis = np.empty((len(models), len(rows))), np.empty((len(models), len(rows)))
    for s, model in enumerate(models):
        dev = next(model.parameters()).device
        if dev not in inputs:
            inputs[dev] = to_device(picked, dev)
        p = posteriors(model, inputs[dev], torch.arange(len(rows), device=dev))
        p = p.float().cpu().numpy()
        p_true[s], phis[s] = true_class_prob(p, y), phi(p, y)
    return p_true, phis


def _true_probs(models: list[nn.Module], exp: Experiment, rows: np.ndarray) -> np.ndarray:
    """``(S, n)`` true-class probabilities of each model on pool ``rows`` (:func:`_signals`)."""
    return _signals(models, exp, rows)[0]


def _shadow_membership(exp: Experiment, roles: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The rows any shadow was trained or evaluated on, and ``(S, n)`` whether each shadow
    trained on each of them."""
    splits = [exp.split(r) for r in roles]
    rows = np.unique(np.concatenate([np.concatenate([sp.train, sp.test]) for sp in splits]))
    return rows, np.stack([np.isin(rows, sp.train) for sp in splits])


def offline_scores(
    exp: Experiment, st: adaptive.Stage, *, gamma: float, setting: str, method: str
) -> list[Scores]:
    """RMIA (offline, ``a`` fitted on the shadows) and LiRA (offline) on the paper's split."""
    v = st.victim
    victim, shadow_roles = st.models["victim"], st.roles[1:]
    shadows = [st.models[r] for r in shadow_roles]
    rows_x = np.concatenate([v.rows_in, v.rows_out])
    n_in = len(v.rows_in)
    z = np.asarray(exp.split("victim").dev, dtype=np.int64)
    p_ref_z = _true_probs(shadows, exp, z)
    a, fitted = 1.0, False  # one shadow: nothing to fit on; a = 1 is the plain OUT mean
    if len(shadows) >= 2:
        sh_rows, member = _shadow_membership(exp, shadow_roles)
        probs = _true_probs(shadows, exp, sh_rows)
        a, fitted = fit_offline_a(probs, member, gamma=gamma, probs_z=p_ref_z).a, True
    probs_x = np.concatenate([v.probs_in, v.probs_out])  # the victim's, from the cache
    labels_x = np.concatenate([v.labels_in, v.labels_out])
    p_ref_x, phi_ref_x = _signals(shadows, exp, rows_x)  # one pass per shadow for both attacks
    rmia = rmia_scores(
        true_class_prob(probs_x, labels_x),
        p_ref_x,
        _true_probs([victim], exp, z)[0],
        p_ref_z,
        gamma=gamma,
        a=a,
    )
    lira = lira_offline(phi(probs_x, labels_x), phi_ref_x)
    base = dict(setting=setting, method=method, rows_in=v.rows_in, rows_out=v.rows_out)
    return [
        Scores(attack="rmia_offline", scores_in=rmia[:n_in], scores_out=rmia[n_in:],
               extra={"a": a, "a_fitted": fitted, "gamma": gamma, "shadows": len(shadows)}, **base),
        Scores(attack="lira_offline", scores_in=lira[:n_in], scores_out=lira[n_in:],
               extra={"shadows": len(shadows)}, **base),
    ]  # fmt: skip


def online_scores(
    exp: Experiment,
    victim: nn.Module,
    ref: references.ReferenceStage,
    *,
    gamma: float,
    setting: str,
    method: str,
) -> list[Scores]:
    """LiRA (online) and RMIA (online) over every P row, with the K references of ``ref``."""
    rows = np.arange(exp.pool.n_train, dtype=np.int64)
    p_victim, phi_victim = _signals([victim], exp, rows)  # one pass over P for both attacks
    lira, member, rows = references.online_lira_scores(exp, victim, ref, phi_victim=phi_victim[0])
    sp = exp.split("victim")
    z = np.sort(sp.test[sp.test >= exp.pool.n_train]).astype(np.int64)
    if not len(z):
        raise ParamsError("rmia_online: the victim has no test rows in T to serve as population")
    ref_models = [ref.models[r] for r in ref.roles]
    rmia = rmia_scores(
        p_victim[0],
        references.signal_matrix(ref, rows, true_class_prob),
        _true_probs([victim], exp, z)[0],
        _true_probs(ref_models, exp, z),
        gamma=gamma,
    )
    extra = {"references": ref.n_refs, "population": len(z)}
    base = dict(setting=setting, method=method, rows_in=rows[member], rows_out=rows[~member])
    return [
        Scores(attack="lira_online", scores_in=lira[member], scores_out=lira[~member],
               extra=extra, **base),
        Scores(attack="rmia_online", scores_in=rmia[member], scores_out=rmia[~member],
               extra={**extra, "gamma": gamma}, **base),
    ]  # fmt: skip


def config_scores(
    exp: Experiment, config: DefenseConfig, *, n_refs: int, gamma: float = 1.0
) -> list[Scores]:
    """The four attacks (:data:`ATTACKS`) against the victim pruned with ``config``'s defense
    (its shadows and ``n_refs`` references pruned with the same defense and settings)."""
    st = adaptive.defended_stage(exp, config.name, one_shot=config.one_shot, **config.settings)
    ref = references.reference_stage(
        exp, config.name, n_refs=n_refs, one_shot=config.one_shot, **config.settings
    )
    exp_d = exp.for_defense(config.name)
    method = config.labels.get("method", config.setting)
    kw = dict(gamma=gamma, setting=config.setting, method=method)
    return [
        *offline_scores(exp_d, st, **kw),
        *online_scores(exp_d, st.models["victim"], ref, **kw),
    ]


def stage_scores(exp: Experiment, stage: str, *, n_refs: int, gamma: float = 1.0) -> list[Scores]:
    """The four attacks against the victim at a Base stage (``dense``, ``one-shot``,
    ``iterative``; notebook 08), references at the same stage."""
    st = adaptive.stage(exp, stage)
    ref = references.reference_stage(exp, "base", n_refs=n_refs, stage=stage)
    kw = dict(gamma=gamma, setting=stage, method=stage)
    return [*offline_scores(exp, st, **kw), *online_scores(exp, st.models["victim"], ref, **kw)]
