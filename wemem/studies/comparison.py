"""Fig. 7 (notebook 06) and the DP-SGD runs (notebook 07): the baselines' settings sweeps, every
defense at its chosen setting, the paper's comparison claim, computed, and their sentences.

The chosen settings are the paper's (spec §8.2): β = 4, θ = 2, σ = 0.1, α = 1 for PPB, ADV, DP and
RelaxLoss; RSW(L→H) and SWMR(H→L) at the headline window (the smallest width, small step), RMR and
SWMR with λr = 0.1. The builders take plain values (a window, τ), so a planner with no data builds
the same configs; :func:`comparison_configs_for` computes them from an experiment.
"""

from __future__ import annotations

import pandas as pd

from wemem.defenses.catalog import PAPER_SETTINGS
from wemem.defenses.config import BASE, DefenseConfig, Window, headline_window
from wemem.experiment.replicate import Experiment
from wemem.names import label
from wemem.studies.sweeps import holds, mean_attack, select, tau_for, window_grid_for


def baseline_configs(name: str, key: str, values, **fixed) -> list[DefenseConfig]:
    """A sweep of one baseline over one setting (PPB β, ADV θ, RelaxLoss α, DP σ); ``fixed``
    settings are added to every point (e.g. ADV's ``attack_every``)."""
    return [
        DefenseConfig(
            name,
            {key: float(v), **fixed},
            {"setting": f"{label(name)} {key}={v:g}", "method": label(name), key: float(v)},
        )
        for v in values
    ]


def baseline_sweep_configs(*, betas, alphas, thetas, adv_attack_every: int) -> list[DefenseConfig]:
    """Notebook 06, section 1: Base, then PPB over β, RelaxLoss over α, ADV over θ."""
    return [
        BASE,
        *baseline_configs("ppb", "beta", betas),
        *baseline_configs("relaxloss", "alpha", alphas),
        *baseline_configs("adv", "theta", thetas, attack_every=adv_attack_every),
    ]


def comparison_configs(
    window: Window, *, tau: float, adv: dict | None = None
) -> list[DefenseConfig]:
    """Fig. 7: every defense at its chosen setting (spec §8.2): Base, PPB, ADV, DP, RelaxLoss, then
    RSW(L→H) and SWMR(H→L) at ``window`` (the headline one), RMR and SWMR at ``tau`` and λr = 0.1;
    ``adv`` settings are added to ADV's (e.g. ``attack_every``)."""
    out = [BASE]
    for name in ("ppb", "adv", "dp", "relaxloss"):
        st = {**PAPER_SETTINGS[name], **((adv or {}) if name == "adv" else {})}
        out.append(DefenseConfig(name, st, {"setting": label(name), "method": label(name)}))
    ws = {"width": window.width, "step": window.step}
    return [
        *out,
        DefenseConfig("rsw_l2h", ws, {"setting": "RSW", "method": "RSW"}),
        DefenseConfig("rmr", {"tau": tau, "lambda_r": 0.1}, {"setting": "RMR", "method": "RMR"}),
        DefenseConfig(
            "swmr_h2l",
            {**ws, "tau": tau, "lambda_r": 0.1},
            {"setting": "SWMR", "method": "SWMR"},
        ),
    ]


def comparison_configs_for(
    exp: Experiment, *, tau_fraction: float = 0.1, adv: dict | None = None
) -> list[DefenseConfig]:
    """:func:`comparison_configs` at the headline window of ``exp``'s class size and τ selecting
    ``tau_fraction`` of its pool as high-risk."""
    window = headline_window(window_grid_for(exp))
    return comparison_configs(window, tau=tau_for(exp, fraction=tau_fraction), adv=adv)


def dp_configs(comparison: list[DefenseConfig], *, sigmas, target_epsilons) -> list[DefenseConfig]:
    """Notebook 07: Base, DP-SGD at each noise multiplier σ and each target ε, then RSW and SWMR
    from ``comparison`` (:func:`comparison_configs`) for reference."""
    return [
        BASE,
        *baseline_configs("dp", "noise_multiplier", sigmas),
        *baseline_configs("dp", "target_epsilon", target_epsilons),
        *select(comparison, ("RSW", "SWMR")),
    ]


def comparison_claims(table: pd.DataFrame) -> dict:
    """'WeMem achieves high prediction accuracy while reducing attack accuracy more than other
    defense methods' (spec §8.2, Fig. 7), computed."""
    m = mean_attack(table).set_index("setting")
    wemem_ = m.loc[[s for s in ("RSW", "RMR", "SWMR") if s in m.index]]
    others = m.loc[[s for s in ("PPB", "ADV", "DP", "RelaxLoss") if s in m.index]]
    best_w = wemem_.attack.idxmin()
    return {
        "attack": {k: float(v) for k, v in m.attack.items()},
        "test_acc": {k: float(v) for k, v in m.test_acc.items()},
        "best_wemem": str(best_w),
        "wemem_lowest_attack": bool(wemem_.attack.min() <= others.attack.min()),
        "wemem_best_test_acc_at_or_above_others_mean": bool(
            wemem_.test_acc.max() >= others.test_acc.mean()
        ),
    }


def comparison_text(c: dict) -> str:
    """Sentences for Fig. 7 (06) from its claims in metrics.json."""
    a, t = c["attack"], c["test_acc"]
    parts = "; ".join(f"{k}: test {t[k]:.3f}, attack {a[k]:.3f}" for k in a)
    return (
        f"{parts}. The lowest mean attack accuracy among the WeMem methods is {c['best_wemem']}'s; "
        f"that WeMem reduces attack accuracy more than every other defense "
        f"{holds(c['wemem_lowest_attack'])} here, and that it keeps accuracy at or above the other "
        f"defenses' mean {holds(c['wemem_best_test_acc_at_or_above_others_mean'])}."
    )


def dp_text(rows: list[dict], *, settings: dict | None = None) -> str:
    """Sentences for notebook 07 from its metrics.json rows; ``settings`` (the run's) add which
    models every row shares (GroupNorm CNNs under ``norm: group``)."""
    dp = [r for r in rows if r.get("method") == "DP"]
    base = next(r for r in rows if r["setting"] == "Base")
    parts = "; ".join(
        f"{r['setting']}: ε = {r['dp_epsilon']:.3g}, test {r['test_acc']:.3f}, attack AUC {r['auc']:.3f}"
        for r in dp
    )
    others = "; ".join(
        f"{r['setting']}: test {r['test_acc']:.3f}, AUC {r['auc']:.3f}"
        for r in rows
        if r.get("method") not in ("DP", "Base")
    )
    return (
        f"Base: test {base['test_acc']:.3f}, attack AUC {base['auc']:.3f}. DP-SGD — {parts}. "
        f"WeMem for comparison — {others}. Each ε is at δ = 1/N and covers all pruning rounds."
        + _models_text(settings)
    )


def _models_text(settings: dict | None) -> str:
    if not settings or settings.get("arch", "fc") == "fc":
        return ""
    norm = "GroupNorm" if settings.get("norm") == "group" else "BatchNorm"
    return (
        f" Every row, Base and WeMem included, uses the same {settings['arch']} models with {norm}"
        + (
            " (this project's choice for DP-SGD; the paper's models use BatchNorm)."
            if norm == "GroupNorm"
            else "."
        )
    )
