"""The strongest attacks' table, the claim "WeMem lowers leakage against them" and the
memorization view (issue 15), from :class:`wemem.studies.strongest.Scores`.

Table. One row per defense setting and attack: AUC and TPR at 0.1 % and 1 % FPR, each with its
stratified-bootstrap 95 % interval and standard error (:func:`wemem.attacks.intervals.
metric_intervals`), the targets the attack read and their counts. A TPR at an FPR below
``1 / n_out`` is flagged (``*_resolvable`` False): the non-members cannot resolve it.

Claim. The *strongest* attack is the one with the highest TPR at the claim's FPR against Base.
For each WeMem method (RSW, RMR, SWMR) the difference ``TPR(method) − TPR(Base)`` under that
attack is judged against ``sqrt(se_method² + se_Base²)`` (the two victims' bootstrap standard
errors; they are separate models, so independent): *holds* when the method is lower by more than
that, *does not hold* when higher by more, else *unresolved* (:mod:`wemem.studies.verdicts`).
The overall claim holds when every method's does, does not hold when any method's does not, and
is unresolved otherwise. The same verdicts are given for every attack.

Memorization view. For one attack and each setting: the threshold that keeps the FPR at most
``fpr`` on that setting's non-members, and the TPR it reaches within each mem-score decile of the
victim's members (decile 10 = the most memorized). The members are the same rows for every
setting (the victim's split), so the deciles are too.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from wemem.attacks.intervals import metric_intervals, metric_name
from wemem.studies.strongest import ATTACKS, LABELS, TARGETS, Scores
from wemem.studies.verdicts import FAILS, HOLDS, UNRESOLVED, decide

__all__ = ["claims", "decile_table", "strongest_table"]

FPRS = (0.001, 0.01)
WEMEM_METHODS = ("RSW", "RMR", "SWMR")


def strongest_table(
    scores: list[Scores], *, fprs=FPRS, n_boot: int = 200, seed: int = 0
) -> pd.DataFrame:
    """One row per (setting, attack) in the order given: metrics with intervals (module doc)."""
    rows = []
    for i, s in enumerate(scores):
        m = metric_intervals(s.scores_in, s.scores_out, fprs=fprs, n_boot=n_boot, seed=seed + i)
        row = {
            "setting": s.setting,
            "method": s.method,
            "attack": LABELS[s.attack],
            "targets": TARGETS[s.attack],
            "n_in": len(s.scores_in),
            "n_out": len(s.scores_out),
        }
        for name, v in m.items():
            row[name] = v["value"]
            row[f"{name}_lo"], row[f"{name}_hi"], row[f"{name}_se"] = v["lo"], v["hi"], v["se"]
            if name != "auc":
                row[f"{name}_resolvable"] = v["resolvable"]
        row.update({k: v for k, v in s.extra.items() if k in ("a", "gamma", "references")})
        rows.append(row)
    return pd.DataFrame(rows)


def _decision(table: pd.DataFrame, method: str, base: str, attack: str, col: str) -> dict:
    a = table[(table.method == method) & (table.attack == attack)]
    b = table[(table.method == base) & (table.attack == attack)]
    if a.empty or b.empty:
        return decide(float("nan"), float("nan"), direction="less", noise="not run")
    d = float(a[col].iloc[0] - b[col].iloc[0])
    r = math.hypot(float(a[f"{col}_se"].iloc[0]), float(b[f"{col}_se"].iloc[0]))
    return {**decide(d, r, direction="less", noise="bootstrap SE of both victims"),
            "method": method, "attack": attack, "metric": col}  # fmt: skip


def claims(
    table: pd.DataFrame, *, fpr: float = 0.01, base: str = "Base", methods=WEMEM_METHODS
) -> dict:
    """The claim "WeMem lowers leakage against the strongest attacks" at ``fpr`` (module doc):
    ``{"strongest_attack", "metric", "status", "by_method": {...}, "by_attack": {...}}``."""
    col = metric_name(fpr)
    present = [m for m in methods if (table.method == m).any()]
    base_rows = table[table.method == base]
    if base_rows.empty or not present:
        return {"status": UNRESOLVED, "strongest_attack": None, "metric": col, "by_method": {},
                "by_attack": {}, "note": "no Base row or no WeMem row"}  # fmt: skip
    order = [LABELS[a] for a in ATTACKS]
    ranked = base_rows.set_index("attack")[col].reindex(order).dropna()
    strongest = str(ranked.idxmax())
    by_attack = {
        att: {m: _decision(table, m, base, att, col) for m in present} for att in ranked.index
    }
    statuses = [d["status"] for d in by_attack[strongest].values()]
    status = (
        HOLDS
        if all(s == HOLDS for s in statuses)
        else FAILS
        if any(s == FAILS for s in statuses)
        else UNRESOLVED
    )
    return {
        "status": status,
        "strongest_attack": strongest,
        "metric": col,
        "by_method": by_attack[strongest],
        "by_attack": by_attack,
    }


def _threshold(scores_out: np.ndarray, fpr: float) -> float:
    """The score a member must exceed for FPR ≤ ``fpr`` on these non-members (``> t``)."""
    srt = np.sort(np.asarray(scores_out, dtype=np.float64))[::-1]
    k = int(math.floor(fpr * srt.size))  # false positives allowed
    return float(srt[k]) if k < srt.size else -np.inf


def decile_table(
    scores: list[Scores], memscores: np.ndarray, *, attack: str, fpr: float = 0.01
) -> pd.DataFrame:
    """TPR at ``fpr`` per mem-score decile of the victim's members, for every setting's
    ``attack`` (module doc): columns setting, method, decile (1..10), mem_lo, mem_hi, n, tpr."""
    chosen = [s for s in scores if s.attack == attack]
    if not chosen:
        return pd.DataFrame(columns=["setting", "method", "decile", "mem_lo", "mem_hi", "n", "tpr"])
    mem = np.asarray(memscores, dtype=np.float64)
    edges = np.quantile(mem[chosen[0].rows_in], np.linspace(0, 1, 11))
    rows = []
    for s in chosen:
        m = mem[s.rows_in]
        dec = np.clip(np.searchsorted(edges, m, side="right"), 1, 10)
        hit = np.asarray(s.scores_in) > _threshold(s.scores_out, fpr)
        for d in range(1, 11):
            sel = dec == d
            rows.append({"setting": s.setting, "method": s.method, "decile": d,
                         "mem_lo": float(edges[d - 1]), "mem_hi": float(edges[d]),
                         "n": int(sel.sum()),
                         "tpr": float(hit[sel].mean()) if sel.any() else float("nan")})  # fmt: skip
    return pd.DataFrame(rows)


def attack_key(label: str) -> str:
    """The attack key of a table's label (``"LiRA (online)"`` → ``lira_online``)."""
    return {v: k for k, v in LABELS.items()}[label]


