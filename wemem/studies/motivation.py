"""The motivation experiment: does iterative pruning leak more membership than dense or one-shot?

For every replicate seed, the victim and every shadow are trained dense, pruned one-shot to the
final rate, and pruned iteratively over the 5-round schedule (Base fine-tuning throughout). The four
metric attacks are calibrated on the pooled shadows *at the same stage* (adaptive attacker) and
applied to the victim: after dense training, after one-shot pruning, and after every round of
iterative pruning. Everything is returned as tidy tables; the notebook only plots them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from wemem import progress as _progress
from wemem.attacks import METRIC_ATTACKS, metric_attack
from wemem.attacks.metrics import roc_auc
from wemem.experiment.executor import Request
from wemem.experiment.replicate import Experiment, ModelOutputs, pool_shadows
from wemem.params import Settings
from wemem.studies import verdicts as vd
from wemem.studies.sparsity import layer_sizes, sparsity_reached

log = logging.getLogger(__name__)

_METRICS = ("balanced_accuracy", "accuracy", "auc", "tpr_at_1fpr", "tpr_at_01fpr")


def attack_rows(
    victim: ModelOutputs,
    shadows: list[ModelOutputs],
    *,
    names=METRIC_ATTACKS,
    memscore: np.ndarray | None = None,
    mem_quantile: float = 0.25,
    **labels,
) -> list[dict]:
    """One row per metric attack on ``victim`` calibrated on the pooled ``shadows``.

    Besides the attack's metrics, ``auc_flipped`` / ``auc_clean`` are the AUC of the attack score
    restricted to label-noise (flipped) members vs flipped non-members, and to clean ones (NaN when a
    group is empty): where memorization sits. With ``memscore`` (indexed by training-pool row),
    ``auc_high_mem`` / ``auc_low_mem`` compare the members in the top / bottom ``mem_quantile`` of
    mem-score with the non-members in the same mem-score range. Only non-members drawn from the
    training pool have a mem-score (those from the test pool have none), so the comparison is like
    for like: atypical members against equally atypical non-members.
    """
    s_in, s_out = pool_shadows(shadows)
    high = low = None
    if memscore is not None:
        m = memscore[victim.rows_in]
        hi_t, lo_t = np.quantile(m, 1 - mem_quantile), np.quantile(m, mem_quantile)
        scored = victim.rows_out < len(memscore)
        m_out = np.full(len(victim.rows_out), np.nan)
        m_out[scored] = memscore[victim.rows_out[scored]]
        high, low = m >= hi_t, m <= lo_t
        high_out, low_out = scored & (m_out >= hi_t), scored & (m_out <= lo_t)
    rows = []
    for name in names:
        r = metric_attack(name, s_in, s_out, victim.members, victim.nonmembers)
        fi, fo = victim.flipped_in, victim.flipped_out
        sc_in, sc_out = np.asarray(r["scores_in"]), np.asarray(r["scores_out"])
        auc_f, auc_c = _auc(sc_in[fi], sc_out[fo]), _auc(sc_in[~fi], sc_out[~fo])
        if high is not None:
            labels = {
                **labels,
                "auc_high_mem": _auc(sc_in[high], sc_out[high_out]),
                "auc_low_mem": _auc(sc_in[low], sc_out[low_out]),
                "n_high_mem_members": int(high.sum()),
                "n_high_mem_nonmembers": int(high_out.sum()),
                "n_low_mem_members": int(low.sum()),
                "n_low_mem_nonmembers": int(low_out.sum()),
            }
        metrics = {k: r[k] for k in _METRICS}
        rows.append({**labels, "attack": name, **metrics, "auc_flipped": auc_f, "auc_clean": auc_c})
        rows[-1] |= {"n_in": len(sc_in), "n_out": len(sc_out)}
    return rows


def _auc(scores_in: np.ndarray, scores_out: np.ndarray) -> float:
    return roc_auc(scores_in, scores_out) if len(scores_in) and len(scores_out) else float("nan")


@dataclass(frozen=True)
class Stage:
    """One attacked stage of a seed: every model's outputs, and the victim's fine-tuning cost."""

    stage: str  # dense | one-shot | iterative
    round: int
    sparsity: float
    outputs: dict[str, ModelOutputs]  # role -> outputs
    epochs: int
    seconds: float


def _train(exp: Experiment, seed: int, bar) -> tuple[dict, dict, dict, list[dict]]:
    """Every role's dense, one-shot and iterative runs, and the achieved sparsity of each layer."""
    dense, oneshot, iterative, layers = {}, {}, {}, []
    for role in exp.roles:
        dense[role] = exp.dense(role)
        oneshot[role] = exp.pruned(role, one_shot=True)
        iterative[role] = exp.pruned(role)
        for stage, run_ in (("one-shot", oneshot[role]), ("iterative", iterative[role])):
            where = {"seed": seed, "role": role, "stage": stage}
            target, sizes = run_.summary["target_sparsity"], layer_sizes(run_.state)
            layers += [
                {**where, "layer": k, "sparsity": f, "target": target, "weights": sizes.get(k)}
                for k, f in run_.summary["layer_sparsity"].items()
            ]
        bar.update(1)
    return dense, oneshot, iterative, layers


