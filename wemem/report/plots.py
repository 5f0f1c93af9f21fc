"""Figures, drawn from tidy tables (numbers flow from files; changing a plot never retrains)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from wemem.names import label
from wemem.report.palettes import palette as colours

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
    palette = colours("tab10", attacks.attack.nunique())
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
    import seaborn as sns  # here: it imports scipy.stats (~2 s per kernel)

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
    import seaborn as sns  # here: it imports scipy.stats (~2 s per kernel)

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


def memscore_distributions(score, labels, flipped, *, max_classes: int = 10):
    """Left: mem-score histogram of flipped-label vs clean samples; right: per-class boxplots."""
    import numpy as np
    import seaborn as sns  # here: it imports scipy.stats (~2 s per kernel)

    fig, (ax0, ax1) = plt.subplots(
        1, 2, figsize=(10, 3.6), constrained_layout=True, gridspec_kw={"width_ratios": [1, 1.6]}
    )
    bins = np.linspace(0, 1, 41)
    ax0.hist(score[~flipped], bins=bins, alpha=0.7, density=True, label="clean labels")
    if flipped.any():
        ax0.hist(score[flipped], bins=bins, alpha=0.7, density=True, label="flipped labels")
    ax0.set_xlabel("mem-score (min–max normalized)")
    ax0.set_ylabel("density")
    ax0.legend(fontsize=8)
    classes = np.unique(labels)[:max_classes]
    df = pd.DataFrame({"score": score, "class": labels, "flipped": flipped})
    df = df[df["class"].isin(classes)]
    sns.boxplot(data=df, x="class", y="score", color="#9ecae1", fliersize=1.5, ax=ax1)
    ax1.set_ylabel("mem-score")
    ax1.set_xlabel(f"class (first {len(classes)})")
    return fig


def _displayable(image):
    """An image tensor as imshow takes it: (H, W) grey, or (H, W, 3) RGB rescaled to [0, 1] (the
    pool's images are normalised, channels first)."""
    import numpy as np

    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 3 and a.shape[0] in (1, 3):
        a = np.moveaxis(a, 0, -1)
    a = a.squeeze()
    if a.ndim == 3:
        lo, hi = a.min(), a.max()
        a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return a


def memscore_grid(images, score, labels, clean_labels, *, k: int = 12):
    """The k most and the k least memorized images, with their (training) label; a flipped label
    shows as 'y (was y0)'."""
    import numpy as np

    order = np.argsort(-score, kind="stable")
    picks = [("most memorized", order[:k]), ("least memorized", order[::-1][:k])]
    fig, axes = plt.subplots(2, k, figsize=(1.1 * k, 3.0), constrained_layout=True)
    for row, (title, idx) in enumerate(picks):
        for col, i in enumerate(idx):
            ax = axes[row, col]
            img = _displayable(images[i])
            ax.imshow(img, cmap="gray_r" if img.ndim == 2 else None)
            ax.set_xticks([])
            ax.set_yticks([])
            text = (
                f"{labels[i]}"
                if labels[i] == clean_labels[i]
                else f"{labels[i]} (was {clean_labels[i]})"
            )
            ax.set_title(f"{text}\n{score[i]:.2f}", fontsize=7)
        axes[row, 0].set_ylabel(title, fontsize=8)
    return fig


def memscore_convergence(conv: pd.DataFrame, *, agreement: float | None = None):
    """Spearman of the k-model estimate with the full estimate, against k (log scale)."""
    fig, ax = plt.subplots(figsize=(5, 3.4), constrained_layout=True)
    ax.plot(conv["k"], conv["spearman"], "o-", label="FZ, first k models vs all")
    if agreement is not None:
        ax.axhline(agreement, ls="--", color="grey", label="FZ vs k-fold proxy")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("models K")
    ax.set_ylabel("Spearman ρ")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8)
    return fig


def roc_curves(frames: dict[str, pd.DataFrame], *, attacks=None):
    """Log-log ROC curves of each attack, one panel per stage (``frames[stage]`` from
    :func:`wemem.experiment.adaptive.evaluate`, whose ``attrs['roc']`` holds the curves)."""
    import numpy as np

    fig, axes = plt.subplots(
        1, len(frames), figsize=(4.6 * len(frames), 4), squeeze=False, constrained_layout=True
    )
    for ax, (stage, df) in zip(axes[0], frames.items(), strict=True):
        names = attacks or list(df.attack)
        palette = colours("tab20", len(names))
        for color, name in zip(palette, names, strict=True):
            fpr, tpr = df.attrs["roc"][name]
            auc = float(df.set_index("attack").loc[name, "auc"])
            ax.plot(
                np.maximum(fpr, 1e-4),
                np.maximum(tpr, 1e-4),
                color=color,
                lw=1.2,
                label=f"{label(name)} ({auc:.2f})",
            )
        ax.plot([1e-4, 1], [1e-4, 1], ls="--", color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(1e-3, 1)
        ax.set_ylim(1e-3, 1)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(f"{stage} victim")
        ax.legend(fontsize=6.5, loc="lower right")
    return fig


def memscore_leakage(
    leak: pd.DataFrame, *, attacks=("conf", "mentr", "nn", "samia", "lira"), fpr: float = 0.05
):
    """TPR at a fixed FPR per mem-score decile of the victim's members, per attack."""
    fig, ax = plt.subplots(figsize=(6, 3.6), constrained_layout=True)
    for name in [a for a in attacks if a in set(leak.attack)]:
        d = leak[leak.attack == name]
        ax.plot(d["bin"], d["tpr_at_fpr"], "o-", label=label(name))
    ax.axhline(fpr, ls="--", color="grey", lw=0.8, label="chance")
    ax.set_xlabel("mem-score decile of the member (0 = least memorized)")
    ax.set_ylabel(f"TPR at {fpr:.0%} FPR")
    ax.legend(fontsize=8)
    return fig


def reuse_and_memorability(sweep: pd.DataFrame, memorability: pd.DataFrame):
    """Left: mean attack AUC against the fine-tuning epochs allowed per round (data reuse). Right:
    AUC of high- vs low-mem-score members, dense / one-shot / per iterative round."""
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    g = sweep.groupby("max_epochs_per_round")["auc"].agg(["mean", "std"]).fillna(0)
    ax0.errorbar(g.index, g["mean"], yerr=g["std"], fmt="o-", color=STAGE_COLORS["iterative"])
    ax0.set_xlabel("max fine-tuning epochs per round")
    ax0.set_ylabel("attack AUC (mean of metric attacks)")
    ax0.set_title("data reuse")
    m = memorability.assign(
        where=[
            s if s != "iterative" else f"it. r{r}"
            for s, r in zip(memorability.stage, memorability["round"], strict=True)
        ]
    )
    ax1.plot(m["where"], m["auc_high_mem"], "o-", label="top-quartile mem-score members")
    ax1.plot(m["where"], m["auc_low_mem"], "s--", label="bottom-quartile mem-score members")
    ax1.set_ylabel("attack AUC (same mem-score range)")
    ax1.set_title("inherent memorability, and both")
    ax1.tick_params(axis="x", rotation=30)
    ax1.legend(fontsize=8)
    return fig
