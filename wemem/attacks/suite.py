"""Run any set of membership inference attacks on one victim with one set of shadows.

One call, one table: the metric (threshold) attacks, the classifier attacks and offline LiRA share
the victim's and shadows' per-sample outputs, and each reports the same columns, so that tables and
figures compare them directly. Which number the paper reports differs by family (spec §9.10):
balanced accuracy for the metric attacks, plain accuracy on the imbalanced victim set (last epoch,
no selection) for the classifier attacks. LiRA is not in the paper; its row leads with TPR at 1%
FPR, the figure its authors report, and has no accuracy (it has no calibrated decision threshold).

Heavy imports (torch, pandas) happen inside :func:`run`, so ``import wemem.attacks`` stays light.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from wemem.attacks.metric import metric_attack
from wemem.attacks.metrics import accuracy, balanced_accuracy, roc_auc, roc_curve, tpr_at_fpr
from wemem.errors import ParamsError

if TYPE_CHECKING:
    import pandas as pd
    import torch
    from torch import nn

__all__ = ["ALL_ATTACKS", "CLASSIFIER_ATTACKS", "COLUMNS", "FAMILY", "SENSITIVITY_ATTACKS", "run"]

CLASSIFIER_ATTACKS = ("nn", "top3_nn", "cl_nn", "samia", "nn_sens", "shokri")
"""The six classifier attacks: the paper's four released ones plus this project's readings of the
two it names but never released (``nn_sens``, ``shokri``; see :mod:`.classifier` and
:mod:`.shokri`)."""

ALL_ATTACKS = ("conf", "entr", "mentr", "hconf", "hconf_official", *CLASSIFIER_ATTACKS, "lira")
"""Every name :func:`run` accepts."""

SENSITIVITY_ATTACKS = ("samia", "nn_sens")
"""Attacks whose features include the posterior's sensitivity (:mod:`.sensitivity`)."""

FAMILY = {name: "metric" for name in ALL_ATTACKS[:5]} | {
    **{name: "classifier" for name in CLASSIFIER_ATTACKS},
    "lira": "lira",
}

COLUMNS = (
    "attack",
    "family",
    "paper_metric_name",
    "paper_metric",
    "balanced_accuracy",
    "accuracy",
    "auc",
    "tpr_at_1fpr",
    "tpr_at_01fpr",
    "n_in",
    "n_out",
)

log = logging.getLogger(__name__)


def _check_names(names: Iterable[str]) -> list[str]:
    names = list(names)
    if not names:
        raise ParamsError(
            f"names: got an empty list; allowed: a subset of {', '.join(ALL_ATTACKS)}"
        )
    for name in names:
        if name not in FAMILY:
            raise ParamsError(f"attack name {name!r} is unknown; allowed: {', '.join(ALL_ATTACKS)}")
    if len(set(names)) != len(names):
        raise ParamsError(f"names: got duplicates in {names}; each attack may appear once")
    return names


def _has_sens(obj: Any) -> bool:
    return getattr(obj, "sens_in", None) is not None and getattr(obj, "sens_out", None) is not None


