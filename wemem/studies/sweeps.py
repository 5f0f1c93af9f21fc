"""Evaluate defense settings: prune victim and shadows with a defense, attack adaptively, tabulate.

One row per (defense setting, attack) with the victim's test accuracy, its fine-tuning time over the
pruning rounds, and the attack's metrics (the paper's figure, balanced accuracy, AUC, TPR at low
FPR). Every defense notebook (03–07, 09, 11) runs its :class:`~wemem.defenses.config.DefenseConfig`
list through :func:`sweep`; nothing here is specific to one method or figure. Also the quantities
the config builders need from an experiment: n_c (:func:`class_size`), its window grid, τ.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

import numpy as np
import pandas as pd

from wemem import progress as _progress
from wemem.defenses.config import DefenseConfig, Window, window_grid
from wemem.experiment import adaptive
from wemem.experiment.executor import Request
from wemem.experiment.replicate import Experiment
from wemem.memorization.tau import calibrate_tau, fraction_selected
from wemem.names import label

log = logging.getLogger(__name__)


def class_size(exp: Experiment) -> float:
    """n_c: the victim's average number of members per class (the window rule's input)."""
    y = exp.pool.y[exp.split("victim").train].cpu().numpy()
    return float(np.bincount(y, minlength=exp.pool.num_classes).mean())


def window_grid_for(exp: Experiment, *, widths=(), steps=()) -> list[Window]:
    """:func:`~wemem.defenses.config.window_grid` at the victim's class size."""
    return window_grid(class_size(exp), widths=widths, steps=steps)


def tau_for(exp: Experiment, *, tau: float | None = None, fraction: float | None = None) -> float:
    """τ on the min–max mem-score scale: the paper's raw value, or the quantile selecting
    ``fraction`` of the training pool as high-risk (spec §3.4 recommendation 3)."""
    return calibrate_tau(exp.memscores().score, tau=tau, fraction=fraction)


def high_risk_fraction(exp: Experiment, tau: float) -> float:
    """The share of the training pool whose mem-score is at least ``tau`` (RMR's high-risk data)."""
    return fraction_selected(exp.memscores().score, tau)


def grid_summary(exp: Experiment, *, widths=(), steps=(), tau: float | None = None) -> dict:
    """What a defense notebook shows after setup: n_c, the window grid, τ and its high-risk share."""
    out = {"n_c (members per class)": class_size(exp)}
    if tau is not None:
        out |= {"tau": tau, "high-risk fraction": high_risk_fraction(exp, tau)}
    out["window grid"] = [asdict(w) for w in window_grid_for(exp, widths=widths, steps=steps)]
    return out


def evaluate(
    exp: Experiment,
    config: DefenseConfig,
    attacks,
    *,
    attack_epochs: int,
    attack_train_max: int | None,
    seed: int = 0,
) -> pd.DataFrame:
    """One defense setting: prune victim and shadows with it, run ``attacks``, one row per attack
    (columns: the attack's metrics, the victim's accuracy and fine-tuning time, the config's
    scalar settings and its labels). ``config.one_shot`` prunes once to the final rate."""
    st = adaptive.defended_stage(exp, config.name, one_shot=config.one_shot, **config.settings)
    table = adaptive.evaluate(
        exp, st, attacks, attack_epochs=attack_epochs, attack_train_max=attack_train_max, seed=seed
    )
    v = st.victim
    scalars = {k: val for k, val in config.settings.items() if np.isscalar(val)}
    return table.drop(columns=["stage"]).assign(
        defense=config.name,
        defense_label=label(config.name),
        test_acc=v.test_acc,
        train_acc=v.train_acc,
        finetune_seconds=st.summary["seconds"],
        finetune_epochs=st.summary["epochs"],
        **{f"dp_{k}": val for k, val in st.summary.get("defense", {}).items()},
        **{**scalars, **config.labels},
    )


def check_configs(exp: Experiment, configs: list[DefenseConfig]) -> None:
    """Refuse, before anything is trained, a sweep its experiment's models cannot run: DP-SGD on a
    BatchNorm CNN (:func:`wemem.defenses.dp.check_settings`: set ``norm: group``)."""
    if any(c.name == "dp" for c in configs):
        from wemem.defenses.dp import check_settings  # Opacus only when a sweep has DP

        check_settings(arch=exp.settings.arch, norm=exp.settings.norm)


def sweep(
    exp: Experiment,
    configs: list[DefenseConfig],
    attacks,
    *,
    attack_epochs: int,
    attack_train_max: int | None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """:func:`evaluate` for each config, in order; one long table."""
    check_configs(exp, configs)
    exp.prefetch(  # every (setting, model) pruning run at once, when the executor is Ray
        Request("defended", role, c.name, c.one_shot, dict(c.settings))
        for c in configs
        for role in exp.roles
    )
    frames = []
    for c in _progress.tqdm(
        configs, desc="defense settings", disable=not _progress.enabled(progress)
    ):
        frames.append(
            evaluate(
                exp, c, attacks, attack_epochs=attack_epochs, attack_train_max=attack_train_max
            )
        )
    for f in frames:
        f.attrs = {}
    return pd.concat(frames, ignore_index=True)


def mean_attack(table: pd.DataFrame, metric: str = "paper_metric") -> pd.DataFrame:
    """Per setting: test accuracy and the attack ``metric`` averaged over attacks."""
    g = table.groupby("setting", sort=False)
    out = g[["test_acc", "finetune_seconds"]].first()
    out["attack"] = g[metric].mean()
    out["auc"] = g["auc"].mean()
    for col in (
        "method",
        "order",
        "width",
        "step",
        "width_fraction",
        "step_size",
        "lambda_r",
        "dp_epsilon",
        "dp_delta",
    ):
        if col in table.columns:
            out[col] = g[col].first()
    return out.reset_index()


def select(configs: list[DefenseConfig], settings) -> list[DefenseConfig]:
    """The configs whose ``setting`` is one of ``settings``, in the configs' order."""
    return [c for c in configs if c.setting in settings]


def holds(flag: bool) -> str:
    """How a summary sentence states a computed claim."""
    return "holds" if flag else "does **not** hold"