def _stages(exp: Experiment, dense: dict, oneshot: dict, iterative: dict) -> list[Stage]:
    """Dense, one-shot, then every round of iterative pruning."""
    roles, d, o = exp.roles, dense["victim"][1], oneshot["victim"].summary
    stages = [
        Stage("dense", 0, 0.0, {r: dense[r][2] for r in roles}, d["epochs_run"], d["seconds"]),
        Stage(
            "one-shot",
            0,
            exp.settings.pruning_rate,
            {r: oneshot[r].final for r in roles},
            o["epochs"],
            o["seconds"],
        ),
    ]
    for k, rnd in enumerate(iterative["victim"].summary["rounds"]):
        outs = {r: iterative[r].per_round[k] for r in roles}
        stages.append(
            Stage("iterative", k, rnd["sparsity"], outs, rnd["epochs_run"], rnd["seconds"])
        )
    return stages


def run(
    settings: Settings,
    *,
    attacks=METRIC_ATTACKS,
    memscore: np.ndarray | None = None,
    progress: bool | None = None,
) -> dict[str, pd.DataFrame]:
    """Dense vs one-shot vs iterative (per round) for every seed.

    ``memscore`` (pool-row mem-scores, e.g. from :func:`wemem.memorization.memscores.compute`) adds the
    high- vs low-memorization AUC columns (:func:`attack_rows`).

    Returns:
        ``attacks``: one row per (seed, stage, round, attack) with the attack metrics;
        ``models``: one row per (seed, stage, round) with the victim's sparsity, train/test accuracy,
        fine-tuning epochs and seconds; ``layers``: the achieved sparsity of every pruned layer of
        every model (victim and shadows).
    """
    attack_table, model_table, layer_table = [], [], []
    n_jobs = len(settings.seeds) * (1 + settings.n_shadows)
    bar = _progress.tqdm(total=n_jobs, desc="models", disable=not _progress.enabled(progress))
    pool = None
    for seed in settings.seeds:
        exp = Experiment(settings, seed=seed, pool=pool)
        pool = exp.pool
        exp.prefetch(  # parallel with the Ray executor, a no-op locally
            Request(kind, role, one_shot=one)
            for kind, one in (("dense", False), ("pruned", True), ("pruned", False))
            for role in exp.roles
        )
        dense, oneshot, iterative, layers = _train(exp, seed, bar)
        layer_table += layers
        for st in _stages(exp, dense, oneshot, iterative):
            labels = {"seed": seed, "stage": st.stage, "round": st.round, "sparsity": st.sparsity}
            v = st.outputs["victim"]
            shadows = [st.outputs[r] for r in exp.roles[1:]]
            attack_table += attack_rows(v, shadows, names=attacks, memscore=memscore, **labels)
            model_table.append(
                {
                    **labels,
                    "train_acc": v.train_acc,
                    "test_acc": v.test_acc,
                    "chance": 1.0 / exp.pool.num_classes,
                    "epochs": st.epochs,
                    "seconds": st.seconds,
                }
            )
    bar.close()
    return {
        "attacks": pd.DataFrame(attack_table),
        "models": pd.DataFrame(model_table),
        "layers": pd.DataFrame(layer_table),
    }


