"""Automatic WeMem settings: the abstract's "automatically adjust settings", in this project's design.

The paper claims an enhancement that picks the defense settings automatically; neither the slides
nor the released code describe it (spec §2.5). Our design, documented as such:

* **Only the defender's own data.** The defender owns the shadow models. Shadow 0 plays the victim
  (its members, dev and non-members are the defender's), shadows 1..k−1 play the adaptive attacker.
  The real victim's non-members are never looked at during the search.
* **Objective.** Utility = dev accuracy of the pseudo-victim after iterative pruning with the
  candidate defense. Privacy risk = the adaptive attack *advantage* max over the metric attacks of
  2·BA − 1 (Yeom et al.'s membership advantage). With a target advantage the search maximises
  utility among the candidates at or below it (and, if none is, takes the least risky); without
  one it maximises ``utility − weight · advantage``.
* **Budget: successive halving** (Jamieson & Talwalkar 2016) over the number of models: every
  candidate is first judged with 2 models (1 attacker shadow), the best 1/η go on to more attacker
  shadows, and so on. Models are cached, so a later rung only trains the shadows it adds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from wemem.attacks import METRIC_ATTACKS, run_metric_attacks
from wemem.defenses.config import DefenseConfig, headline_window
from wemem.experiment.replicate import Experiment, pool_shadows
from wemem.names import label
from wemem.studies.sweeps import tau_for, window_grid_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    defense: str
    settings: dict = field(hash=False)
    name: str = ""


def candidates(
    exp: Experiment,
    *,
    orders=("H2L", "L2H"),
    lambdas=(0.1,),
    tau_fractions=(0.1,),
    rmr_lambdas=(0.01, 0.1, 1.0),
) -> list[Candidate]:
    """RSW and SWMR over the paper's window grid × orders (× λr, τ for SWMR), and RMR over λr, τ."""
    out = []
    grid = window_grid_for(exp)
    for order in orders:
        suffix = order.lower()
        for g in grid:
            ws = {"width": g.width, "step": g.step}
            out.append(
                Candidate(f"rsw_{suffix}", ws, f"{label('rsw_' + suffix)} w={g.width} s={g.step}")
            )
            for lr in lambdas:
                for tf in tau_fractions:
                    tau = tau_for(exp, fraction=tf)
                    out.append(
                        Candidate(
                            f"swmr_{suffix}",
                            {**ws, "tau": tau, "lambda_r": lr},
                            f"{label('swmr_' + suffix)} w={g.width} s={g.step} λr={lr:g} τ@{tf:g}",
                        )
                    )
    for lr in rmr_lambdas:
        for tf in tau_fractions:
            out.append(
                Candidate(
                    "rmr",
                    {"tau": tau_for(exp, fraction=tf), "lambda_r": lr},
                    f"RMR λr={lr:g} τ@{tf:g}",
                )
            )
    return out


def estimate(exp: Experiment, cand: Candidate, *, n_models: int, attacks=METRIC_ATTACKS) -> dict:
    """Utility and risk of a candidate from shadows only: shadow0 = pseudo-victim."""
    roles = [f"shadow{i}" for i in range(n_models)]
    runs = {r: exp.defended(r, cand.defense, **cand.settings) for r in roles}
    victim = runs[roles[0]]
    s_in, s_out = pool_shadows([runs[r].final for r in roles[1:]])
    table = run_metric_attacks(
        list(attacks), s_in, s_out, victim.final.members, victim.final.nonmembers
    )
    advantage = float((2 * table["balanced_accuracy"] - 1).max())
    dev = victim.summary["rounds"][-1]["best_dev_acc"]
    return {"dev_acc": float(dev), "advantage": advantage, "seconds": victim.summary["seconds"]}


def _rank(rows: pd.DataFrame, *, target: float | None, weight: float) -> pd.DataFrame:
    if target is None:
        return rows.assign(score=rows.dev_acc - weight * rows.advantage).sort_values(
            "score", ascending=False
        )
    feasible = rows.advantage <= target
    return rows.assign(score=np.where(feasible, rows.dev_acc, -rows.advantage - 1.0)).sort_values(
        "score", ascending=False
    )


def successive_halving(
    exp: Experiment,
    cands: list[Candidate],
    *,
    rungs=(2, 3, 5),
    eta: int = 3,
    target_advantage: float | None = None,
    weight: float = 1.0,
) -> tuple[Candidate, pd.DataFrame]:
    """Search ``cands``; rung i judges the survivors with ``rungs[i]`` models. Returns the chosen
    candidate and the full trace (one row per candidate and rung, with whether it went on)."""
    if max(rungs) > len(exp.roles) - 1:
        raise ValueError(
            f"rungs {rungs} need {max(rungs)} shadows; the experiment has {len(exp.roles) - 1}"
        )
    alive, trace = list(cands), []
    for i, n in enumerate(rungs):
        rows = pd.DataFrame(
            [
                {
                    "rung": i,
                    "n_models": n,
                    "candidate": c.name,
                    "defense": c.defense,
                    **estimate(exp, c, n_models=n),
                }
                for c in alive
            ]
        )
        rows = _rank(rows, target=target_advantage, weight=weight)
        keep = 1 if i == len(rungs) - 1 else max(1, int(np.ceil(len(alive) / eta)))
        rows["kept"] = [j < keep for j in range(len(rows))]
        trace.append(rows)
        by_name = {c.name: c for c in alive}
        alive = [by_name[name] for name in rows.candidate[:keep]]
        log.info("rung %d (%d models): %d candidates, %d kept", i, n, len(rows), keep)
    return alive[0], pd.concat(trace, ignore_index=True)


