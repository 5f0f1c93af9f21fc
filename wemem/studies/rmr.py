"""The RMR table (notebook 04; the slide table *Under RMR defense with λg = 0.0005 and
λr ∈ {0.01, 0.1, 1}*): the λr sweep, the paper's claims about it, computed, and its sentences."""

from __future__ import annotations

import numpy as np
import pandas as pd

from wemem.defenses.config import BASE, DefenseConfig
from wemem.errors import ParamsError
from wemem.studies.sweeps import mean_attack, said, test_acc_resolution
from wemem.studies.verdicts import decide, difference_se


def rmr_configs(*, tau: float, lambdas=(0.01, 0.1, 1.0)) -> list[DefenseConfig]:
    """RMR at threshold ``tau`` for each λr of ``lambdas``: one or more distinct values (else
    :class:`ParamsError` before anything trains: the table compares them, one row each)."""
    lambdas = list(lambdas)
    if not lambdas or len(set(lambdas)) != len(lambdas):
        raise ParamsError(f"lambdas = {lambdas!r}: one or more λr values, each once")
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
    """RMR table takeaways, each a verdict (:func:`wemem.studies.verdicts.decide`): larger λr
    lowers attack accuracy and test accuracy (smallest against largest λr); λr = 0.1 gives the
    best trade-off (trade-off = attack reduction minus test-accuracy loss, both against Base; λr =
    0.1's against the best other λr). Attack accuracies are the paper's mean."""
    m = mean_attack(table)
    base = m[m.setting == "Base"].iloc[0]
    r = m[m.method == "RMR"].sort_values("lambda_r").reset_index(drop=True)
    gain = (base.attack - r.attack) - (base.test_acc - r.test_acc)
    best = r.iloc[int(np.argmax(gain.to_numpy()))]
    lo, hi = r.iloc[0], r.iloc[-1]
    n_test = base.get("n_test", np.nan)
    at = np.isclose(r.lambda_r, 0.1)
    if at.any() and (~at).any():
        other = int(np.argmax(np.where(at, -np.inf, gain.to_numpy())))
        one, o = r[at].iloc[0], r.iloc[other]
        noise = difference_se(
            one.attack_se, o.attack_se, test_acc_resolution(one.test_acc, o.test_acc, n_test)
        )
        best_is_0_1 = decide(float(gain[at].iloc[0] - gain.iloc[other]), noise)
    else:
        best_is_0_1 = decide(np.nan, np.nan)
    return {
        "attack_by_lambda": {f"{k:g}": float(v) for k, v in zip(r.lambda_r, r.attack, strict=True)},
        "test_acc_by_lambda": {
            f"{k:g}": float(v) for k, v in zip(r.lambda_r, r.test_acc, strict=True)
        },
        "larger_lambda_lowers_attack": decide(
            float(lo.attack - hi.attack), difference_se(lo.attack_se, hi.attack_se)
        ),
        "larger_lambda_lowers_test_acc": decide(
            float(lo.test_acc - hi.test_acc), test_acc_resolution(lo.test_acc, hi.test_acc, n_test)
        ),
        "best_tradeoff_lambda": float(best.lambda_r),
        "best_tradeoff_is_0_1": best_is_0_1,
        "base_attack": float(base.attack),
        "base_test_acc": float(base.test_acc),
    }


def rmr_text(c: dict) -> str:
    """Sentences for the RMR table (04) from its claims in metrics.json."""
    att, acc = c["attack_by_lambda"], c["test_acc_by_lambda"]
    parts = ", ".join(f"λr={k}: test {acc[k]:.3f} / attack {att[k]:.3f}" for k in att)
    return (
        f"Base: test accuracy {c['base_test_acc']:.3f}, mean attack accuracy {c['base_attack']:.3f}"
        f" (the paper's attacks). RMR — {parts}. Larger λr lowers attack accuracy: "
        f"{said(c['larger_lambda_lowers_attack'])}; lowers test accuracy: "
        f"{said(c['larger_lambda_lowers_test_acc'])}. The best trade-off is at λr = "
        f"{c['best_tradeoff_lambda']:g} (the paper's λr = 0.1 beats every other λr: "
        f"{said(c['best_tradeoff_is_0_1'])})."
    )
