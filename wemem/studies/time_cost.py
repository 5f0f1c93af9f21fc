"""The time table (notebook 10; spec §8.1 T-time, the slide table *Time Cost Comparison in
Iterative Pruning*): each defense's fine-tuning wall-clock, its ratio to Base beside the paper's."""

from __future__ import annotations

import pandas as pd

from wemem.defenses.config import DefenseConfig
from wemem.experiment.replicate import Experiment
from wemem.studies.sweeps import check_configs

#: The paper's time-table row of each defense's official name.
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


def time_cost(exp: Experiment, configs: list[DefenseConfig]) -> pd.DataFrame:
    """Wall-clock of the victim's fine-tuning over the pruning rounds per defense, retrained (not
    read from the cache), with the ratio to Base (spec §8.1 T-time: per-epoch dev evaluation
    included, window precomputation excluded, as the official log line)."""
    check_configs(exp, configs)
    rows = []
    for c in configs:
        run = exp.defended("victim", c.name, use_cache=False, **c.settings)
        rows.append(
            {
                **c.labels,
                "defense": c.name,
                "seconds": run.summary["seconds"],
                "epochs": run.summary["epochs"],
                "test_acc": run.final.test_acc,
            }
        )
    df = pd.DataFrame(rows)
    base = df.loc[df.defense == "base", "seconds"].iloc[0]
    df["ratio_to_base"] = df.seconds / base
    return df


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
    """Sentences for the time table (10) from its rows in metrics.json."""
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