def hand_picked(exp: Experiment, *, tau_fraction: float = 0.1) -> list[Candidate]:
    """The paper's headline choices, on this data: RSW(L→H) and SWMR(H→L) with the smallest width
    and small step, λr = 0.1; RMR with λr = 0.1 (spec §1, §2.4)."""
    g = headline_window(window_grid_for(exp))
    ws = {"width": g.width, "step": g.step}
    tau = tau_for(exp, fraction=tau_fraction)
    return [
        Candidate("rsw_l2h", ws, f"RSW(L→H) w={g.width} s={g.step}"),
        Candidate(
            "swmr_h2l",
            {**ws, "tau": tau, "lambda_r": 0.1},
            f"SWMR(H→L) w={g.width} s={g.step} λr=0.1 τ@{tau_fraction:g}",
        ),
        Candidate("rmr", {"tau": tau, "lambda_r": 0.1}, f"RMR λr=0.1 τ@{tau_fraction:g}"),
    ]


def victim_configs(chosen: Candidate, picks: list[Candidate]) -> list[DefenseConfig]:
    """Configs for :func:`wemem.studies.sweeps.sweep`: Base, the chosen setting, the hand-picked."""
    base = DefenseConfig("base", {}, {"setting": "Base", "method": "Base", "choice": "base"})
    rows = [
        DefenseConfig(
            chosen.defense, chosen.settings, {"setting": chosen.name, "choice": "automatic"}
        )
    ]
    rows += [
        DefenseConfig(c.defense, c.settings, {"setting": c.name, "choice": "hand-picked"})
        for c in picks
        if c.name != chosen.name
    ]
    return [base, *rows]


def claims(trace: pd.DataFrame, victim: pd.DataFrame) -> dict:
    """How the automatic choice fares on the real victim against Base and the hand-picked ones."""
    g = victim.groupby("setting", sort=False)
    t = (
        g[["test_acc", "finetune_seconds"]]
        .first()
        .assign(attack=g["paper_metric"].mean(), auc=g["auc"].mean(), choice=g["choice"].first())
    )
    auto = t[t.choice == "automatic"].iloc[0]
    base = t[t.choice == "base"].iloc[0]
    hand = t[t.choice == "hand-picked"]
    return {
        "chosen": str(auto.name),
        "candidates": int((trace.rung == 0).sum()),
        "model_trainings": int(trace.n_models.sum()),
        "auto_test_acc": float(auto.test_acc),
        "auto_auc": float(auto.auc),
        "base_test_acc": float(base.test_acc),
        "base_auc": float(base.auc),
        "hand_best_auc": float(hand.auc.min()) if len(hand) else float("nan"),
        "hand_best_test_acc": float(hand.test_acc.max()) if len(hand) else float("nan"),
        "auto_below_base_auc": bool(auto.auc < base.auc),
        "auto_test_acc_ge_hand_mean": bool(auto.test_acc >= hand.test_acc.mean())
        if len(hand)
        else False,
    }


def summary_text(c: dict) -> str:
    return (
        f"Successive halving judged {c['candidates']} candidate settings on the defender's shadows "
        f"only ({c['model_trainings']} shadow evaluations in all) and chose **{c['chosen']}**. On the "
        f"real victim it reaches test accuracy {c['auto_test_acc']:.3f} at mean attack AUC "
        f"{c['auto_auc']:.3f}, against Base {c['base_test_acc']:.3f} / {c['base_auc']:.3f} and the "
        f"hand-picked headline settings (best test accuracy {c['hand_best_test_acc']:.3f}, lowest AUC "
        f"{c['hand_best_auc']:.3f})."
    )


def candidate_table(cands: list[Candidate]) -> pd.DataFrame:
    return pd.DataFrame([{"candidate": c.name, "defense": c.defense, **c.settings} for c in cands])


def victim_summary(victim: pd.DataFrame) -> pd.DataFrame:
    g = victim.groupby("setting", sort=False)
    return (
        g[["choice", "test_acc", "finetune_seconds"]]
        .first()
        .assign(attack=g["paper_metric"].mean(), auc=g["auc"].mean())
    )


def plot_trace(trace: pd.DataFrame):
    """Dev accuracy against attack advantage for every candidate, one colour per rung; the
    survivors of each rung circled."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
    for rung, d in trace.groupby("rung"):
        ax.scatter(d.advantage, d.dev_acc, s=18, label=f"rung {rung} ({d.n_models.iloc[0]} models)")
        kept = d[d.kept]
        ax.scatter(kept.advantage, kept.dev_acc, s=80, facecolors="none", edgecolors="black")
    ax.set_xlabel("attack advantage on the pseudo-victim (shadow 0)")
    ax.set_ylabel("pseudo-victim dev accuracy")
    ax.legend(fontsize=8)
    return fig
