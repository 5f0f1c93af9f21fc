"""Notebook 01 (memorization scores, spec §3; the τ table of spec §2.4): what it tabulates, checks
and says about the scores of :func:`wemem.memorization.memscores.compute`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from wemem.memorization.agreement import convergence, precision_at_k
from wemem.memorization.memscores import MemScoreResult
from wemem.memorization.tau import PAPER_TAU, calibrate_tau, fraction_selected
from wemem.studies import verdicts as vd


def flip_recovery(result: MemScoreResult, flipped: np.ndarray) -> pd.DataFrame:
    """Does the estimator find what memorization means? Label-noise samples can only be fitted by
    memorizing them, so they must rank at the top: precision at k = #flipped against the flip rate.

    Args:
        flipped: (n,) bool, the pool rows whose label was flipped.
    """
    from wemem.attacks.metrics import roc_auc

    k = int(flipped.sum())
    rate = float(flipped.mean())
    rows = []
    candidates = {name: est.score for name, est in result.estimates.items()}
    candidates["used (normalized)"] = result.score
    for name, score in candidates.items():
        ok = np.isfinite(score)
        prec = precision_at_k(score, flipped, k) if k else float("nan")
        rows.append(
            {
                "estimate": name,
                "k": k,
                "precision_at_k": prec,
                "flip_rate": rate,
                "lift": prec / rate if rate else float("nan"),
                "auc_flipped_vs_clean": roc_auc(score[ok & flipped], score[ok & ~flipped])
                if k
                else float("nan"),
                "undefined": int((~ok).sum()),
            }
        )
    return pd.DataFrame(rows)


def tau_table(score: np.ndarray) -> pd.DataFrame:
    """The paper's τ per (dataset, architecture) against these scores (spec §2.4).

    ``paper_fraction`` is the share with m ≥ τ on the released files; ``fraction_raw_tau`` applies
    the paper's raw τ to these (min–max normalized) scores; ``tau_quantile`` is the τ that selects
    the paper's fraction here (the calibration the defenses use when scores are recomputed).
    """
    rows = []
    for (dataset, arch), (tau, frac) in PAPER_TAU.items():
        rows.append(
            {
                "dataset": dataset,
                "arch": arch,
                "tau": tau,
                "paper_fraction": frac,
                "fraction_raw_tau": fraction_selected(score, tau),
                "tau_quantile": calibrate_tau(score, fraction=frac),
            }
        )
    return pd.DataFrame(rows)


def convergence_table(result: MemScoreResult, ks: list[int]) -> pd.DataFrame:
    """Spearman rank correlation of the estimate from the first k models with the full estimate."""
    ks = [k for k in ks if k <= result.prob.shape[0]]
    return convergence(result.prob, result.included, ks=ks)


def score_table(exp, fz: MemScoreResult, kfold: MemScoreResult | None = None) -> pd.DataFrame:
    """One row per training-pool sample: label, flip flag, the score used, raw estimates, counts."""
    n = exp.pool.n_train
    est = fz.estimates
    df = pd.DataFrame(
        {
            "label": exp.pool.y[:n].cpu().numpy(),
            "flipped": exp.pool.flipped[:n],
            "score": fz.score,
            "fz_prob": est["fz_prob"].score,
            "fz_prob_stderr": est["fz_prob"].stderr,
            "fz_correct": est["fz_correct"].score,
            "n_in": est["fz_prob"].n_in,
            "n_out": est["fz_prob"].n_out,
        }
    )
    if kfold is not None:
        df["kfold"] = kfold.score
    df.index.name = "pool_row"
    return df


def checks(
    fz: MemScoreResult,
    recovery: pd.DataFrame,
    *,
    agreement: float,
    profile: str,
) -> dict:
    """What notebook 01 asserts, each able to fail on a wrong estimate: few samples left without an
    estimate; models fit their own subsets better than held-out samples (the mean raw estimate
    above 0 by more than its SE: fails when models did not train or the inclusion mask is not
    the one they trained on); flipped-label samples (planted, memorizable only) score above clean
    ones (precision at k over twice the flip rate; AUC above ½ by more than its SE); and, statistical
    (not applicable in the tiny profile), the k-fold proxy agreeing with the Feldman–Zhang estimate
    (Spearman ρ = ``agreement`` above 0 by more than its null SE, 1/√(n − 1))."""
    raw = fz.estimates["fz_prob"].score
    n = int(np.isfinite(raw).sum())
    out = {
        "few_undefined": fz.n_filled <= 0.05 * len(fz.score),
        "models_fit_their_subsets": vd.verdict(
            float(np.nanmean(raw)), vd.standard_error_of_mean(raw)
        )
        == vd.HOLDS,
        "kfold_agrees_with_fz": vd.statistical_check(
            vd.verdict(agreement, 1 / np.sqrt(max(n - 1, 1))) == vd.HOLDS,
            profile=profile,
        ),
    }
    used = recovery[recovery.estimate == "used (normalized)"].iloc[0]
    if used["k"] > 0:
        out["flipped_labels_rank_on_top"] = bool(used["precision_at_k"] > 2 * used["flip_rate"])
        k = int(used["k"])
        # the null's standard error (AUC = ½): Hanley–McNeil's SE vanishes at AUC = 1, which would
        # leave a perfect separation "unresolved"
        se = vd.auc_se(0.5, k, len(fz.score) - k)
        out["flipped_score_above_clean"] = (
            vd.verdict(used["auc_flipped_vs_clean"] - 0.5, se) == vd.HOLDS
        )
    return out


def summary_text(metrics: dict) -> str:
    """Sentences computed from notebook 01's ``metrics.json``."""
    s = metrics["settings"]
    rec = {r["estimate"]: r for r in metrics["flip_recovery"]}
    used = rec["used (normalized)"]
    conv = metrics["convergence"]
    half = [c for c in conv if c["k"] <= s["memscore_models"] // 2]
    parts = [
        f"The Feldman–Zhang estimator with K = {s['memscore_models']} models on subsets of "
        f"{s['memscore_ratio']:.0%} scored {metrics['fz']['n']} training samples of "
        f"`{s['dataset']}` with the `{s['arch']}` model."
    ]
    if used["k"]:
        parts.append(
            f"Of its {used['k']} highest scores, {used['precision_at_k']:.1%} are flipped-label "
            f"samples against a flip rate of {used['flip_rate']:.1%} ({used['lift']:.1f}× lift; AUC "
            f"flipped vs clean {used['auc_flipped_vs_clean']:.3f}): the estimator ranks what can "
            f"only be memorized on top."
        )
    if half:
        parts.append(
            f"The ranking from the first {half[-1]['k']} models already agrees with the full "
            f"estimate at Spearman ρ = {half[-1]['spearman']:.3f}; the k-fold proxy "
            f"({s['kfold_models']} folds) agrees with it at ρ = {metrics['fz_vs_kfold_spearman']:.3f}."
        )
    return " ".join(parts)
