"""The RMR table (notebook 04; the slide table *Under RMR defense with λg = 0.0005 and
λr ∈ {0.01, 0.1, 1}*): the λr sweep, the paper's claims about it, computed, and its sentences."""

from __future__ import annotations

import numpy as np
import pandas as pd

from wemem.defenses.config import BASE, DefenseConfig
from wemem.studies.sweeps import holds, mean_attack


def rmr_configs(*, tau: float, lambdas=(0.01, 0.1, 1.0)) -> list[DefenseConfig]:
    """RMR at threshold ``tau`` for each λr of ``lambdas``."""
    return [
        DefenseConfig(
            "rmr",
            {"tau": tau, "lambda_r": lr},
            {"setting": f"RMR λr={lr:g}", "method": "RMR", "lambda_r": lr},
        )
        for lr in lambdas
    ]


def table_configs(*, tau: float, lambdas=(0.01, 0.1, 1.0)) -> list[DefenseConfig]:
    """Notebook 04: Base, then :func:`rmr_configs`."""
    return [BASE, *rmr_configs(tau=tau, lambdas=lambdas)]


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


def rmr_text(c: dict) -> str:
    """Sentences for the RMR table (04) from its claims in metrics.json."""
    att, acc = c["attack_by_lambda"], c["test_acc_by_lambda"]
    parts = ", ".join(f"λr={k}: test {acc[k]:.3f} / attack {att[k]:.3f}" for k in att)
    return (
        f"Base: test accuracy {c['base_test_acc']:.3f}, mean attack accuracy {c['base_attack']:.3f}. "
        f"RMR — {parts}. Larger λr lowers attack accuracy: {holds(c['larger_lambda_lowers_attack'])}; "
        f"lowers test accuracy: {holds(c['larger_lambda_lowers_test_acc'])}. The best trade-off is at "
        f"λr = {c['best_tradeoff_lambda']:g} (the paper's λr = 0.1: {holds(c['best_tradeoff_is_0_1'])})."
    )
