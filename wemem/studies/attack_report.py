"""Tables, checks and prose of the attacks notebook (08), computed from attack results."""

from __future__ import annotations

import numpy as np
import pandas as pd

from wemem.names import label
from wemem.studies import paper_values
from wemem.studies import verdicts as vd

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


def _with_auc_se(table: pd.DataFrame) -> pd.DataFrame:
    rows = zip(table.auc, table.n_in, table.n_out, strict=True)
    return table.assign(auc_se=[vd.auc_se(a, i, o) for a, i, o in rows])


def checks(table: pd.DataFrame, *, profile: str) -> dict:
    """What notebook 08 asserts, each able to fail on a wrong result: every AUC finite and every
    metric in [0, 1]; every attack's TPR at 0.1 % FPR at most its TPR at 1 % FPR (a ROC curve
    rises: fails on a threshold pointing the wrong way); and, statistical (not applicable in the
    tiny profile), the last stage leaking above chance (mean AUC over the attacks − ½ beyond its
    sampling SE), without which no comparison of attacks means anything."""
    vals = table[["balanced_accuracy", "auc", "tpr_at_1fpr"]].to_numpy(dtype=float)
    finite = vals[np.isfinite(vals)]
    last = _with_auc_se(table[table.stage == list(dict.fromkeys(table.stage))[-1]])
    leak = vd.verdict(last.auc.mean() - 0.5, last.auc_se.mean())
    return {
        "auc_finite_metrics_in_unit_interval": bool(
            np.isfinite(table.auc).all() and ((finite >= 0) & (finite <= 1)).all()
        ),
        "tpr_rises_with_fpr": bool((table.tpr_at_01fpr <= table.tpr_at_1fpr + 1e-12).all()),
        "last_stage_leaks_above_chance": vd.statistical_check(leak == vd.HOLDS, profile=profile),
    }


def claims(table: pd.DataFrame) -> dict:
    """Mean AUC per stage and family, which attack leaks most at the last stage and, with two or
    more stages, whether the last leaks more than the first: per attack (``attacks_gaining``: AUC
    higher; ``attacks_gaining_beyond_noise``: by more than the two AUCs' sampling SE) and on the
    mean over the attacks (``last_stage_leaks_more``, a decided claim, :mod:`.verdicts`)."""
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
        t = _with_auc_se(table)
        first = t[t.stage == stages[0]].set_index("attack")
        lastt = t[t.stage == last].set_index("attack").reindex(first.index)
        se = [vd.difference_se(a, b) for a, b in zip(lastt.auc_se, first.auc_se, strict=True)]
        gain = lastt.auc - first.auc
        out["attacks_gaining"] = int((gain > 0).sum())
        out["attacks_gaining_beyond_noise"] = int((gain > np.asarray(se)).sum())
        out["attacks_total"] = int(len(lastt))
        out["last_stage_leaks_more"] = vd.decide(
            float(gain.mean()),
            vd.difference_se(lastt.auc_se.mean(), first.auc_se.mean()),
            noise="AUC sampling SE (one seed)",
        )
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
            f"{c['last_stage']} victim than on the first stage listed, "
            f"{c['attacks_gaining_beyond_noise']} of them beyond the sampling noise; that the "
            f"{c['last_stage']} victim leaks more on average {vd.describe(c['last_stage_leaks_more'])}."
        )
    fam = {k: v for k, v in c["mean_auc"].items() if k.startswith(c["last_stage"] + "/")}
    text += (
        " Mean AUC by family: "
        + ", ".join(f"{k.split('/')[1]} {v:.3f}" for k, v in sorted(fam.items()))
        + "."
    )
    return text
