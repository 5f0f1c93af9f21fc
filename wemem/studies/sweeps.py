"""Evaluate defense settings: prune victim and shadows with a defense, attack adaptively, tabulate.

One row per (defense setting, attack) with the victim's test accuracy, its fine-tuning time over the
pruning rounds, and the attack's metrics (the paper's figure, balanced accuracy, AUC, TPR at low
FPR). Every defense notebook (03–07, 09, 11) runs its :class:`~wemem.defenses.config.DefenseConfig`
list through :func:`sweep`; nothing here is specific to one method or figure. Also the quantities
the config builders need from an experiment: n_c (:func:`class_size`), its window grid, τ.
"""

from __future__ import annotations

import logging
import warnings
from collections import deque
from dataclasses import asdict

import numpy as np
import pandas as pd

from wemem import progress as _progress
from wemem.defenses.config import DefenseConfig, Window, window_grid
from wemem.errors import ParamsError
from wemem.experiment import adaptive
from wemem.experiment.executor import Request
from wemem.experiment.replicate import Experiment
from wemem.memorization.tau import TauRule, fraction_selected, tau_rule
from wemem.names import PAPER_ATTACKS, label
from wemem.studies.verdicts import accuracy_difference_se, difference_se, verdict_text

log = logging.getLogger(__name__)

#: Settings of a :func:`sweep` whose classifier attacks may train at once on the executor.
LOOKAHEAD = 6


def class_size(exp: Experiment) -> float:
    """n_c: the victim's average number of members per class (the window rule's input)."""
    y = exp.pool.y[exp.split("victim").train].cpu().numpy()
    return float(np.bincount(y, minlength=exp.pool.num_classes).mean())


def window_grid_for(exp: Experiment, *, widths=(), steps=()) -> list[Window]:
    """:func:`~wemem.defenses.config.window_grid` at the victim's class size."""
    return window_grid(class_size(exp), widths=widths, steps=steps)


def run_tau_rule(settings, share: float) -> TauRule:
    """The τ rule of a run with these :class:`~wemem.params.Settings` and high-risk ``share``
    (:func:`wemem.memorization.tau.tau_rule`): raw τ on released mem-scores, else the quantile."""
    return tau_rule(
        share=share,
        memscore_method=settings.memscore_method,
        dataset=settings.dataset,
        arch=settings.arch,
    )


def tau_for(exp: Experiment, rule: TauRule) -> float:
    """τ on the min–max mem-score scale of ``exp``'s training pool under ``rule``."""
    return rule.tau(exp.memscores().score)


def high_risk_fraction(exp: Experiment, tau: float) -> float:
    """The share of the training pool whose mem-score is at least ``tau`` (RMR's high-risk data)."""
    return fraction_selected(exp.memscores().score, tau)


def grid_summary(
    exp: Experiment, *, widths=(), steps=(), tau: float | None = None, rule: TauRule | None = None
) -> dict:
    """What a defense notebook shows after setup: n_c, the window grid, τ with its rule and the
    high-risk share it selects."""
    out = {"n_c (members per class)": class_size(exp)}
    if tau is not None:
        out |= tau_summary(exp, tau, rule)
    out["window grid"] = [asdict(w) for w in window_grid_for(exp, widths=widths, steps=steps)]
    return out


def tau_summary(exp: Experiment, tau: float, rule: TauRule | None = None) -> dict:
    """τ, the rule that chose it (:meth:`TauRule.to_json`) and the share of the training pool it
    selects as high-risk (for metrics.json: every notebook that uses τ reports these)."""
    out = {"tau": float(tau), "high_risk_share": high_risk_fraction(exp, tau)}
    if rule is not None:
        out["tau_rule"] = rule.to_json()
    return out


def defended_rows_differ(means: pd.DataFrame) -> bool:
    """Whether every setting other than Base differs from Base in test accuracy or mean attack
    accuracy (a defense that silently trained like Base would not): a check that can fail."""
    m = means.set_index("setting")
    if "Base" not in m.index:
        return False
    base = m.loc["Base", ["test_acc", "attack_all"]].to_numpy(dtype=float)
    rest = m.drop(index="Base")[["test_acc", "attack_all"]].to_numpy(dtype=float)
    return bool(len(rest)) and bool((np.abs(rest - base) > 0).any(axis=1).all())