def _sens_of(
    obj: Any, model: nn.Module | None, x: torch.Tensor | None, *, seed: int
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """``(sens_in, sens_out)`` of one model: stored on ``obj``, else computed in one call."""
    if _has_sens(obj):
        return np.asarray(obj.sens_in, np.float32), np.asarray(obj.sens_out, np.float32)
    from wemem.attacks.sensitivity import sensitivity

    rows = np.concatenate([np.asarray(obj.rows_in), np.asarray(obj.rows_out)])
    sens = sensitivity(model, x, rows, seed=seed).cpu().numpy()
    return sens[: len(obj.rows_in)], sens[len(obj.rows_in) :]


def _row(
    name: str, s_in: NDArray, s_out: NDArray, pred_in: NDArray | None, pred_out: NDArray | None
) -> dict[str, Any]:
    family = FAMILY[name]
    ba = balanced_accuracy(pred_in, pred_out) if pred_in is not None else float("nan")
    acc = accuracy(pred_in, pred_out) if pred_in is not None else float("nan")
    tpr1 = tpr_at_fpr(s_in, s_out, 0.01)
    paper = {
        "metric": ("balanced accuracy", ba),
        "classifier": ("accuracy", acc),
        "lira": ("tpr at 1% fpr", tpr1),
    }[family]
    return {
        "attack": name,
        "family": family,
        "paper_metric_name": paper[0],
        "paper_metric": paper[1],
        "balanced_accuracy": ba,
        "accuracy": acc,
        "auc": roc_auc(s_in, s_out),
        "tpr_at_1fpr": tpr1,
        "tpr_at_01fpr": tpr_at_fpr(s_in, s_out, 0.001),
        "n_in": int(len(s_in)),
        "n_out": int(len(s_out)),
    }


def _checked(
    names: Iterable[str],
    shadows: Sequence[Any],
    shadow_models: Sequence[nn.Module] | None,
    x: torch.Tensor | None,
    train_kw: dict[str, Any],
) -> tuple[list[str], list[Any], Any]:
    """Validate :func:`run`'s arguments; return ``(names, shadows, device)``.

    ``device`` is popped from ``train_kw``, which then holds only attack-model training keywords.
    """
    from wemem.attacks.classifier import train_settings

    names = _check_names(names)
    shadows = list(shadows)
    if not shadows:
        raise ParamsError("shadows: got an empty list; at least one shadow model's outputs needed")
    device = train_kw.pop("device", None)
    train_settings(**train_kw)
    if shadow_models is not None and len(shadow_models) != len(shadows):
        raise ParamsError(
            f"shadow_models: got {len(shadow_models)} models for {len(shadows)} shadows' outputs"
        )
    if "lira" in names and (shadow_models is None or x is None or len(shadow_models) < 2):
        raise ParamsError(
            "lira needs shadow_models (at least 2) and x, to compute φ of each shadow model on "
            "the victim's rows"
        )
    return names, shadows, device


def _pooled(shadows: Sequence[Any], side: str, extra: list | None = None) -> tuple:
    """``(probs, labels)`` of all shadows on ``side`` (``"in"`` / ``"out"``), concatenated, plus
    the concatenated ``extra`` arrays (sensitivities) as a third entry when given."""
    probs = np.concatenate([getattr(s, f"probs_{side}") for s in shadows])
    labels = np.concatenate([getattr(s, f"labels_{side}") for s in shadows])
    return (probs, labels) if extra is None else (probs, labels, np.concatenate(extra))


def _with_sens(
    victim: Any,
    shadows: Sequence[Any],
    victim_model: nn.Module | None,
    shadow_models: Sequence[nn.Module] | None,
    x: torch.Tensor | None,
    *,
    seed: int,
) -> tuple[tuple, tuple, tuple, tuple]:
    """``(shadow_in, shadow_out, victim_in, victim_out)`` as ``(probs, labels, sens)`` triples,
    shadows pooled; sensitivities stored or computed (victim ``seed``, shadow i ``seed + 1 + i``).
    """
    models = [victim_model, *(shadow_models or [None] * len(shadows))]
    for who, obj, model in zip(
        ["victim", *(f"shadows[{i}]" for i in range(len(shadows)))],
        [victim, *shadows],
        models,
        strict=True,
    ):
        if not _has_sens(obj) and (model is None or x is None):
            raise ParamsError(
                f"{who}: no sens_in/sens_out and no model and x to compute them; the "
                f"attacks {', '.join(SENSITIVITY_ATTACKS)} need either"
            )
    vs = _sens_of(victim, victim_model, x, seed=seed)
    ss = [_sens_of(s, models[i + 1], x, seed=seed + 1 + i) for i, s in enumerate(shadows)]
    v3_in = (victim.probs_in, victim.labels_in, vs[0])
    v3_out = (victim.probs_out, victim.labels_out, vs[1])
    sh3_in = _pooled(shadows, "in", [s[0] for s in ss])
    sh3_out = _pooled(shadows, "out", [s[1] for s in ss])
    return sh3_in, sh3_out, v3_in, v3_out


def _lira_scores(
    victim: Any, shadow_models: Sequence[nn.Module], x: torch.Tensor
) -> tuple[NDArray, NDArray]:
    """Offline LiRA z-scores of the victim's ``(members (n_in,), non-members (n_out,))``."""
    from wemem.attacks.lira import lira_offline, phi, shadow_phi_on

    n_in = len(victim.labels_in)
    rows_all = np.concatenate([victim.rows_in, victim.rows_out])
    labels_all = np.concatenate([victim.labels_in, victim.labels_out])
    phi_t = phi(np.concatenate([victim.probs_in, victim.probs_out]), labels_all)
    phi_s = shadow_phi_on(shadow_models, x, rows_all, labels_all)
    z = lira_offline(phi_t, phi_s, global_variance=True)
    return z[:n_in], z[n_in:]


def _classifier_scores(
    name: str, plain: tuple, sens: tuple | None, **kw: Any
) -> tuple[NDArray, NDArray]:
    """Member probabilities of the victim's members and non-members from classifier attack
    ``name``; ``plain`` / ``sens`` are ``(shadow_in, shadow_out, victim_in, victim_out)`` without
    / with sensitivities (``sens`` is needed only by :data:`SENSITIVITY_ATTACKS`)."""
    from wemem.attacks.classifier import mlp_attack
    from wemem.attacks.samia import samia_attack
    from wemem.attacks.shokri import shokri_attack

    if name == "samia":
        return samia_attack(*sens, **kw)
    if name == "nn_sens":
        return mlp_attack(name, *sens, **kw)
    if name == "shokri":
        return shokri_attack(*plain, **kw)
    return mlp_attack(name, *plain, **kw)


def run(
    names: Iterable[str],
    victim: Any,
    shadows: Sequence[Any],
    *,
    victim_model: nn.Module | None = None,
    shadow_models: Sequence[nn.Module] | None = None,
    x: torch.Tensor | None = None,
    seed: int = 0,
    **train_kw: Any,
) -> pd.DataFrame:
    """Run the attacks ``names`` against ``victim``, calibrated / trained on ``shadows``.

    Args:
        names: a subset of :data:`ALL_ATTACKS`, run in the given order.
        victim: one model's outputs with ``probs_in`` ``(n_in, C)``, ``labels_in`` ``(n_in,)``,
            ``rows_in`` ``(n_in,)`` (rows of ``x``), the same ``*_out`` for non-members, and
            optionally ``sens_in`` / ``sens_out`` ``(n, C)`` (e.g. a
            :class:`wemem.experiment.replicate.ModelOutputs`).
        shadows: the shadow models' outputs, same attributes; pooled for calibration / training.
        victim_model, shadow_models: the models themselves (``shadow_models[i]`` produced
            ``shadows[i]``), needed to compute missing sensitivities (``samia``, ``nn_sens``) and
            for ``lira`` (φ of every shadow model on the victim's rows, offline LiRA).
        x: the inputs ``rows_*`` index (the pool), needed with the models.
        seed: seeds sensitivity noise (victim ``seed``, shadow i ``seed + 1 + i``) and attack
            models.
        **train_kw: attack-model training overrides (``epochs``, ``milestones``, ``lr``,
            ``momentum``, ``weight_decay``, ``batch_size``, ``progress``) and ``device``.

    Returns:
        One row per attack with :data:`COLUMNS`. Metric attacks score with their calibrated
        signal (member iff ≥ 0); classifier attacks with the member probability (member iff
        ≥ 0.5); LiRA with the offline z-score (no decision rule: accuracies are NaN).
        ``df.attrs["roc"][name] = (fpr, tpr)`` and ``df.attrs["scores"][name] = (scores_in,
        scores_out)``, the victim's per-sample scores in ``rows_in`` / ``rows_out`` order.

    Raises:
        ParamsError: unknown or duplicate names, no shadows, bad training keywords, or models /
            ``x`` missing where sensitivity or LiRA needs them.
    """
    import pandas as pd

    names, shadows, device = _checked(names, shadows, shadow_models, x, train_kw)
    v_in, v_out = (victim.probs_in, victim.labels_in), (victim.probs_out, victim.labels_out)
    sh_in, sh_out = _pooled(shadows, "in"), _pooled(shadows, "out")
    sens = None
    if any(n in SENSITIVITY_ATTACKS for n in names):
        sens = _with_sens(victim, shadows, victim_model, shadow_models, x, seed=seed)

    rows, rocs, scores = [], {}, {}
    for name in names:
        start = time.perf_counter()
        family = FAMILY[name]
        pred_in = pred_out = None
        if family == "metric":
            res = metric_attack(name, sh_in, sh_out, v_in, v_out)
            s_in, s_out = res["scores_in"], res["scores_out"]
            pred_in, pred_out = s_in >= 0, s_out >= 0
        elif family == "lira":
            s_in, s_out = _lira_scores(victim, shadow_models, x)
        else:
            kw = {"seed": seed, "device": device, **train_kw}
            s_in, s_out = _classifier_scores(name, (sh_in, sh_out, v_in, v_out), sens, **kw)
            pred_in, pred_out = s_in >= 0.5, s_out >= 0.5
        rows.append(_row(name, s_in, s_out, pred_in, pred_out))
        fpr, tpr, _ = roc_curve(s_in, s_out)
        rocs[name], scores[name] = (fpr, tpr), (np.asarray(s_in), np.asarray(s_out))
        log.info("attack %s: auc %.4f (%.1f s)", name, rows[-1]["auc"], time.perf_counter() - start)
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    df.attrs["roc"], df.attrs["scores"] = rocs, scores
    return df
