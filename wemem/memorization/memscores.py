"""Memorization scores of a training pool: computed (Feldman–Zhang or k-fold), or loaded, and cached.

The estimators themselves are pure functions in :mod:`wemem.memorization.estimators`; the K models are trained
together by :mod:`wemem.training.ensemble`. This module wires them to a pool: which rows (the whole training
pool P, victim half and shadow half alike, as the released files, spec §3.2), which models (the
experiment's architecture), and the cache key (pool, architecture, estimator settings).

The score a defense consumes is the *continuous* Feldman–Zhang estimate on the true-class
probability, min–max normalized to [0, 1] like the released files (spec §3.2 notes those are
continuous, not the 0/1-accuracy estimate, which has many exact ties). Samples that were never in or
never out of a subset (probability (1−r)^K or r^K each) have no estimate; they get the median score
and are counted in ``n_filled``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from wemem.cache import Cache, default_cache_dir
from wemem.errors import ParamsError
from wemem.memorization import estimators as mem
from wemem.training.ensemble import EnsembleConfig, train_ensemble

log = logging.getLogger(__name__)

METHODS = ("fz", "kfold", "released")


@dataclass
class MemScoreResult:
    """Scores of the n training-pool rows (pool row i ↔ index i)."""

    score: np.ndarray  # (n,) in [0, 1], higher = more memorized; what the defenses use
    method: str
    settings: dict
    estimates: dict = field(default_factory=dict)  # name -> memorization.MemScores (raw scale)
    prob: np.ndarray | None = None  # (K, n) true-class probability of every model on every row
    correct: np.ndarray | None = None  # (K, n) 0/1 correctness
    included: np.ndarray | None = None  # (K, n) bool, row in model k's training subset
    n_filled: int = 0
    seconds: float = 0.0

    def summary(self) -> dict:
        return {
            "method": self.method,
            "settings": self.settings,
            "n": int(len(self.score)),
            "n_filled": self.n_filled,
            "seconds": self.seconds,
        }


def _fill(raw: np.ndarray) -> tuple[np.ndarray, int]:
    bad = ~np.isfinite(raw)
    out = raw.copy()
    if bad.any():
        out[bad] = np.nanmedian(raw) if (~bad).any() else 0.0
    return out, int(bad.sum())


def _train_and_predict(exp, included: np.ndarray, *, epochs: int, seed: int):
    s, pool = exp.settings, exp.pool
    rows = torch.arange(pool.n_train, device=pool.x.device)
    x, y = pool.x, pool.y
    # the ensemble indexes the pool's training rows directly: included is (K, n_train)
    cfg = EnsembleConfig(
        epochs=epochs, lr=s.lr, weight_decay=s.weight_decay, batch_size=s.batch_size, seed=seed
    )
    full = np.zeros((included.shape[0], len(y)), dtype=bool)
    full[:, : pool.n_train] = included
    base = 10_000 + seed * 1000
    ens = train_ensemble(lambda i: exp.build(seed=base + i).cpu(), x, y, full, config=cfg)
    probs = ens.predict_proba(x, rows)  # (K, n, C)
    labels = y[rows]
    p_true = probs.gather(2, labels.view(1, -1, 1).expand(probs.shape[0], -1, 1)).squeeze(2)
    correct = (probs.argmax(2) == labels.view(1, -1)).float()
    return p_true.cpu().numpy(), correct.cpu().numpy(), ens


def compute(
    exp,
    *,
    method: str | None = None,
    models: int | None = None,
    ratio: float | None = None,
    epochs: int | None = None,
    seed: int = 0,
    released_file: str | None = None,
    cache: Cache | None = None,
) -> MemScoreResult:
    """Memorization scores of the experiment's training pool, cached.

    Args:
        exp: a :class:`wemem.experiment.replicate.Experiment` (its pool, architecture and training settings).
        method: ``fz`` (Feldman–Zhang subsampling: ``models`` models on random subsets of ``ratio``),
            ``kfold`` (``models`` disjoint folds, one model per fold, spec §3.3), or ``released``
            (the paper's CSV at ``released_file``).
        epochs: fixed training epochs of every model (no early stopping: a fixed budget).
        Arguments left ``None`` come from ``exp.settings`` (``memscore_*``).
    """
    import time

    s = exp.settings
    method = s.memscore_method if method is None else method
    models = s.memscore_models if models is None else models
    ratio = s.memscore_ratio if ratio is None else ratio
    epochs = s.memscore_epochs if epochs is None else epochs
    released_file = s.memscore_file if released_file is None else released_file
    if method not in METHODS:
        raise ParamsError(f"memscore_method = {method!r}: allowed values are {', '.join(METHODS)}")
    n = exp.pool.n_train
    if method == "released":
        if not released_file:
            raise ParamsError("memscore_method = 'released' needs memscore_file (a CSV path)")
        score = mem.load_released(Path(released_file).expanduser(), n=n)
        return MemScoreResult(
            score=mem.normalize_minmax(score), method=method, settings={"file": released_file}
        )
    spec = {
        "pool": exp.pool.digest,
        "arch": s.arch,
        "width": s.width,
        "stem_maxpool": s.stem_maxpool,
        # only when it changes the model, so BatchNorm entries keep their keys
        **({"norm": s.norm} if s.norm != "batch" and s.arch != "fc" else {}),
        "train": {"lr": s.lr, "wd": s.weight_decay, "batch": s.batch_size, "epochs": epochs},
        "method": method,
        "models": models,
        "ratio": ratio if method == "fz" else None,
        "seed": seed,
    }
    cache = cache or Cache(default_cache_dir(s.cache_dir))

    def run() -> dict:
        t0 = time.perf_counter()
        labels = exp.pool.y[:n].cpu().numpy()
        if method == "fz":
            included = mem.subset_masks(n, k=models, ratio=ratio, seed=seed)
        else:
            fold = mem.kfold_assignment(n, k=models, seed=seed, labels=labels)
            included = fold[None, :] == np.arange(models)[:, None]
        prob, correct, ens = _train_and_predict(exp, included, epochs=epochs, seed=seed)
        return {
            "prob": prob.astype(np.float32),
            "correct": correct.astype(np.uint8),
            "included": included,
            "models": [{k: v.cpu() for k, v in sd.items()} for sd in ens.state_dicts()],
            "seconds": time.perf_counter() - t0,
        }

    entry, hit = cache.get_or_compute("memscores", spec, run)
    log.info("mem-scores %s (%s)", method, "cache" if hit else "computed")
    prob, correct, included = entry["prob"], entry["correct"], entry["included"]
    if method == "fz":
        estimates = mem.fz_scores(correct, prob, included)
        raw = estimates["fz_prob"].score
    else:
        estimates = {"kfold": mem.estimate_with_stats(prob, included, method="kfold")}
        raw = estimates["kfold"].score
    filled, n_filled = _fill(raw)
    return MemScoreResult(
        score=mem.normalize_minmax(filled),
        method=method,
        settings=spec,
        estimates=estimates,
        prob=prob,
        correct=correct,
        included=included,
        n_filled=n_filled,
        seconds=float(entry["seconds"]),
    )


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
        prec = mem.precision_at_k(score, flipped, k) if k else float("nan")
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
    for (dataset, arch), (tau, frac) in mem.PAPER_TAU.items():
        rows.append(
            {
                "dataset": dataset,
                "arch": arch,
                "tau": tau,
                "paper_fraction": frac,
                "fraction_raw_tau": mem.fraction_selected(score, tau),
                "tau_quantile": mem.calibrate_tau(score, fraction=frac),
            }
        )
    return pd.DataFrame(rows)


def convergence_table(result: MemScoreResult, ks: list[int]) -> pd.DataFrame:
    """Spearman rank correlation of the estimate from the first k models with the full estimate."""
    ks = [k for k in ks if k <= result.prob.shape[0]]
    return mem.convergence(result.prob, result.included, ks=ks)


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
    fz: MemScoreResult, kfold: MemScoreResult, recovery: pd.DataFrame, conv: pd.DataFrame
) -> dict[str, bool]:
    """What notebook 01 asserts: flipped labels rank on top, scores on the released scale, every
    model counted, the estimate converges."""
    used = recovery[recovery.estimate == "used (normalized)"].iloc[0]
    k_models = fz.included.shape[0]
    counts = fz.estimates["fz_prob"].n_in + fz.estimates["fz_prob"].n_out
    out = {
        "scores_in_unit_interval": bool(
            np.all((fz.score >= 0) & (fz.score <= 1))
            and np.all((kfold.score >= 0) & (kfold.score <= 1))
        ),
        "every_model_counted": bool(np.all(counts == k_models)),
        "few_undefined": fz.n_filled <= 0.05 * len(fz.score),
        "convergence_reaches_one": bool(abs(conv["spearman"].iloc[-1] - 1.0) < 1e-9)
        if conv["k"].iloc[-1] == k_models
        else True,
        "convergence_increases": bool(conv["spearman"].iloc[-1] >= conv["spearman"].iloc[0]),
    }
    if used["k"] > 0:
        out["flipped_labels_rank_on_top"] = bool(used["precision_at_k"] > 2 * used["flip_rate"])
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