def stage_claims(table: pd.DataFrame, *, fpr: float = 0.01) -> dict:
    """Notebook 08 at low FPR: "iterative pruning leaks more than one-shot pruning, and more
    than the dense model", per attack, as TPR(iterative) − TPR(other) against the two victims'
    bootstrap standard errors (direction *greater*). ``{attack: {"one-shot": d, "dense": d}}``."""
    col = metric_name(fpr)
    out: dict = {}
    for attack in dict.fromkeys(table.attack):
        rows = table[table.attack == attack].set_index("setting")
        if "iterative" not in rows.index:
            continue
        it = rows.loc["iterative"]
        out[attack] = {
            other: {
                **decide(
                    float(it[col] - rows.loc[other, col]),
                    math.hypot(float(it[f"{col}_se"]), float(rows.loc[other, f"{col}_se"])),
                    noise="bootstrap SE of both victims",
                ),
                "metric": col,
            }  # fmt: skip
            for other in ("one-shot", "dense")
            if other in rows.index
        }
    return out


def summary_text(claim: dict) -> str:
    """One paragraph stating :func:`claims` with the figures that decided it."""
    if not claim.get("strongest_attack"):
        return "The strongest-attack claim was not evaluated (no Base row or no WeMem row)."
    parts = []
    for method, d in claim["by_method"].items():
        parts.append(
            f"{method} {d['status']} (difference {d['difference']:+.3f}, noise ±{d['resolution']:.3f})"
        )
    return (
        f"Against the strongest attack, **{claim['strongest_attack']}** (highest "
        f"{claim['metric'].replace('tpr@', 'TPR at ')} FPR against Base), the claim *WeMem lowers "
        f"leakage* **{claim['status']}**: " + "; ".join(parts) + "."
    )


def stage_text(stage_claims_: dict) -> str:
    """One line per attack stating :func:`stage_claims` ("iterative leaks more than ...")."""
    lines = []
    for attack, by_other in stage_claims_.items():
        said = [f"than {other}: {d['status']} (difference {d['difference']:+.3f}, "
                f"noise ±{d['resolution']:.3f})" for other, d in by_other.items()]  # fmt: skip
        if said:
            lines.append(f"- **{attack}**, iterative pruning leaks more " + "; ".join(said))
    return "\n".join(lines) or "No stage pair to compare (the run has no iterative stage)."