def final_stages(attacks: pd.DataFrame) -> pd.DataFrame:
    """Dense, one-shot and the *last* iterative round, labelled ``iterative`` (the paper's comparison)."""
    last = attacks["round"][attacks.stage == "iterative"].max()
    keep = (attacks.stage != "iterative") | (attacks["round"] == last)
    return attacks[keep]


def summarize(attacks: pd.DataFrame, models: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds per (stage, attack) of AUC and balanced accuracy, plus test accuracy."""
    fin = final_stages(attacks)
    g = fin.groupby(["stage", "attack"], sort=False)
    out = g[["auc", "balanced_accuracy", "tpr_at_1fpr", "auc_flipped", "auc_clean"]].agg(
        ["mean", "std"]
    )
    out.columns = [f"{a}_{b}" for a, b in out.columns]
    out = out.reset_index()
    last = models["round"][models.stage == "iterative"].max()
    mfin = models[(models.stage != "iterative") | (models["round"] == last)]
    acc = mfin.groupby("stage", sort=False)["test_acc"].agg(["mean", "std"]).add_prefix("test_acc_")
    return out.merge(acc.reset_index(), on="stage")


def compact(summary: pd.DataFrame, *, metrics=("auc", "balanced_accuracy")) -> pd.DataFrame:
    """Attack × stage table of "mean ± std" strings for the notebook (the CSV keeps full precision)."""
    cells = {}
    for m in metrics:
        txt = (
            summary[f"{m}_mean"].map("{:.3f}".format)
            + " ± "
            + summary[f"{m}_std"].fillna(0).map("{:.3f}".format)
        )
        cells[m] = summary.assign(v=txt).pivot(index="attack", columns="stage", values="v")
    out = pd.concat(cells, axis=1)
    order = [s for s in ("dense", "one-shot", "iterative") if s in summary.stage.values]
    out = out.reindex(columns=[(m, s) for m in metrics for s in order])
    return out.reindex(summary.attack.drop_duplicates())


def _with_auc_se(t: pd.DataFrame, auc: str = "auc", n_in: str = "n_in", n_out: str = "n_out"):
    """``t`` with a column ``<auc>_se``: the Hanley–McNeil SE of each row's AUC."""
    se = [vd.auc_se(a, i, o) for a, i, o in zip(t[auc], t[n_in], t[n_out], strict=True)]
    return t.assign(**{f"{auc}_se": se})


def _stage_decision(fin: pd.DataFrame, a: str, b: str) -> dict:
    """Whether stage ``a`` leaks more than ``b``: per seed, the mean AUC over the attacks at ``a``
    minus at ``b`` (:func:`~wemem.studies.verdicts.paired_decision`: the seed spread, or with one
    seed the AUCs' sampling SE, averaged over the attacks as if fully correlated)."""
    g = _with_auc_se(fin).groupby(["seed", "stage"])[["auc", "auc_se"]].mean().unstack("stage")
    se = vd.difference_se(g["auc_se"][a].iloc[0], g["auc_se"][b].iloc[0])
    return vd.paired_decision(g["auc"][a] - g["auc"][b], sampling_se=se)


def claims(attacks: pd.DataFrame) -> dict:
    """The paper's motivation claim, computed: iterative pruning leaks more than dense and one-shot.

    Returns per-stage mean AUC and balanced accuracy (over seeds and attacks) and the decided
    claims ``iterative_gt_dense`` and ``iterative_gt_one_shot``
    (:func:`~wemem.studies.verdicts.decide` dicts: status, difference in mean AUC, resolution).
    """
    fin = final_stages(attacks)
    auc = fin.groupby("stage")["auc"].mean()
    ba = fin.groupby("stage")["balanced_accuracy"].mean()
    return {
        "mean_auc": {k: float(v) for k, v in auc.items()},
        "mean_balanced_accuracy": {k: float(v) for k, v in ba.items()},
        "iterative_gt_dense": _stage_decision(fin, "iterative", "dense"),
        "iterative_gt_one_shot": _stage_decision(fin, "iterative", "one-shot"),
        "auc_gain_vs_dense": float(auc["iterative"] - auc["dense"]),
        "auc_gain_vs_one_shot": float(auc["iterative"] - auc["one-shot"]),
    }


def checks(res: dict[str, pd.DataFrame], settings: Settings) -> dict:
    """What the notebook asserts, each able to fail on a wrong result: every pruned layer at its
    target sparsity, every stage of the schedule attacked, metrics finite and in [0, 1], the victim
    above chance, and (statistical, not applicable in the tiny profile) the iterative victim leaking
    above chance (mean AUC − ½ beyond its noise)."""
    layers, attacks, models = res["layers"], res["attacks"], res["models"]
    vals = attacks[["balanced_accuracy", "auc", "tpr_at_1fpr", "accuracy"]].to_numpy(float)
    stages = set(zip(attacks.stage, attacks["round"], strict=True))
    want = {("dense", 0), ("one-shot", 0)} | {
        ("iterative", k) for k in range(settings.pruning_rounds)
    }
    it = final_stages(attacks).query("stage == 'iterative'")
    g = _with_auc_se(it).groupby("seed")[["auc", "auc_se"]].mean()
    leak = vd.paired_decision(g["auc"] - 0.5, sampling_se=float(g["auc_se"].iloc[0]))
    rounds = np.where(layers.get("stage", "iterative") == "iterative", settings.pruning_rounds, 1)
    weights = layers.get("weights", pd.Series(np.nan, index=layers.index)).astype(float)
    return {
        "sparsity_reached": sparsity_reached(layers.sparsity, layers.target, weights, rounds),
        "metrics_in_unit_interval": bool(
            np.isfinite(vals).all() and ((vals >= 0) & (vals <= 1)).all()
        ),
        "every_stage_attacked": stages == want,
        "test_accuracy_above_chance": vd.learning_check(
            bool((models.test_acc > models.chance).all())
        ),
        "iterative_leaks_above_chance": vd.statistical_check(
            leak["status"] == vd.HOLDS, profile=settings.profile
        ),
    }


def summary_text(metrics: dict) -> str:
    """Sentences computed from ``metrics.json`` (never typed by hand)."""
    c = metrics["claims"]
    auc, ba = c["mean_auc"], c["mean_balanced_accuracy"]
    n_seeds = len(metrics["settings"]["seeds"])
    return (
        f"Averaged over the four metric attacks and {n_seeds} seed(s), the attack AUC is "
        f"{auc['dense']:.3f} on the dense victim, {auc['one-shot']:.3f} after one-shot pruning and "
        f"{auc['iterative']:.3f} after iterative pruning (balanced accuracy {ba['dense']:.3f} / "
        f"{ba['one-shot']:.3f} / {ba['iterative']:.3f}). The paper's claim that iterative pruning "
        f"leaks more membership than the dense model {vd.describe(c['iterative_gt_dense'])}, and "
        f"than one-shot pruning {vd.describe(c['iterative_gt_one_shot'])}, in this run (profile "
        f"`{metrics['settings']['profile']}`, dataset `{metrics['settings']['dataset']}`)."
    )


def reuse_sweep(
    settings: Settings, epochs: list[int], *, seed: int = 0, attacks=METRIC_ATTACKS
) -> pd.DataFrame:
    """Data reuse: iterative pruning with at most ``E`` fine-tuning epochs per round, for each E.

    More epochs per round = more passes over the same members. One row per (E, attack) with the
    attack metrics on the final model and the fine-tuning epochs the victim actually ran.
    """
    from dataclasses import replace

    rows = []
    for e in epochs:
        exp = Experiment(replace(settings, finetune_epochs=int(e)), seed=seed)
        exp.prefetch(Request("pruned", role) for role in exp.roles)
        runs = {role: exp.pruned(role) for role in exp.roles}
        v = runs["victim"]
        rows += attack_rows(
            v.final,
            [runs[r].final for r in exp.roles[1:]],
            names=attacks,
            max_epochs_per_round=int(e),
            epochs_run=v.summary["epochs"],
            test_acc=v.final.test_acc,
        )
    return pd.DataFrame(rows)


def memorability_table(attacks: pd.DataFrame) -> pd.DataFrame:
    """Inherent memorability and both factors together: AUC of high- vs low-mem-score members per
    stage and round (mean over seeds and attacks)."""
    cols = ["auc_high_mem", "auc_low_mem"]
    t = attacks.groupby(["stage", "round"], sort=False)[cols].mean().reset_index()
    t["gap"] = t["auc_high_mem"] - t["auc_low_mem"]
    return t


def _gap(t: pd.DataFrame) -> pd.DataFrame:
    """Per seed: the high- minus low-mem-score AUC (``gap``) and its sampling SE (``gap_se``), each
    averaged over the attacks."""
    t = _with_auc_se(t, "auc_high_mem", "n_high_mem_members", "n_high_mem_nonmembers")
    t = _with_auc_se(t, "auc_low_mem", "n_low_mem_members", "n_low_mem_nonmembers")
    se = [vd.difference_se(a, b) for a, b in zip(t.auc_high_mem_se, t.auc_low_mem_se, strict=True)]
    t = t.assign(gap=t.auc_high_mem - t.auc_low_mem, gap_se=se)
    return t.groupby("seed")[["gap", "gap_se"]].mean()


def scenario_claims(sweep: pd.DataFrame, attacks: pd.DataFrame) -> dict:
    """The three scenarios, computed and decided (:mod:`wemem.studies.verdicts`): data reuse
    (``sweep`` of :func:`reuse_sweep`, one seed: the AUCs' sampling SE), inherent memorability and
    both together (``attacks`` of :func:`run` with mem-scores: seed spread, or sampling SE)."""
    by_e = _with_auc_se(sweep).groupby("max_epochs_per_round")[["auc", "auc_se"]].mean()
    lo, hi = by_e.iloc[0], by_e.iloc[-1]
    reuse = vd.paired_decision(
        [hi.auc - lo.auc], sampling_se=vd.difference_se(hi.auc_se, lo.auc_se)
    )
    memo = memorability_table(attacks)
    it, dense = memo[memo.stage == "iterative"].iloc[-1], memo[memo.stage == "dense"].iloc[0]
    last = attacks[(attacks.stage == "iterative") & (attacks["round"] == it["round"])]
    g_it, g_dense = _gap(last), _gap(attacks[attacks.stage == "dense"])
    grows_se = vd.difference_se(g_it.gap_se.iloc[0], g_dense.gap_se.iloc[0])
    return {
        "reuse_auc_by_epochs": {int(k): float(v) for k, v in by_e.auc.items()},
        "reuse_increases_leakage": reuse,
        "high_mem_auc_iterative": float(it["auc_high_mem"]),
        "low_mem_auc_iterative": float(it["auc_low_mem"]),
        "high_mem_leaks_more": vd.paired_decision(g_it.gap, sampling_se=g_it.gap_se.iloc[0]),
        "gap_dense": float(dense["gap"]),
        "gap_iterative": float(it["gap"]),
        "gap_grows_with_pruning": vd.paired_decision(g_it.gap - g_dense.gap, sampling_se=grows_se),
    }


def scenario_text(c: dict) -> str:
    """Sentences for the three scenarios, from :func:`scenario_claims` (read from metrics.json)."""
    e = c["reuse_auc_by_epochs"]
    lo, hi = min(e, key=int), max(e, key=int)
    return (
        f"*Data reuse*: with at most {lo} fine-tuning epoch(s) per round the mean attack AUC is "
        f"{e[lo]:.3f}; with {hi} it is {e[hi]:.3f}: the claim that reuse raises leakage "
        f"{vd.describe(c['reuse_increases_leakage'])}. *Inherent memorability*: after iterative "
        f"pruning, members in the top mem-score quartile are told from non-members of equally high "
        f"mem-score at AUC {c['high_mem_auc_iterative']:.3f}, against "
        f"{c['low_mem_auc_iterative']:.3f} in the bottom quartile: the claim that they leak more "
        f"{vd.describe(c['high_mem_leaks_more'])}. *Both together*: the high-minus-low gap is "
        f"{c['gap_dense']:+.3f} on the dense model and {c['gap_iterative']:+.3f} after iterative "
        f"pruning: that pruning widens it {vd.describe(c['gap_grows_with_pruning'])}."
    )
