"""Tables, checks and prose of the attacks notebook (08), computed from attack results."""

from __future__ import annotations

import numpy as np
import pandas as pd

from wemem.names import label
from wemem.studies import paper_values

METRICS = ["paper_metric", "balanced_accuracy", "auc", "tpr_at_1fpr", "tpr_at_01fpr"]


def combined(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One long table over stages (scalar columns only, for CSV and metrics.json)."""
    parts = []
    for s, f in frames.items():
        part = f.assign(stage=s)
        part.attrs = {}  # per-sample arrays stay with each stage's frame
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def side_by_side(table: pd.DataFrame) -> pd.DataFrame:
    """Attack × (stage, metric): the paper's figure beside balanced accuracy, AUC and low-FPR TPR."""
    t = table.assign(Attack=table.attack.map(label))
    wide = t.pivot_table(
        index=["Attack", "paper_metric_name"], columns="stage", values=METRICS, sort=False
    )
    stages = list(dict.fromkeys(table.stage))
    return wide.reindex(columns=[(m, s) for s in stages for m in METRICS]).swaplevel(axis=1)


def paper_comparison(table: pd.DataFrame, *, dataset: str, arch: str, stage: str = "iterative"):
    """The paper's Base attack accuracy (T-RMR) beside ours for the same dataset and architecture,
    or ``None`` when the paper reports no such row (e.g. offline data)."""
    paper = paper_values.base_attack_accuracy(dataset, arch)
    if paper is None:
        return None
    ours = table[table.stage == stage].set_index("attack")["paper_metric"]
    df = pd.DataFrame({"paper": paper, "ours": ours.reindex(paper.index)})
    df["delta"] = df["ours"] - df["paper"]
    df.attrs["source"] = paper_values.SOURCE
    return df


def checks(table: pd.DataFrame, names: list[str], stages: list[str]) -> dict[str, bool]:
    vals = table[["balanced_accuracy", "auc", "tpr_at_1fpr"]].to_numpy(dtype=float)
    finite = vals[np.isfinite(vals)]
    return {
        "every_attack_every_stage": set(zip(table.stage, table.attack, strict=True))
        == {(s, n) for s in stages for n in names},
        "metrics_in_unit_interval": bool(((finite >= 0) & (finite <= 1)).all()),
        "auc_defined": bool(np.isfinite(table.auc).all()),
    }


def claims(table: pd.DataFrame) -> dict:
    """Mean AUC per stage and family, and which attack leaks most at the last stage."""
    last = list(dict.fromkeys(table.stage))[-1]
    by = table.groupby(["stage", "family"])["auc"].mean()
    top = table[table.stage == last].sort_values("auc", ascending=False).iloc[0]
    out = {
        "mean_auc": {f"{s}/{f}": float(v) for (s, f), v in by.items()},
        "strongest_attack": str(top.attack),
        "strongest_auc": float(top.auc),
        "last_stage": last,
    }
    stages = list(dict.fromkeys(table.stage))
    if len(stages) > 1:
        first = table[table.stage == stages[0]].set_index("attack").auc
        lastt = table[table.stage == last].set_index("attack").auc
        out["attacks_gaining"] = int((lastt > first).sum())
        out["attacks_total"] = int(len(lastt))
    return out


def summary_text(metrics: dict) -> str:
    c, s = metrics["claims"], metrics["settings"]
    text = (
        f"Against the {c['last_stage']} victim (`{s['dataset']}`, `{s['arch']}`, "
        f"{s['n_shadows']} adaptive shadows), the strongest attack is "
        f"{label(c['strongest_attack'])} with AUC {c['strongest_auc']:.3f}."
    )
    if "attacks_gaining" in c:
        text += (
            f" {c['attacks_gaining']} of {c['attacks_total']} attacks reach a higher AUC on the "
            f"{c['last_stage']} victim than on the first stage listed."
        )
    fam = {k: v for k, v in c["mean_auc"].items() if k.startswith(c["last_stage"] + "/")}
    text += (
        " Mean AUC by family: "
        + ", ".join(f"{k.split('/')[1]} {v:.3f}" for k, v in sorted(fam.items()))
        + "."
    )
    return text
