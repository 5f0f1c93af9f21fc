"""Fig. 8, Fig. 9 and the pruning rates (notebook 09): the defenses under iterative vs one-shot
pruning, under L1- vs L2-structured pruning and at other pruning rates, the claims about them,
computed, with the noise margin that says whether two attack accuracies differ at all."""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd

from wemem.defenses.config import DefenseConfig
from wemem.experiment.replicate import Experiment
from wemem.params import Settings
from wemem.studies import verdicts as vd
from wemem.studies.comparison import Choice, comparison_configs_for
from wemem.studies.sweeps import select, sweep


def pruning_configs(
    comparison: list[DefenseConfig], *, defenses=("Base", "RSW", "RMR", "SWMR")
) -> list[DefenseConfig]:
    """Fig. 8: each of ``defenses`` at its comparison setting (``comparison``:
    :func:`~wemem.studies.comparison.comparison_configs`) under iterative, then one-shot pruning."""
    chosen = select(comparison, defenses)
    return [
        c.relabel(setting=f"{c.setting} ({pruning})", defense_name=c.setting, pruning=pruning)
        for pruning in ("iterative", "one-shot")
        for c in chosen
    ]


def setting_sweep(
    settings: Settings,
    field: str,
    values,
    attacks,
    *,
    defenses=("Base", "SWMR"),
    attack_epochs: int,
    attack_train_max: int | None,
    choice: Choice | None = None,
) -> pd.DataFrame:
    """The comparison defenses under other pruning settings (``pruning_rate`` 0.5/0.6/0.7, or
    ``pruning_approach`` l1_unstructured / l1_structured / l2_structured): one experiment per value,
    dense models shared through the cache."""
    frames = []
    for v in values:
        exp = Experiment(replace(settings, **{field: v}), seed=settings.seeds[0])
        configs = select(comparison_configs_for(exp, choice or Choice()), defenses)
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


def _attack_se(table: pd.DataFrame) -> pd.Series:
    """Per row: the binomial SE of its attack figure
    (:func:`~wemem.studies.verdicts.balanced_accuracy_se` on the row's ``n_in`` / ``n_out``)."""
    rows = zip(table.paper_metric, table.n_in, table.n_out, strict=True)
    return pd.Series([vd.balanced_accuracy_se(a, i, o) for a, i, o in rows], index=table.index)


def pruning_claims(table: pd.DataFrame) -> dict:
    """Iterative vs one-shot per defense: mean attack accuracy and test accuracy, and the decided
    claims (:mod:`~wemem.studies.verdicts`; one seed, so the resolution is the binomial SE of the
    mean attack accuracy, averaged over the attacks as if fully correlated):
    ``iterative_leaks_more_for_base`` (Base iterative − one-shot) and, per WeMem method,
    ``below_base_iterative`` (its iterative attack accuracy − Base's);
    ``defenses_reduce_iterative_leakage`` counts the methods for which that one holds."""
    g = table.assign(se=_attack_se(table)).groupby(["defense_name", "pruning"], sort=False)
    att, se = g["paper_metric"].mean().unstack(), g["se"].mean().unstack()
    acc = g["test_acc"].first().unstack()
    noise = "binomial SE of the attack accuracies (one seed)"
    base_gap = float(att.loc["Base", "iterative"] - att.loc["Base", "one-shot"])
    base_se = vd.difference_se(se.loc["Base", "iterative"], se.loc["Base", "one-shot"])
    below = {
        d: vd.decide(
            att.loc[d, "iterative"] - att.loc["Base", "iterative"],
            vd.difference_se(se.loc[d, "iterative"], se.loc["Base", "iterative"]),
            direction="less",
            noise=noise,
        )
        for d in att.index.drop("Base")
    }
    return {
        "attack": {d: {p: float(v) for p, v in row.items()} for d, row in att.iterrows()},
        "test_acc": {d: {p: float(v) for p, v in row.items()} for d, row in acc.iterrows()},
        "base_iterative_minus_one_shot": base_gap,
        "iterative_leaks_more_for_base": vd.decide(base_gap, base_se, noise=noise),
        "below_base_iterative": below,
        "defenses_reduce_iterative_leakage": sum(b["status"] == vd.HOLDS for b in below.values()),
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
    n_in, n_out = int(table.n_in.iloc[0]), int(table.n_out.iloc[0])
    res = attack_resolution(n_in, n_out)
    diff = att[second] - att[first]
    base = att.loc["Base"] if "Base" in att.index else None
    below = 0 if base is None else int((att.drop("Base") < base - res).to_numpy().sum())
    return {
        "approaches": [first, second],
        "attack": {d: {a: float(v) for a, v in row.items()} for d, row in att.iterrows()},
        "test_acc": {d: {a: float(v) for a, v in row.items()} for d, row in acc.iterrows()},
        "second_minus_first": {d: float(v) for d, v in diff.items()},
        "resolution": res,
        "n_in": n_in,
        "n_out": n_out,
        "resolved": {d: bool(abs(v) > res) for d, v in diff.items()},
        "any_difference_resolved": bool((diff.abs() > res).any()),
        "defense_below_base_beyond_resolution": below,
        "defense_approach_pairs": int(att.drop("Base", errors="ignore").size),
        "below_base": _below_base(att, attack_resolution(n_in, n_out, z=1.0)),
    }


def _below_base(att: pd.DataFrame, se: float) -> dict:
    """Per (defense, approach) of ``att`` (defense × approach): the decided claim "attack accuracy
    below Base's under the same approach", with the difference's worst-case binomial SE ``se``."""
    if "Base" not in att.index:
        return {}
    return {
        f"{d} · {a}": vd.decide(
            att.loc[d, a] - att.loc["Base", a],
            se,
            direction="less",
            noise="binomial SE (worst case)",
        )
        for d in att.index.drop("Base")
        for a in att.columns
    }


def pruning_text(c: dict) -> str:
    """Sentences for Fig. 8 (iterative vs one-shot) from its claims in metrics.json."""
    parts = "; ".join(
        f"{d}: {v['iterative']:.3f} iterative / {v['one-shot']:.3f} one-shot"
        for d, v in c["attack"].items()
    )
    n = len(c.get("below_base_iterative", {}))
    return (
        f"Mean attack accuracy — {parts}. That iterative pruning leaks more than one-shot under "
        f"Base {vd.describe(c['iterative_leaks_more_for_base'])}; "
        f"{c['defenses_reduce_iterative_leakage']} of the {n} WeMem methods lower the iterative "
        f"leakage below Base's beyond the noise."
    )


def rates_text(rates: dict) -> str:
    """Sentences for the pruning rates from :func:`sweep_means` in metrics.json."""
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
