"""Figures of the strongest attacks (issue 15): ROC curves on log-log axes, the field's convention
for low-FPR attacks (Carlini et al. 2022), and TPR per mem-score decile."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from wemem.attacks.metrics import roc_curve


def roc_loglog(scores, *, attacks=None, title: str = ""):
    """One panel per attack, one ROC curve per setting, both axes logarithmic from the smallest
    FPR the non-members resolve (``1 / n_out``) to 1; the diagonal is chance.

    Args:
        scores: :class:`wemem.studies.strongest.Scores` of several settings and attacks.
        attacks: attack keys to draw, in panel order (default: those present, in order seen).
    """
    from wemem.studies.strongest import LABELS

    attacks = list(attacks or dict.fromkeys(s.attack for s in scores))
    settings = list(dict.fromkeys(s.setting for s in scores))
    colors = plt.get_cmap("tab10" if len(settings) <= 10 else "tab20")
    fig, axes = plt.subplots(
        1, len(attacks), figsize=(3.2 * len(attacks), 3.4), constrained_layout=True, squeeze=False
    )
    for ax, attack in zip(axes[0], attacks, strict=True):
        chosen = [s for s in scores if s.attack == attack]
        floor = min(1.0 / len(s.scores_out) for s in chosen)
        for s in chosen:
            fpr, tpr, _ = roc_curve(s.scores_in, s.scores_out)
            keep = fpr > 0
            ax.plot(fpr[keep], np.maximum(tpr[keep], floor), lw=1.2,
                    color=colors(settings.index(s.setting)), label=s.setting)  # fmt: skip
        ax.plot([floor, 1], [floor, 1], color="grey", ls=":", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(floor, 1)
        ax.set_ylim(floor, 1)
        ax.set_xlabel("false-positive rate")
        ax.set_title(LABELS.get(attack, attack), fontsize=9)
    axes[0][0].set_ylabel("true-positive rate")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title)
    return fig


def deciles(table: pd.DataFrame, *, attack_label: str = "", fpr: float = 0.01):
    """TPR at ``fpr`` per mem-score decile of the victim's members, one line per setting
    (:func:`wemem.studies.strongest_report.decile_table`)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.4), constrained_layout=True)
    for setting, rows in table.groupby("setting", sort=False):
        ax.plot(rows.decile, rows.tpr, marker="o", ms=3, lw=1.2, label=setting)
    ax.set_xticks(range(1, 11))
    ax.set_xlabel("mem-score decile of the victim's members (10 = most memorized)")
    ax.set_ylabel(f"TPR at {100 * fpr:g}% FPR")
    ax.set_ylim(0, max(0.05, float(np.nanmax(table.tpr)) * 1.1) if len(table) else 1)
    ax.set_title(attack_label, fontsize=9)
    ax.legend(fontsize=7)
    return fig
