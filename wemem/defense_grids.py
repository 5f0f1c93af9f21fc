"""The WeMem settings grids of notebooks 03–05 and the paper's claims about them, computed.

Grids follow the paper's own rules (spec §2.2, §2.4): three window widths w ≈ {2/3, 4/9, 2/9}·n_c,
a small and a large step, both ranking orders; λr ∈ {0.01, 0.1, 1}; τ as the paper's raw value or
by quantile. Claims are evaluated on the results, never typed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from wemem.defense_eval import window_grid
from wemem.registry import label

ORDERS = {"H2L": ("rsw_h2l", "swmr_h2l"), "L2H": ("rsw_l2h", "swmr_l2h")}


def base_config() -> tuple[str, dict, dict]:
    return ("base", {}, {"setting": "Base", "method": "Base", "order": "", "width": 0, "step": 0})


def window_configs(
    exp,
    method: str,
    *,
    orders=("H2L", "L2H"),
    tau: float | None = None,
    lambda_r: float | None = None,
    widths=(),
    steps=(),
) -> list[tuple[str, dict, dict]]:
    """RSW or SWMR over widths × steps × orders (Fig. 5/6 grid; explicit widths/steps or the rule)."""
    configs = []
    for order in orders:
        name = ORDERS[order][0 if method == "rsw" else 1]
        for g in window_grid(exp, widths=widths, steps=steps):
            settings = {"width": g["width"], "step": g["step"]}
            if method == "swmr":
                settings |= {"tau": tau, "lambda_r": lambda_r}
            tag = f"{label(name)} w={g['width']} s={g['step']}"
            configs.append(
                (
                    name,
                    settings,
                    {
                        "setting": tag,
                        "method": method.upper(),
                        "order": order,
                        "width_fraction": g["width_fraction"],
                        "step_size": g["step_size"],
                    },
                )
            )
    return configs


def random_configs(exp, *, width: int, step: int) -> list[tuple[str, dict, dict]]:
    """The random-order ablation at one window (official name ``random``)."""
    return [
        (
            "random_window",
            {"width": width, "step": step},
            {
                "setting": f"RSW(random) w={width} s={step}",
                "method": "RSW",
                "order": "random",
                "width_fraction": np.nan,
                "step_size": "",
            },
        )
    ]


def rmr_configs(*, tau: float, lambdas=(0.01, 0.1, 1.0)) -> list[tuple[str, dict, dict]]:
    return [
        (
            "rmr",
            {"tau": tau, "lambda_r": lr},
            {"setting": f"RMR λr={lr:g}", "method": "RMR", "lambda_r": lr},
        )
        for lr in lambdas
    ]


def mean_attack(table: pd.DataFrame, metric: str = "paper_metric") -> pd.DataFrame:
    """Per setting: test accuracy and the attack ``metric`` averaged over attacks."""
    g = table.groupby("setting", sort=False)
    out = g[["test_acc", "finetune_seconds"]].first()
    out["attack"] = g[metric].mean()
    out["auc"] = g["auc"].mean()
    for col in ("method", "order", "width", "step", "width_fraction", "step_size", "lambda_r"):
        if col in table.columns:
            out[col] = g[col].first()
    return out.reset_index()


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


def rmr_claims(table: pd.DataFrame) -> dict:
    """RMR table takeaways: larger λr lowers attack and test accuracy; λr = 0.1 the best trade-off
    (trade-off = attack reduction minus test-accuracy loss, both against Base)."""
    m = mean_attack(table)
    base = m[m.setting == "Base"].iloc[0]
    r = m[m.method == "RMR"].sort_values("lambda_r")
    gain = (base.attack - r.attack) - (base.test_acc - r.test_acc)
    best = r.iloc[int(np.argmax(gain.to_numpy()))]
    return {
        "attack_by_lambda": {f"{k:g}": float(v) for k, v in zip(r.lambda_r, r.attack, strict=True)},
        "test_acc_by_lambda": {
            f"{k:g}": float(v) for k, v in zip(r.lambda_r, r.test_acc, strict=True)
        },
        "larger_lambda_lowers_attack": bool(np.all(np.diff(r.attack.to_numpy()) <= 0)),
        "larger_lambda_lowers_test_acc": bool(np.all(np.diff(r.test_acc.to_numpy()) <= 0)),
        "best_tradeoff_lambda": float(best.lambda_r),
        "best_tradeoff_is_0_1": bool(abs(best.lambda_r - 0.1) < 1e-12),
        "base_attack": float(base.attack),
        "base_test_acc": float(base.test_acc),
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


def _holds(flag: bool) -> str:
    return "holds" if flag else "does **not** hold"


def window_text(c: dict, method: str) -> str:
    """Sentences for a window grid (03, 05) from its claims in metrics.json."""
    widths = c["test_acc_by_width_fraction"]
    lo, hi = min(widths, key=float), max(widths, key=float)
    return (
        f"Base reaches test accuracy {c['base_test_acc']:.3f} at mean attack accuracy "
        f"{c['base_attack']:.3f}. Averaged over orders and steps, {method} reaches test accuracy "
        f"{widths[hi]:.3f} at the widest window and {widths[lo]:.3f} at the narrowest (the claim "
        f"that a narrower window costs accuracy {_holds(c['smaller_width_lowers_test_acc'])}). "
        f"The lowest mean attack accuracy, {c['best_attack']:.3f}, comes from {c['lowest_attack_setting']} "
        f"(the claim that small width with small step defends best "
        f"{_holds(c['lowest_attack_is_small_width_small_step'])}); {c['windows_below_base_attack']} "
        f"of {c['windows_total']} window settings attack below Base. Fine-tuning is on average "
        f"{c['mean_speedup_vs_base']:.1f}× faster than Base."
    )


def rmr_text(c: dict) -> str:
    """Sentences for the RMR table (04)."""
    att, acc = c["attack_by_lambda"], c["test_acc_by_lambda"]
    parts = ", ".join(f"λr={k}: test {acc[k]:.3f} / attack {att[k]:.3f}" for k in att)
    return (
        f"Base: test accuracy {c['base_test_acc']:.3f}, mean attack accuracy {c['base_attack']:.3f}. "
        f"RMR — {parts}. Larger λr lowers attack accuracy: {_holds(c['larger_lambda_lowers_attack'])}; "
        f"lowers test accuracy: {_holds(c['larger_lambda_lowers_test_acc'])}. The best trade-off is at "
        f"λr = {c['best_tradeoff_lambda']:g} (the paper's λr = 0.1: {_holds(c['best_tradeoff_is_0_1'])})."
    )


def swmr_text(c: dict) -> str:
    return (
        f"At identical (order, width, step), SWMR attacks at or below RSW in {c['swmr_le_rsw_pairs']} "
        f"of {c['pairs']} settings (the claim that SWMR defends better {_holds(c['swmr_le_rsw_all'])} "
        f"in every setting), and its test accuracy is lower in {c['swmr_test_acc_lower_pairs']}."
    )
