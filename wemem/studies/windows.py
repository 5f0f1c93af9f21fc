"""Fig. 5 and Fig. 6 (notebooks 03 RSW and 05 SWMR): the sliding-window grids, the random-order
ablation, SWMR against RSW, and the paper's claims about them, computed.

Windows follow the paper's rule or its settings table (:func:`wemem.defenses.config.window_grid`):
three widths w ≈ {2/3, 4/9, 2/9}·n_c, a small and a large step, both ranking orders. The builders
take a grid and plain values, so a planner with no data builds the same configs as a notebook.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from wemem.defenses.config import BASE, DefenseConfig, Window, headline_window
from wemem.names import label
from wemem.studies.sweeps import holds, mean_attack

#: Official names of each ranking order's RSW and SWMR.
ORDERS = {"H2L": ("rsw_h2l", "swmr_h2l"), "L2H": ("rsw_l2h", "swmr_l2h")}


def window_configs(
    method: str,
    grid: list[Window],
    *,
    orders=("H2L", "L2H"),
    tau: float | None = None,
    lambda_r: float | None = None,
) -> list[DefenseConfig]:
    """``method`` (``rsw`` or ``swmr``) over orders × ``grid`` (Fig. 5/6); SWMR with ``tau`` and
    ``lambda_r``."""
    configs = []
    for order in orders:
        name = ORDERS[order][0 if method == "rsw" else 1]
        for w in grid:
            settings = {"width": w.width, "step": w.step}
            if method == "swmr":
                settings |= {"tau": tau, "lambda_r": lambda_r}
            labels = {
                "setting": f"{label(name)} w={w.width} s={w.step}",
                "method": method.upper(),
                "order": order,
                "width_fraction": w.width_fraction,
                "step_size": w.step_size,
            }
            configs.append(DefenseConfig(name, settings, labels))
    return configs


def random_configs(window: Window) -> list[DefenseConfig]:
    """The random-order ablation at one window (official name ``random``)."""
    labels = {
        "setting": f"RSW(random) w={window.width} s={window.step}",
        "method": "RSW",
        "order": "random",
        "width_fraction": np.nan,
        "step_size": "",
    }
    return [DefenseConfig("random_window", {"width": window.width, "step": window.step}, labels)]


def rsw_configs(grid: list[Window], *, orders=("H2L", "L2H")) -> list[DefenseConfig]:
    """Notebook 03: Base, then RSW at every (order, window)."""
    return [BASE, *window_configs("rsw", grid, orders=orders)]


def swmr_configs(
    grid: list[Window], *, orders=("H2L", "L2H"), tau: float, lambda_r: float
) -> list[DefenseConfig]:
    """Notebook 05: Base, SWMR and RSW at every (order, window), and the random order at the
    headline window (:func:`~wemem.defenses.config.headline_window`)."""
    return [
        BASE,
        *window_configs("swmr", grid, orders=orders, tau=tau, lambda_r=lambda_r),
        *window_configs("rsw", grid, orders=orders),
        *random_configs(headline_window(grid)),
    ]


def window_claims(table: pd.DataFrame) -> dict:
    """Fig. 5/6 takeaways (spec §8.2): smaller width → lower test accuracy; small width with small
    step → lowest attack accuracy; the window beats Base on attack accuracy."""
    m = mean_attack(table)
    base = m[m.setting == "Base"].iloc[0]
    w = m[m.setting != "Base"].dropna(subset=["width_fraction"])
    by_width = w.groupby("width_fraction")["test_acc"].mean().sort_index()
    best = w.sort_values("attack").iloc[0]
    smallest = w.width_fraction.min()
    return {
        "test_acc_by_width_fraction": {f"{k:.3f}": float(v) for k, v in by_width.items()},
        "smaller_width_lowers_test_acc": bool(by_width.iloc[0] < by_width.iloc[-1]),
        "lowest_attack_setting": str(best.setting),
        "lowest_attack_is_small_width_small_step": bool(
            best.width_fraction == smallest and best.step_size == "small"
        ),
        "base_attack": float(base.attack),
        "base_test_acc": float(base.test_acc),
        "best_attack": float(best.attack),
        "windows_below_base_attack": int((w.attack < base.attack).sum()),
        "windows_total": int(len(w)),
        "mean_speedup_vs_base": float(base.finetune_seconds / w.finetune_seconds.mean()),
    }


def swmr_vs_rsw(table: pd.DataFrame) -> dict:
    """SWMR ≤ RSW in attack accuracy at identical (order, width, step) (spec §8.2, Fig. 6)."""
    m = mean_attack(table)
    m = m[m.method.isin(["RSW", "SWMR"]) & (m.order != "random")]
    piv = m.pivot_table(index=["order", "width", "step"], columns="method", values="attack")
    piv = piv.dropna()
    acc = m.pivot_table(index=["order", "width", "step"], columns="method", values="test_acc")
    return {
        "pairs": int(len(piv)),
        "swmr_le_rsw_pairs": int((piv["SWMR"] <= piv["RSW"]).sum()),
        "swmr_le_rsw_all": bool((piv["SWMR"] <= piv["RSW"]).all()),
        "swmr_test_acc_lower_pairs": int((acc["SWMR"] < acc["RSW"]).sum()) if len(acc) else 0,
    }


def order_rows(means: pd.DataFrame, window: Window) -> pd.DataFrame:
    """Notebook 05's ranking-order ablation: RSW's H→L, L→H and random rows at ``window``."""
    return means[
        (means.method == "RSW") & (means.width == window.width) & (means.step == window.step)
    ]


def window_text(c: dict, method: str) -> str:
    """Sentences for a window grid (03, 05) from its claims in metrics.json."""
    widths = c["test_acc_by_width_fraction"]
    lo, hi = min(widths, key=float), max(widths, key=float)
    return (
        f"Base reaches test accuracy {c['base_test_acc']:.3f} at mean attack accuracy "
        f"{c['base_attack']:.3f}. Averaged over orders and steps, {method} reaches test accuracy "
        f"{widths[hi]:.3f} at the widest window and {widths[lo]:.3f} at the narrowest (the claim "
        f"that a narrower window costs accuracy {holds(c['smaller_width_lowers_test_acc'])}). "
        f"The lowest mean attack accuracy, {c['best_attack']:.3f}, comes from {c['lowest_attack_setting']} "
        f"(the claim that small width with small step defends best "
        f"{holds(c['lowest_attack_is_small_width_small_step'])}); {c['windows_below_base_attack']} "
        f"of {c['windows_total']} window settings attack below Base. Fine-tuning is on average "
        f"{c['mean_speedup_vs_base']:.1f}× faster than Base."
    )


def swmr_text(c: dict) -> str:
    """Sentences for SWMR against RSW (05) from :func:`swmr_vs_rsw` in metrics.json."""
    return (
        f"At identical (order, width, step), SWMR attacks at or below RSW in {c['swmr_le_rsw_pairs']} "
        f"of {c['pairs']} settings (the claim that SWMR defends better {holds(c['swmr_le_rsw_all'])} "
        f"in every setting), and its test accuracy is lower in {c['swmr_test_acc_lower_pairs']}."
    )


def swmr_summary(metrics: dict) -> str:
    """The summary of notebook 05 from its metrics.json: the SWMR grid, then SWMR against RSW."""
    return window_text(metrics["claims"], "SWMR") + " " + swmr_text(metrics["swmr_vs_rsw"])
