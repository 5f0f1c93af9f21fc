"""The four metric-based (threshold) membership inference attacks of the paper (§6.2).

An attack scores each sample with a signal of the model's posterior (:mod:`.signals`), calibrates
thresholds on the shadow models' outputs to maximise balanced accuracy (:mod:`.threshold`), applies
them to the victim's members and non-members and reports :mod:`.metrics`.

Threshold scope, as in the official code: Conf, Entr and Mentr use one threshold per class (the
sample's true label); Hconf and Hconf-official use one global threshold. ``hconf`` is the top-1
confidence its name promises; ``hconf_official`` is the true-class confidence the official code
actually thresholds (spec §9.9), accepted in addition to :data:`METRIC_ATTACKS`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from wemem.attacks.metrics import accuracy, balanced_accuracy, roc_auc, tpr_at_fpr
from wemem.attacks.signals import SIGNALS
from wemem.attacks.threshold import best_threshold, per_class_thresholds
from wemem.errors import ParamsError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["METRIC_ATTACKS", "PER_CLASS", "metric_attack", "run_metric_attacks"]

METRIC_ATTACKS = ("conf", "entr", "mentr", "hconf")
"""The paper's four metric-based attacks (lower-case paper names)."""

PER_CLASS = {"conf": True, "entr": True, "mentr": True, "hconf": False, "hconf_official": False}
"""Whether each accepted attack calibrates one threshold per class (else one global threshold)."""

_SCALAR_KEYS = (
    "name",
    "threshold_scope",
    "balanced_accuracy",
    "accuracy",
    "tpr",
    "tnr",
    "auc",
    "tpr_at_1fpr",
    "tpr_at_01fpr",
    "shadow_balanced_accuracy",
    "n_in",
    "n_out",
)

_Outputs = tuple[NDArray[np.float64], NDArray[np.int64]]
"""``(probs (n, C) float64, labels (n,) int64)`` of one model (or pooled models) on one side."""


