"""Figures of the defense notebooks (03–10): the paper's Fig. 5–9 layouts, λr, ε and time curves."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from wemem.names import label
from wemem.report.palettes import palette as colours


def window_accuracy(means: pd.DataFrame, *, title: str = ""):
    """Fig. 5: test accuracy per window width; four bars (order × step) per width; Base and the
    mean over settings as horizontal lines."""
    import seaborn as sns  # here: it imports scipy.stats (~2 s per kernel)

    base = means[means.setting == "Base"].test_acc.iloc[0]
    w = means[(means.setting != "Base") & means.order.isin(["H2L", "L2H"])].copy()
    w["setting_kind"] = w.order.map({"H2L": "H→L", "L2H": "L→H"}) + ", s " + w.step_size
    w["width_label"] = [
        f"w={int(a)}\n({b:.2f}·n_c)" for a, b in zip(w.width, w.width_fraction, strict=True)
    ]
    w = w.sort_values("width_fraction", ascending=False)
    fig, ax = plt.subplots(figsize=(6.5, 3.6), constrained_layout=True)
    sns.barplot(
        data=w,
        x="width_label",
        y="test_acc",
        hue="setting_kind",
        ax=ax,
        hue_order=["H→L, s small", "H→L, s large", "L→H, s small", "L→H, s large"],
    )
    ax.axhline(base, color="black", lw=1, label="Base")
    ax.axhline(w.test_acc.mean(), color="grey", ls="--", lw=1, label="mean over settings")
    lo = min(w.test_acc.min(), base)
    ax.set_ylim(max(0, lo - 0.05), min(1, max(w.test_acc.max(), base) + 0.03))
    ax.set_xlabel("window width")
    ax.set_ylabel("victim test accuracy")
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2)
    return fig


def window_attacks(table: pd.DataFrame, *, metric: str = "paper_metric", title: str = ""):
    """Fig. 6: attack accuracy per attack, one marker per (w, s) setting, one panel per order;
    Base as black crosses."""
    orders = [o for o in ("H2L", "L2H") if o in set(table.order)]
    fig, axes = plt.subplots(
        1,
        len(orders),
        figsize=(5.2 * len(orders), 3.8),
        squeeze=False,
        constrained_layout=True,
        sharey=True,
    )
    attacks = list(dict.fromkeys(table.attack))
    xs = np.arange(len(attacks))
    base = table[table.setting == "Base"].set_index("attack")[metric].reindex(attacks)
    for ax, order in zip(axes[0], orders, strict=True):
        sub = table[table.order == order]
        settings = list(dict.fromkeys(sub.setting))
        palette = colours("viridis", len(settings))
        for j, (color, s) in enumerate(zip(palette, settings, strict=True)):
            vals = sub[sub.setting == s].set_index("attack")[metric].reindex(attacks)
            off = (j - len(settings) / 2) * 0.05
            ax.scatter(xs + off, vals, color=color, s=18, label=s.split(") ")[-1])
        ax.scatter(xs, base, marker="x", color="black", s=40, label="Base")
        ax.set_xticks(xs, [label(a) for a in attacks], rotation=40, ha="right")
        ax.set_title(f"{title} {'H→L' if order == 'H2L' else 'L→H'}".strip())
        ax.set_ylabel("attack accuracy (paper's figure)")
        ax.legend(fontsize=6, ncol=2)
    return fig


def lambda_curves(means: pd.DataFrame):
    """RMR: test accuracy and mean attack accuracy against λr, Base as dashed lines."""
    base = means[means.setting == "Base"].iloc[0]
    r = means[means.method == "RMR"].sort_values("lambda_r")
    fig, ax = plt.subplots(figsize=(5, 3.4), constrained_layout=True)
    ax.plot(r.lambda_r, r.test_acc, "o-", label="test accuracy")
    ax.plot(r.lambda_r, r.attack, "s-", label="attack accuracy (mean)")
    ax.axhline(base.test_acc, ls="--", color="C0", lw=0.8)
    ax.axhline(base.attack, ls="--", color="C1", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("λr (high-risk L2 strength; λg = 5e-4)")
    ax.legend(fontsize=8)
    return fig


def comparison(means: pd.DataFrame, table: pd.DataFrame, *, attacks=("conf", "nn")):
    """Fig. 7: prediction accuracy bars per defense and attack-accuracy lines (the paper's figure)
    for a few attacks and the mean over all attacks."""
    fig, ax = plt.subplots(figsize=(8, 3.8), constrained_layout=True)
    xs = np.arange(len(means))
    ax.bar(xs, means.test_acc, color="#9ecae1", label="test accuracy")
    for a in [a for a in attacks if a in set(table.attack)]:
        vals = table[table.attack == a].set_index("setting")["paper_metric"].reindex(means.setting)
        ax.plot(xs, vals.to_numpy(), "o-", label=f"{label(a)} attack accuracy")
    ax.plot(xs, means.attack, "k--", marker="s", label="mean attack accuracy")
    ax.set_xticks(xs, means.setting, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, ncol=2)
    return fig


def approaches(claims: dict):
    """Fig. 9: per defense, test accuracy bars and mean attack accuracy markers under each
    structured approach (``claims`` from :func:`wemem.studies.pruning_choices.approach_claims`). Whiskers: ±2
    binomial standard errors of one attack accuracy (resolution / √2), the evaluation set's noise
    alone."""
    names = list(claims["attack"])
    xs = np.arange(len(names))
    half = claims["resolution"] / np.sqrt(2.0)
    fig, ax = plt.subplots(figsize=(6.5, 3.6), constrained_layout=True)
    for j, (appr, color) in enumerate(zip(claims["approaches"], ("C0", "C1"), strict=True)):
        off = (j - 0.5) * 0.36
        acc = [claims["test_acc"][d][appr] for d in names]
        att = [claims["attack"][d][appr] for d in names]
        ax.bar(xs + off, acc, width=0.34, color=color, alpha=0.35, label=f"{appr}: test accuracy")
        ax.errorbar(
            xs + off, att, yerr=half, fmt="o", color=color, capsize=3,
            label=f"{appr}: mean attack accuracy",
        )  # fmt: skip
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_xticks(xs, names)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.08))
    return fig


def privacy_utility(rows: pd.DataFrame):
    """DP-SGD: test accuracy and mean attack AUC against ε (log scale), WeMem points as markers.
    Rows with ε = ∞ (σ = 0: no privacy) have no place on the axis; the title says how many."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6), constrained_layout=True)
    dp = rows[rows.method == "DP"].sort_values("epsilon")
    eps = pd.to_numeric(dp.epsilon, errors="coerce").astype(float)
    unbounded = int((~np.isfinite(eps)).sum())
    dp = dp[np.isfinite(eps)]
    if unbounded:
        ax.set_title(f"{unbounded} DP row(s) with ε = ∞ (no noise) not shown", fontsize=8)
    ax.plot(dp.epsilon, dp.test_acc, "o-", label="DP-SGD test accuracy")
    ax.plot(dp.epsilon, dp.auc, "s-", label="DP-SGD attack AUC")
    for _, r in rows[rows.method != "DP"].iterrows():
        ax.axhline(r.auc, ls=":", lw=0.8, color="grey")
        x = dp.epsilon.min() if len(dp) else 1.0
        ax.text(x, r.auc, f" {r.setting} AUC", fontsize=6, va="bottom")
    if len(dp):
        ax.set_xscale("log")
    delta = rows.loc[rows.method == "DP", "dp_delta"] if "dp_delta" in rows else []
    shown = (
        f"δ = {float(delta.iloc[0]):.1e}" if len(delta) and delta.nunique() == 1 else "δ per row"
    )
    ax.set_xlabel(f"ε (RDP accountant, {shown})")
    ax.legend(fontsize=7)
    return fig


def time_cost(table: pd.DataFrame):
    """Ratio of each defense's fine-tuning time to Base: ours beside the paper's."""
    fig, ax = plt.subplots(figsize=(7, 3.4), constrained_layout=True)
    xs = np.arange(len(table))
    ax.bar(xs - 0.2, table.ratio_to_base, width=0.4, label="this run")
    ax.bar(xs + 0.2, table.paper_ratio, width=0.4, label=f"paper ({table.paper_source.iloc[0]})")
    ax.axhline(1, color="black", lw=0.8)
    ax.set_yscale("log")
    ax.set_xticks(xs, table.setting, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("fine-tuning time / Base")
    ax.legend(fontsize=8)
    return fig