def every_setting_ran(means: pd.DataFrame, configs: list[DefenseConfig]) -> bool:
    """Whether ``means`` (:func:`mean_attack`) holds exactly one row per config, in the configs'
    settings: the count comes from the notebook's parameters (Base + orders × widths × steps …,
    whatever grid they give), never typed in. A check that can fail (a setting lost or merged)."""
    want = [c.setting for c in configs]
    return len(set(want)) == len(want) and sorted(means.setting) == sorted(want)


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
    return _submit(
        exp,
        config,
        attacks,
        attack_epochs=attack_epochs,
        attack_train_max=attack_train_max,
        seed=seed,
    )()


def _submit(
    exp: Experiment,
    config: DefenseConfig,
    attacks,
    *,
    attack_epochs: int,
    attack_train_max: int | None,
    seed: int = 0,
):
    """:func:`evaluate` with its classifier attacks submitted to the executor; returns a function
    that waits for them and returns the table (the stage's models are not kept)."""
    st = adaptive.defended_stage(exp, config.name, one_shot=config.one_shot, **config.settings)
    pending = adaptive.submit_evaluation(
        exp, st, attacks, attack_epochs=attack_epochs, attack_train_max=attack_train_max, seed=seed
    )
    v = st.victim
    scalars = {k: val for k, val in config.settings.items() if np.isscalar(val)}
    columns = dict(
        defense=config.name,
        defense_label=label(config.name),
        test_acc=v.test_acc,
        train_acc=v.train_acc,
        finetune_seconds=st.summary["seconds"],
        output_seconds=st.summary.get("output_seconds", np.nan),
        finetune_epochs=st.summary["epochs"],
        **{f"dp_{k}": val for k, val in st.summary.get("defense", {}).items()},
        **{**scalars, **config.labels},
    )
    return lambda: pending.table().drop(columns=["stage"]).assign(**columns)


def check_configs(exp: Experiment, configs: list[DefenseConfig]) -> None:
    """Refuse, before anything is trained, a sweep its experiment's models cannot run: DP-SGD on
    a BatchNorm CNN (:func:`wemem.defenses.dp.check_settings`). DP rows of a CNN run on the
    experiment's GroupNorm twin (``dp_norm``, :func:`wemem.experiment.keys.defense_settings`), so
    this fails only when that twin would still have BatchNorm."""
    if any(c.name == "dp" for c in configs):
        from wemem.defenses.dp import check_settings  # Opacus only when a sweep has DP
        from wemem.experiment.keys import defense_settings

        s = defense_settings(exp.settings, "dp")
        check_settings(arch=s.arch, norm=s.norm)


def check_attacks(attacks) -> None:
    """Refuse, before anything is trained, ``attacks`` without one of the paper's
    (:data:`wemem.names.PAPER_ATTACKS`): every table, claim and sentence of a sweep reads their
    mean (:func:`mean_attack`), which would be empty."""
    if not set(attacks) & set(PAPER_ATTACKS):
        raise ParamsError(
            f"attacks = {list(attacks)!r}: include at least one of the paper's attacks "
            f"{list(PAPER_ATTACKS)} (the tables average them)"
        )


class WideWindowWarning(UserWarning):
    """A sliding window at least as wide as every class: each epoch trains on whole classes."""


def wide_windows(exp: Experiment, configs: list[DefenseConfig]) -> str:
    """One sentence naming the window settings whose width is at least the largest class of any
    model's training rows (their epoch-0 window holds every row: they train much as Base does, on
    reordered rows, and such settings that differ only in width train alike; at smoke scale, or on
    small classes, every window), or ``""`` when there is none."""
    widths = [(c.setting, c.settings["width"]) for c in configs if "width" in c.settings]
    if not widths:
        return ""
    y = exp.pool.y.cpu().numpy()
    largest = max(int(np.bincount(y[exp.split(role).train]).max()) for role in exp.roles)
    wide = [setting for setting, width in widths if width >= largest]
    if not wide:
        return ""
    return (
        f"{len(wide)} of {len(widths)} window settings are at least as wide as the largest class "
        f"({largest} training rows): every window holds whole classes, so they train much as Base "
        f"does: {', '.join(wide)}"
    )