def _outputs(data: Any, name: str) -> _Outputs:
    """``(probs, labels)`` of numpy arrays or torch tensors → ``(n, C)`` float64, ``(n,)`` int64."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(f"{name} must be a (probs, labels) pair; got {type(data).__name__}")
    probs, labels = (x.detach().cpu().numpy() if hasattr(x, "detach") else x for x in data)
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if probs.ndim != 2 or probs.shape[0] == 0:
        raise ValueError(f"{name} probs must have shape (n, C) with n > 0; got {probs.shape}")
    if labels.shape != (probs.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{name} labels must be ({probs.shape[0]},) integers; got {labels.shape} {labels.dtype}"
        )
    return probs, labels.astype(np.int64)


def _check_name(name: str) -> None:
    if name not in PER_CLASS:
        allowed = ", ".join(PER_CLASS)
        raise ParamsError(f"metric attack name {name!r} is unknown; allowed: {allowed}")


def _four_sets(
    shadow_in: Any, shadow_out: Any, target_in: Any, target_out: Any
) -> tuple[dict[str, _Outputs], int]:
    """The four checked ``(probs, labels)`` sets keyed ``shadow_in`` ... ``target_out``, and their
    common number of classes C."""
    data = {
        key: _outputs(value, key)
        for key, value in (
            ("shadow_in", shadow_in),
            ("shadow_out", shadow_out),
            ("target_in", target_in),
            ("target_out", target_out),
        )
    }
    widths = {key: probs.shape[1] for key, (probs, _) in data.items()}
    if len(set(widths.values())) != 1:
        raise ValueError(f"all inputs must have the same number of classes; got {widths}")
    return data, widths["shadow_in"]


def _calibrate(
    name: str,
    scores: dict[str, NDArray[np.float64]],
    labels: dict[str, NDArray[np.int64]],
    num_classes: int,
) -> tuple[NDArray[np.float64], dict[str, NDArray[np.float64]]]:
    """Thresholds fitted on the shadow scores (C per class, or one global) and, per set, the
    ``(n,)`` threshold of each sample (its class's, or the global one)."""
    if PER_CLASS[name]:
        thresholds = per_class_thresholds(
            scores["shadow_in"],
            labels["shadow_in"],
            scores["shadow_out"],
            labels["shadow_out"],
            num_classes=num_classes,
        )
        t_of = {key: thresholds[lab] for key, lab in labels.items()}
    else:
        t, _ = best_threshold(scores["shadow_in"], scores["shadow_out"])
        thresholds = np.array([t])
        t_of = {key: np.full(lab.shape, t) for key, lab in labels.items()}
    return thresholds, t_of


def metric_attack(
    name: str,
    shadow_in: Any,
    shadow_out: Any,
    target_in: Any,
    target_out: Any,
) -> dict[str, Any]:
    """Run one metric-based attack: calibrate on the shadows, evaluate on the victim.

    Args:
        name: one of :data:`METRIC_ATTACKS` or ``"hconf_official"``.
        shadow_in, shadow_out: ``(probs (n, C) float, labels (n,) int)`` of all shadow models,
            pooled, on their members / non-members. Numpy arrays or torch tensors.
        target_in, target_out: the same for the victim's members / non-members.

    Returns:
        A dict with ``name``; ``threshold_scope`` (``"per_class"`` or ``"global"``);
        ``balanced_accuracy`` ½(TPR + TNR) pooled over all victim members / non-members (the
        paper's figure); ``accuracy`` (plain, on the imbalanced victim set); ``tpr``; ``tnr``;
        ``auc``; ``tpr_at_1fpr``; ``tpr_at_01fpr``; ``thresholds`` (list, C entries per class or
        one global); ``shadow_balanced_accuracy`` (same thresholds on the shadow data);
        ``n_in``; ``n_out``; and ``scores_in`` / ``scores_out``, ``(n,)`` float arrays of the
        victim's *calibrated* scores ``s_i - t_{y_i}`` (``s_i - t`` for global attacks).

    AUC and TPR@FPR rank the calibrated scores, so the ROC curve passes through the attack's own
    operating point at threshold 0 (``s_i - t_{y_i} >= 0`` iff predicted member). For a
    per-class attack this differs from ranking the raw signal, which would ignore the per-class
    calibration; for a global attack it is the same ranking.

    Raises:
        ParamsError: unknown ``name``.
        ValueError: malformed arrays (shapes, class counts).
    """
    _check_name(name)
    data, num_classes = _four_sets(shadow_in, shadow_out, target_in, target_out)

    signal = SIGNALS[name]
    scores = {key: signal(probs, labels) for key, (probs, labels) in data.items()}
    labels = {key: lab for key, (_, lab) in data.items()}
    thresholds, t_of = _calibrate(name, scores, labels, num_classes)

    # t_of[key]: (n,) threshold of each sample (its class's, or the global one).
    pred = {key: scores[key] >= t_of[key] for key in data}
    calibrated_in = scores["target_in"] - t_of["target_in"]
    calibrated_out = scores["target_out"] - t_of["target_out"]
    return {
        "name": name,
        "threshold_scope": "per_class" if PER_CLASS[name] else "global",
        "balanced_accuracy": balanced_accuracy(pred["target_in"], pred["target_out"]),
        "accuracy": accuracy(pred["target_in"], pred["target_out"]),
        "tpr": float(pred["target_in"].mean()),
        "tnr": float((~pred["target_out"]).mean()),
        "auc": roc_auc(calibrated_in, calibrated_out),
        "tpr_at_1fpr": tpr_at_fpr(calibrated_in, calibrated_out, 0.01),
        "tpr_at_01fpr": tpr_at_fpr(calibrated_in, calibrated_out, 0.001),
        "thresholds": [float(x) for x in thresholds],
        "shadow_balanced_accuracy": balanced_accuracy(pred["shadow_in"], pred["shadow_out"]),
        "n_in": int(calibrated_in.size),
        "n_out": int(calibrated_out.size),
        "scores_in": calibrated_in,
        "scores_out": calibrated_out,
    }


def run_metric_attacks(
    names: Iterable[str],
    shadow_in: Any,
    shadow_out: Any,
    target_in: Any,
    target_out: Any,
) -> pd.DataFrame:
    """Run several metric attacks on the same data; one row per attack, scalar columns only.

    Columns: ``name, threshold_scope, balanced_accuracy, accuracy, tpr, tnr, auc, tpr_at_1fpr,
    tpr_at_01fpr, shadow_balanced_accuracy, n_in, n_out`` (see :func:`metric_attack`). All names
    are checked before any attack runs.
    """
    import pandas as pd  # imported here so that `import wemem.attacks` stays light

    names = list(names)
    for name in names:
        _check_name(name)
    rows = []
    for name in names:
        result = metric_attack(name, shadow_in, shadow_out, target_in, target_out)
        rows.append({key: result[key] for key in _SCALAR_KEYS})
    return pd.DataFrame(rows, columns=list(_SCALAR_KEYS))
