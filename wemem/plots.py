"""Figures, drawn from tidy tables (numbers flow from files; changing a plot never retrains)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from wemem.registry import label

STAGE_ORDER = ["dense", "one-shot", "iterative"]
STAGE_COLORS = {"dense": "#4c72b0", "one-shot": "#dd8452", "iterative": "#c44e52"}


def leakage_per_round(attacks: pd.DataFrame, models: pd.DataFrame, *, metric: str = "auc"):
    """Left: victim test accuracy per iterative round; right: each metric attack's ``metric`` per
    round, with dense and one-shot as dashed reference lines (mean over seeds, bands = ±1 std)."""
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True)
    it = models[models.stage == "iterative"]
    g = it.groupby("round")["test_acc"].agg(["mean", "std"]).fillna(0)
    ax0.plot(g.index, g["mean"], "o-", color=STAGE_COLORS["iterative"], label="iterative")
    ax0.fill_between(
        g.index,
        g["mean"] - g["std"],
        g["mean"] + g["std"],
        alpha=0.2,
        color=STAGE_COLORS["iterative"],
    )
    for stage in ("dense", "one-shot"):
        ax0.axhline(
            models[models.stage == stage]["test_acc"].mean(),
            ls="--",
            color=STAGE_COLORS[stage],
            label=stage,
        )
    sp = it.groupby("round")["sparsity"].first()
    ax0.set_xticks(sp.index, [f"{k}\n{s:.0%}" for k, s in sp.items()])
    ax0.set_xlabel("pruning round\n(cumulative sparsity)")
    ax0.set_ylabel("victim test accuracy")
    ax0.legend(fontsize=8)

    it_a = attacks[attacks.stage == "iterative"]
    palette = sns.color_palette("tab10", n_colors=attacks.attack.nunique())
    for color, (name, grp) in zip(palette, it_a.groupby("attack", sort=False), strict=False):
        m = grp.groupby("round")[metric].agg(["mean", "std"]).fillna(0)
        ax1.plot(m.index, m["mean"], "o-", color=color, label=label(name))
        ax1.fill_between(
            m.index, m["mean"] - m["std"], m["mean"] + m["std"], alpha=0.15, color=color
        )
    for stage, ls in (("dense", "--"), ("one-shot", ":")):
        ax1.axhline(
            attacks[attacks.stage == stage][metric].mean(),
            ls=ls,
            color="grey",
            label=f"{stage} (mean of attacks)",
        )
    ax1.set_xticks(sp.index, [str(k) for k in sp.index])
    ax1.set_xlabel("pruning round")
    ax1.set_ylabel(f"attack {metric.replace('_', ' ')}")
    ax1.legend(fontsize=8, ncol=2)
    return fig


def stage_comparison(attacks: pd.DataFrame, *, metric: str = "auc"):
    """Bars: each attack's ``metric`` on the dense, one-shot and iteratively pruned victim."""
    fig, ax = plt.subplots(figsize=(7, 3.6), constrained_layout=True)
    df = attacks.assign(Attack=attacks.attack.map(label))
    sns.barplot(
        data=df,
        x="Attack",
        y=metric,
        hue="stage",
        hue_order=STAGE_ORDER,
        palette=STAGE_COLORS,
        errorbar="sd",
        ax=ax,
    )
    lo = max(0.0, float(df[metric].min()) - 0.1)
    ax.set_ylim(lo, min(1.0, float(df[metric].max()) + 0.05))
    ax.axhline(0.5, color="black", lw=0.8)
    ax.set_ylabel(f"attack {metric.replace('_', ' ')}")
    ax.legend(title=None, fontsize=8)
    return fig


def flipped_vs_clean(attacks: pd.DataFrame, *, attack: str = "conf"):
    """AUC of one attack on label-noise (flipped) vs clean samples, per stage."""
    df = attacks.loc[attacks.attack == attack, ["stage", "seed", "auc_flipped", "auc_clean"]].melt(
        id_vars=["stage", "seed"], var_name="group", value_name="auc"
    )
    df["group"] = df["group"].map({"auc_flipped": "flipped labels", "auc_clean": "clean labels"})
    fig, ax = plt.subplots(figsize=(5.5, 3.4), constrained_layout=True)
    sns.barplot(data=df, x="stage", y="auc", hue="group", order=STAGE_ORDER, errorbar="sd", ax=ax)
    ax.axhline(0.5, color="black", lw=0.8)
    ax.set_ylim(0.4, 1.0)
    ax.set_ylabel(f"{label(attack)} AUC")
    ax.legend(title=None, fontsize=8)
    return fig
