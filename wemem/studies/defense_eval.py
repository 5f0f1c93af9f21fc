"""Evaluate defenses: prune victim and shadows with a defense, attack adaptively, tabulate.

One row per (defense setting, attack) with the victim's test accuracy, its fine-tuning time over the
pruning rounds, and the attack's metrics (the paper's figure, balanced accuracy, AUC, TPR at low
FPR). The WeMem notebooks (03–05) plot these tables; nothing here is specific to one method.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from wemem.defenses import window_rule
from wemem.experiment import adaptive
from wemem.experiment.replicate import Experiment
from wemem.memorization.estimators import calibrate_tau
from wemem.names import label

log = logging.getLogger(__name__)


def class_size(exp: Experiment) -> float:
    """n_c: the victim's average number of members per class (the window rule's input)."""
    y = exp.pool.y[exp.split("victim").train].cpu().numpy()
    return float(np.bincount(y, minlength=exp.pool.num_classes).mean())


def window_grid(
    exp: Experiment, *, widths=(), steps=(), fractions=(2 / 3, 4 / 9, 2 / 9)
) -> list[dict]:
    """The window grid. Explicit ``widths`` × ``steps`` (the paper's settings table, spec §2.4),
    or, when they are empty, derived from class sizes with the paper's rule (spec §2.2):
    w ≈ fraction·n_c for three fractions, and steps s ≈ (n_c − w_min)/20 and half of it."""
    n_c = class_size(exp)
    if widths:
        ordered = sorted(steps)
        return [
            {
                "width": int(w),
                "step": int(s),
                "width_fraction": w / n_c,
                "step_size": "small" if s == ordered[0] else "large",
            }
            for w in sorted(widths, reverse=True)
            for s in ordered
        ]
    grid = []
    for f in fractions:
        width, s_large, s_small = window_rule(round(n_c), fraction=f)
        for step, step_name in ((s_small, "small"), (s_large, "large")):
            grid.append({"width": width, "step": step, "width_fraction": f, "step_size": step_name})
    return grid


def tau_for(exp: Experiment, *, tau: float | None = None, fraction: float | None = None) -> float:
    """τ on the min–max mem-score scale: the paper's raw value, or the quantile selecting
    ``fraction`` of the training pool as high-risk (spec §3.4 recommendation 3)."""
    return calibrate_tau(exp.memscores().score, tau=tau, fraction=fraction)


def evaluate(
    exp: Experiment,
    defense: str,
    settings: dict,
    attacks,
    *,
    attack_epochs: int,
    attack_train_max: int | None,
    labels: dict | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """One defense setting: prune victim and shadows with it, run ``attacks``, one row per attack.

    ``labels["pruning"] == "one-shot"`` prunes once to the final rate instead of iteratively.
    """
    one_shot = (labels or {}).get("pruning") == "one-shot"
    st = adaptive.defended_stage(exp, defense, one_shot=one_shot, **settings)
    table = adaptive.evaluate(
        exp, st, attacks, attack_epochs=attack_epochs, attack_train_max=attack_train_max, seed=seed
    )
    v = st.victim
    table = table.drop(columns=["stage"]).assign(
        defense=defense,
        defense_label=label(defense),
        test_acc=v.test_acc,
        train_acc=v.train_acc,
        finetune_seconds=st.summary["seconds"],
        finetune_epochs=st.summary["epochs"],
        **{f"dp_{k}": val for k, val in st.summary.get("defense", {}).items()},
        **{**{k: v for k, v in settings.items() if np.isscalar(v)}, **(labels or {})},
    )
    return table


def check_configs(exp: Experiment, configs: list[tuple[str, dict, dict]]) -> None:
    """Refuse, before anything is trained, a sweep its experiment's models cannot run: DP-SGD on a
    BatchNorm CNN (:func:`wemem.defenses.dp.check_settings`: set ``norm: group``)."""
    if any(defense == "dp" for defense, _, _ in configs):
        from wemem.defenses.dp import check_settings

        check_settings(arch=exp.settings.arch, norm=exp.settings.norm)


def sweep(
    exp: Experiment,
    configs: list[tuple[str, dict, dict]],
    attacks,
    *,
    attack_epochs: int,
    attack_train_max: int | None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """:func:`evaluate` for each ``(defense, settings, labels)``; one long table."""
    from wemem import progress as _progress
    from wemem.experiment.executor import Request

    check_configs(exp, configs)
    exp.prefetch(  # every (setting, model) pruning run at once, when the executor is Ray
        Request("defended", role, d, bool((lab or {}).get("pruning") == "one-shot"), st)
        for d, st, lab in configs
        for role in exp.roles
    )
    frames = []
    for defense, settings, labels in _progress.tqdm(
        configs, desc="defense settings", disable=not _progress.enabled(progress)
    ):
        frames.append(
            evaluate(
                exp,
                defense,
                settings,
                attacks,
                attack_epochs=attack_epochs,
                attack_train_max=attack_train_max,
                labels=labels,
            )
        )
    for f in frames:
        f.attrs = {}
    return pd.concat(frames, ignore_index=True)


def grid_summary(exp: Experiment, *, widths=(), steps=(), tau: float | None = None) -> dict:
    """What a defense notebook shows after setup: n_c, the window grid, τ and its high-risk share."""
    from wemem.memorization.estimators import fraction_selected

    out = {"n_c (members per class)": class_size(exp)}
    if tau is not None:
        out |= {"tau": tau, "high-risk fraction": fraction_selected(exp.memscores().score, tau)}
    out["window grid"] = window_grid(exp, widths=widths, steps=steps)
    return out


def time_cost(exp: Experiment, configs: list[tuple[str, dict, dict]]) -> pd.DataFrame:
    """Wall-clock of the victim's fine-tuning over the pruning rounds per defense, retrained (not
    read from the cache), with the ratio to Base (spec §8.1 T-time: per-epoch dev evaluation
    included, window precomputation excluded, as the official log line)."""
    check_configs(exp, configs)
    rows = []
    for defense, settings, labels in configs:
        run = exp.defended("victim", defense, use_cache=False, **settings)
        rows.append(
            {
                **labels,
                "defense": defense,
                "seconds": run.summary["seconds"],
                "epochs": run.summary["epochs"],
                "test_acc": run.final.test_acc,
            }
        )
    df = pd.DataFrame(rows)
    base = df.loc[df.defense == "base", "seconds"].iloc[0]
    df["ratio_to_base"] = df.seconds / base
    return df


def setting_sweep(
    settings,
    field: str,
    values,
    attacks,
    *,
    defenses=("Base", "SWMR"),
    attack_epochs: int,
    attack_train_max: int | None,
) -> pd.DataFrame:
    """The comparison defenses under other pruning settings (``pruning_rate`` 0.5/0.6/0.7, or
    ``pruning_approach`` l1_unstructured / l1_structured / l2_structured): one experiment per value,
    dense models shared through the cache."""
    from dataclasses import replace

    from wemem.studies.defense_grids import comparison_configs

    frames = []
    for v in values:
        exp = Experiment(replace(settings, **{field: v}), seed=settings.seeds[0])
        configs = [c for c in comparison_configs(exp) if c[2]["setting"] in defenses]
        frames.append(
            sweep(
                exp,
                configs,
                attacks,
                attack_epochs=attack_epochs,
                attack_train_max=attack_train_max,
            ).assign(**{field: v})
        )
    return pd.concat(frames, ignore_index=True)


def sweep_means(table: pd.DataFrame, field: str) -> dict:
    """{value: {defense: mean attack accuracy}} for :func:`setting_sweep` results."""
    g = table.groupby([field, "setting"], sort=False)["paper_metric"].mean()
    out: dict = {}
    for (v, s), a in g.items():
        out.setdefault(str(v), {})[s] = float(a)
    return out
