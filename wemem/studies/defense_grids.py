"""The WeMem settings grids of notebooks 03–05, the comparisons of 06–10 (Fig. 7–9, DP-SGD, time)
and the paper's claims about them, computed.

Grids follow the paper's own rules (spec §2.2, §2.4): three window widths w ≈ {2/3, 4/9, 2/9}·n_c,
a small and a large step, both ranking orders; λr ∈ {0.01, 0.1, 1}; τ as the paper's raw value or
by quantile. Claims are evaluated on the results, never typed.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from wemem.names import label
from wemem.studies.defense_eval import window_grid

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


def baseline_configs(name: str, key: str, values, **fixed) -> list[tuple[str, dict, dict]]:
    """A sweep of one baseline over one setting (PPB β, ADV θ, RelaxLoss α, DP σ); ``fixed``
    settings are added to every point (e.g. ADV's ``attack_every``)."""
    return [
        (
            name,
            {key: float(v), **fixed},
            {"setting": f"{label(name)} {key}={v:g}", "method": label(name), key: float(v)},
        )
        for v in values
    ]


def comparison_configs(
    exp, *, tau_fraction: float = 0.1, adv: dict | None = None
) -> list[tuple[str, dict, dict]]:
    """Fig. 7: every defense at its chosen setting (spec §8.2: β=4, θ=2, σ=0.1, α=1; WeMem at the
    headline settings with the smallest window and small step, λr = 0.1)."""
    from wemem.defenses.baseline_catalog import PAPER_SETTINGS
    from wemem.studies.defense_eval import tau_for

    g = window_grid(exp)[-2]
    tau = tau_for(exp, fraction=tau_fraction)
    out = [base_config()]
    for name in ("ppb", "adv", "dp", "relaxloss"):
        st = {**PAPER_SETTINGS[name], **((adv or {}) if name == "adv" else {})}
        out.append((name, st, {"setting": label(name), "method": label(name)}))
    out += [
        ("rsw_l2h", {"width": g["width"], "step": g["step"]}, {"setting": "RSW", "method": "RSW"}),
        ("rmr", {"tau": tau, "lambda_r": 0.1}, {"setting": "RMR", "method": "RMR"}),
        (
            "swmr_h2l",
            {"width": g["width"], "step": g["step"], "tau": tau, "lambda_r": 0.1},
            {"setting": "SWMR", "method": "SWMR"},
        ),
    ]
    return out


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
    a, t = c["attack"], c["test_acc"]
    parts = "; ".join(f"{k}: test {t[k]:.3f}, attack {a[k]:.3f}" for k in a)
    return (
        f"{parts}. The lowest mean attack accuracy among the WeMem methods is {c['best_wemem']}'s; "
        f"that WeMem reduces attack accuracy more than every other defense "
        f"{_holds(c['wemem_lowest_attack'])} here, and that it keeps accuracy at or above the other "
        f"defenses' mean {_holds(c['wemem_best_test_acc_at_or_above_others_mean'])}."
    )


_TIME_KEY = {
    "base": "base",
    "rsw_l2h": "rsw",
    "rmr": "rmr",
    "swmr_h2l": "swmr",
    "ppb": "ppb",
    "adv": "adv",
    "relaxloss": "relaxloss",
    "dp": "dp",
}


def time_comparison(costs: pd.DataFrame, paper: pd.DataFrame, *, dataset: str, arch: str):
    """Our seconds and ratio to Base beside the paper's: its row for the same dataset and
    architecture when it has one, else the mean of its ratios over its four rows."""
    out = costs[["setting", "defense", "seconds", "epochs", "ratio_to_base"]].copy()
    key = out.defense.map(_TIME_KEY)
    same = paper[(paper.dataset == dataset) & (paper.arch == arch)].set_index("defense")
    if len(same):
        out["paper_ratio"] = key.map(same.paper_ratio).to_numpy()
        out["paper_source"] = f"{dataset}/{arch}"
    else:
        mean = paper.groupby("defense").paper_ratio.mean()
        out["paper_ratio"] = key.map(mean).to_numpy()
        out["paper_source"] = "mean of the paper's 4 rows"
    return out


def time_text(rows: list[dict]) -> str:
    r = {x["setting"]: x for x in rows}
    parts = ", ".join(
        f"{k} {v['ratio_to_base']:.2f}× (paper {v['paper_ratio']:.2f}×)"
        for k, v in r.items()
        if k != "Base"
    )
    return (
        f"Base fine-tuned the victim in {r['Base']['seconds']:.1f} s over the pruning rounds. "
        f"Ratios to Base: {parts}. Paper ratios: {rows[0]['paper_source']}."
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


def pruning_configs(
    exp, *, defenses=("Base", "RSW", "RMR", "SWMR")
) -> list[tuple[str, dict, dict]]:
    """Fig. 8: each defense (at its comparison setting) under iterative and one-shot pruning."""
    chosen = [c for c in comparison_configs(exp) if c[2]["setting"] in defenses]
    out = []
    for pruning in ("iterative", "one-shot"):
        for name, st, lab in chosen:
            out.append(
                (
                    name,
                    st,
                    {
                        **lab,
                        "setting": f"{lab['setting']} ({pruning})",
                        "defense_name": lab["setting"],
                        "pruning": pruning,
                    },
                )
            )
    return out


def pruning_claims(table: pd.DataFrame) -> dict:
    """Iterative vs one-shot per defense: mean attack accuracy and test accuracy."""
    g = table.groupby(["defense_name", "pruning"], sort=False)
    att = g["paper_metric"].mean().unstack()
    acc = g["test_acc"].first().unstack()
    base_gap = float(att.loc["Base", "iterative"] - att.loc["Base", "one-shot"])
    return {
        "attack": {d: {p: float(v) for p, v in row.items()} for d, row in att.iterrows()},
        "test_acc": {d: {p: float(v) for p, v in row.items()} for d, row in acc.iterrows()},
        "base_iterative_minus_one_shot": base_gap,
        "iterative_leaks_more_for_base": bool(base_gap > 0),
        "defenses_reduce_iterative_leakage": int(
            (att["iterative"].drop("Base") < att.loc["Base", "iterative"]).sum()
        ),
    }


def attack_resolution(n_in: int, n_out: int, *, z: float = 2.0) -> float:
    """Smallest difference between two attack accuracies that ``n_in`` members and ``n_out``
    non-members resolve: z·√2·SE, SE = ½·√(¼/n_in + ¼/n_out) the worst-case (rates ½) binomial
    standard error of a balanced accuracy. Training-seed variation is not in it: a lower bound on
    the noise of a comparison between two trained models."""
    return z * math.sqrt(2.0) * 0.5 * math.sqrt(0.25 / n_in + 0.25 / n_out)


def approach_claims(table: pd.DataFrame, *, field: str = "pruning_approach") -> dict:
    """Fig. 9 (spec §8.2): mean attack accuracy (the paper's figure, averaged over attacks) and test
    accuracy per defense under each structured approach; the second approach minus the first per
    defense, and whether it exceeds :func:`attack_resolution` of the victim's evaluation set."""
    g = table.groupby([field, "setting"], sort=False)
    att, acc = g["paper_metric"].mean().unstack(0), g["test_acc"].first().unstack(0)
    first, second = list(dict.fromkeys(table[field]))[:2]
    res = attack_resolution(int(table.n_in.iloc[0]), int(table.n_out.iloc[0]))
    diff = att[second] - att[first]
    base = att.loc["Base"] if "Base" in att.index else None
    below = 0 if base is None else int((att.drop("Base") < base - res).to_numpy().sum())
    return {
        "approaches": [first, second],
        "attack": {d: {a: float(v) for a, v in row.items()} for d, row in att.iterrows()},
        "test_acc": {d: {a: float(v) for a, v in row.items()} for d, row in acc.iterrows()},
        "second_minus_first": {d: float(v) for d, v in diff.items()},
        "resolution": res,
        "n_in": int(table.n_in.iloc[0]),
        "n_out": int(table.n_out.iloc[0]),
        "resolved": {d: bool(abs(v) > res) for d, v in diff.items()},
        "any_difference_resolved": bool((diff.abs() > res).any()),
        "defense_below_base_beyond_resolution": below,
        "defense_approach_pairs": int(att.drop("Base", errors="ignore").size),
    }


def pruning_text(c: dict) -> str:
    """Sentences for Fig. 8 (iterative vs one-shot) from its claims in metrics.json."""
    parts = "; ".join(
        f"{d}: {v['iterative']:.3f} iterative / {v['one-shot']:.3f} one-shot"
        for d, v in c["attack"].items()
    )
    return (
        f"Mean attack accuracy — {parts}. Under Base, iterative pruning leaks "
        f"{c['base_iterative_minus_one_shot']:+.3f} more than one-shot "
        f"({_holds(c['iterative_leaks_more_for_base'])} that it leaks more); "
        f"{c['defenses_reduce_iterative_leakage']} of the WeMem methods lower the iterative leakage "
        f"below Base."
    )


def rates_text(rates: dict) -> str:
    parts = "; ".join(
        f"p = {r}: " + ", ".join(f"{d} {v:.3f}" for d, v in row.items()) for r, row in rates.items()
    )
    return f"By pruning rate (mean attack accuracy): {parts}."


def approaches_text(c: dict, *, model: str = "") -> str:
    """Sentences for Fig. 9 (L1- vs L2-structured) that say whether the difference is resolved."""
    a1, a2 = c["approaches"]
    parts = "; ".join(
        f"{d}: attack {v[a1]:.3f} / {v[a2]:.3f}, test {c['test_acc'][d][a1]:.3f} / "
        f"{c['test_acc'][d][a2]:.3f}"
        for d, v in c["attack"].items()
    )
    resolved = [d for d, r in c["resolved"].items() if r]
    verdict = (
        f"the L1–L2 difference exceeds it for {', '.join(resolved)}"
        if resolved
        else "no L1–L2 difference exceeds it, so this run cannot tell the two approaches apart "
        "in leakage"
    )
    wemem_ = (
        f" {c['defense_below_base_beyond_resolution']} of {c['defense_approach_pairs']} "
        "(defense, approach) pairs attack below Base by more than that margin."
        if c["defense_approach_pairs"]
        else ""
    )
    return (
        f"Structured pruning{f' ({model})' if model else ''}, {a1} / {a2} — {parts}. With "
        f"{c['n_in']} members and {c['n_out']} non-members, differences within "
        f"±{c['resolution']:.3f} are inside the evaluation set's sampling noise alone; "
        f"{verdict}.{wemem_}"
    )


def pruning_summary(m: dict) -> str:
    """The summary of notebook 09 from its metrics.json: each section that ran, or why not."""
    s = m["settings"]
    out = []
    if "claims" in m:
        out.append(pruning_text(m["claims"]))
    if "rates" in m:
        out.append(rates_text(m["rates"]))
    if m.get("approach_claims"):
        model = f"{s['arch']} at width {s['width']:g} on {s['dataset']}"
        out.append(approaches_text(m["approach_claims"], model=model))
    elif "structured" in s.get("sections", ()):
        out.append(f"Structured pruning does not apply to `{s['arch']}` (no Conv2d layer).")
    return " ".join(out)


def pruning_checks(*, table=None, rate_table=None, appr=None, rates=(), approaches=()) -> dict:
    """Notebook 09's checks over the sections that ran (tables ``None`` when a section did not)."""
    checks = {}
    if table is not None:
        checks["both_prunings"] = set(table.pruning) == {"iterative", "one-shot"}
    if rate_table is not None:
        checks["every_rate"] = set(rate_table.pruning_rate) == set(rates)
    if appr is not None:
        checks["every_approach"] = set(appr.pruning_approach) == set(approaches)
    tables = [t for t in (table, rate_table, appr) if t is not None]
    checks["metrics_in_unit_interval"] = all(
        bool(t[["paper_metric", "auc"]].stack().between(0, 1).all()) for t in tables
    )
    return checks