def sweep(
    exp: Experiment,
    configs: list[DefenseConfig],
    attacks,
    *,
    attack_epochs: int,
    attack_train_max: int | None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """:func:`evaluate` for each config, in order; one long table. The classifier attacks of up to
    :data:`LOOKAHEAD` settings train on the executor's workers while the next setting is loaded
    and its other attacks run here (same numbers as one setting at a time: each attack model is
    seeded on its own). Refuses, before training, what its tables could not report
    (:func:`check_configs`, :func:`check_attacks`)."""
    check_configs(exp, configs)
    check_attacks(attacks)
    wide = wide_windows(exp, configs)
    if wide:  # shown in the notebook, hence in its report
        warnings.warn(wide, WideWindowWarning, stacklevel=2)
    exp.prefetch(  # every (setting, model) pruning run at once, when the executor is Ray
        Request("defended", role, c.name, c.one_shot, dict(c.settings))
        for c in configs
        for role in exp.roles
    )
    frames, pending = [], deque()
    for c in _progress.tqdm(
        configs, desc="defense settings", disable=not _progress.enabled(progress)
    ):
        pending.append(
            _submit(exp, c, attacks, attack_epochs=attack_epochs, attack_train_max=attack_train_max)
        )
        while len(pending) > LOOKAHEAD:  # bounded: each holds its stage's outputs
            frames.append(pending.popleft()())
    frames += [table() for table in pending]
    for f in frames:
        f.attrs = {}
    return pd.concat(frames, ignore_index=True)


def mean_attack(
    table: pd.DataFrame, metric: str = "paper_metric", *, attacks=PAPER_ATTACKS
) -> pd.DataFrame:
    """Per setting: test accuracy and the attack ``metric`` averaged over the paper's attacks.

    ``attack`` (and ``auc``) average the rows whose attack is in ``attacks`` (the paper's 8,
    :data:`wemem.names.PAPER_ATTACKS`, its Hconf read as the official code does); ``attack_all``
    averages every attack that ran (this project's readings of the unreleased attacks, ``hconf``
    and LiRA included), reported beside it, never inside the paper's mean. ``attack_se`` is the
    binomial standard error of ``attack`` (a balanced accuracy on ``n_in`` members and ``n_out``
    non-members: ½·sqrt(a(1−a)(1/n_in + 1/n_out)) per attack, averaged over the attacks, i.e. as
    if their errors were fully correlated: conservative); NaN without ``n_in``/``n_out``.
    ``paper_attacks`` counts the attacks in the paper's mean.
    """
    paper = table[table["attack"].isin(attacks)]
    g_all = table.groupby("setting", sort=False)
    g = paper.groupby("setting", sort=False)
    out = g_all[["test_acc", "finetune_seconds"]].first()
    out["attack"] = g[metric].mean().reindex(out.index)
    out["auc"] = g["auc"].mean().reindex(out.index)
    out["attack_all"] = g_all[metric].mean()
    out["paper_attacks"] = g["attack"].nunique().reindex(out.index).fillna(0).astype(int)
    if "n_out" in table.columns:  # the victim's non-members are its test rows
        out["n_test"] = g_all["n_out"].first()
    if {"n_in", "n_out"} <= set(table.columns):
        a = paper[metric].clip(0, 1)
        se = 0.5 * np.sqrt(a * (1 - a) * (1 / paper["n_in"] + 1 / paper["n_out"]))
        out["attack_se"] = se.groupby(paper["setting"], sort=False).mean().reindex(out.index)
    else:
        out["attack_se"] = np.nan
    for col in (
        "method",
        "order",
        "width",
        "step",
        "width_fraction",
        "step_size",
        "window_mode",
        "lambda_r",
        "dp_epsilon",
        "dp_delta",
    ):
        if col in table.columns:
            out[col] = g_all[col].first()
    return out.reset_index()


def attack_resolution(means: pd.DataFrame, a: str, b: str) -> float:
    """The resolution of the difference of two settings' mean attack accuracies (rows of
    :func:`mean_attack`): the standard error of a difference of independent estimates."""
    m = means.set_index("setting")
    return difference_se(m.at[a, "attack_se"], m.at[b, "attack_se"])


def test_acc_resolution(acc_a: float, acc_b: float, n_test: float) -> float:
    """The resolution of a difference of two test accuracies on ``n_test`` rows each (NaN when
    the size is unknown)."""
    if n_test is None or not np.isfinite(n_test):
        return float("nan")
    return accuracy_difference_se(acc_a, acc_b, int(n_test))


def select(configs: list[DefenseConfig], settings) -> list[DefenseConfig]:
    """The configs whose ``setting`` is one of ``settings``, in the configs' order."""
    return [c for c in configs if c.setting in settings]


def holds(flag: bool) -> str:
    """How a summary sentence states a computed claim."""
    return "holds" if flag else "does **not** hold"


def said(decision: dict) -> str:
    """How a summary sentence states a verdict (:func:`wemem.studies.verdicts.decide` or
    ``share_decision``) with the figures that decided it, e.g. "holds (difference 0.031, noise
    ±0.012)"."""
    status = verdict_text(decision["status"])
    d, r = decision.get("difference"), decision.get("resolution")
    if d is None or r is None or not np.isfinite(d):
        return status
    return f"{status} (difference {d:+.3f}, noise ±{r:.3f})"
