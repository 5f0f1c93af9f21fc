"""Memorization scores of a training pool: computed (Feldman–Zhang or k-fold), or loaded, and cached.

The estimators themselves are pure functions in :mod:`wemem.memorization.estimators` (scale and τ
in :mod:`.tau`, released files in :mod:`.released`); the K models are trained together by
:mod:`wemem.training.ensemble`. This module wires them to a pool: which rows (the whole training
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
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from wemem.cache import Cache, default_cache_dir, payload_type
from wemem.errors import ParamsError
from wemem.memorization.estimators import (
    estimate_with_stats,
    fz_scores,
    kfold_assignment,
    subset_masks,
)
from wemem.memorization.released import check_alignment, load_released
from wemem.memorization.tau import normalize_minmax
from wemem.models import norm_key_part
from wemem.names import MEMSCORE_METHODS
from wemem.training.ensemble import EnsembleConfig, train_ensemble

log = logging.getLogger(__name__)

METHODS = MEMSCORE_METHODS


@payload_type
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


def _cache_spec(exp, *, method: str, models: int, ratio: float, epochs: int, seed: int) -> dict:
    """The cache key of computed mem-scores: pool, architecture, training and estimator settings."""
    s = exp.settings
    return {
        "pool": exp.pool.digest,
        "arch": s.arch,
        "width": s.width,
        "stem_maxpool": s.stem_maxpool,
        # only when it changes the model, so BatchNorm entries keep their keys
        **norm_key_part(s.arch, s.norm),
        "train": {"lr": s.lr, "wd": s.weight_decay, "batch": s.batch_size, "epochs": epochs},
        "method": method,
        "models": models,
        "ratio": ratio if method == "fz" else None,
        "seed": seed,
    }


def _train_members(exp, *, method: str, models: int, ratio: float, epochs: int, seed: int) -> dict:
    """Train the K = ``models`` models on their subsets (``fz``) or folds (``kfold``) of the n
    training-pool rows; the cache entry: ``prob`` (K, n) float32 true-class probability,
    ``correct`` (K, n) uint8, ``included`` (K, n) bool, the members' ``models`` state dicts and
    ``seconds``."""
    t0 = time.perf_counter()
    n = exp.pool.n_train
    labels = exp.pool.y[:n].cpu().numpy()
    if method == "fz":
        included = subset_masks(n, k=models, ratio=ratio, seed=seed)
    else:
        fold = kfold_assignment(n, k=models, seed=seed, labels=labels)
        included = fold[None, :] == np.arange(models)[:, None]
    prob, correct, ens = _train_and_predict(exp, included, epochs=epochs, seed=seed)
    return {
        "prob": prob.astype(np.float32),
        "correct": correct.astype(np.uint8),
        "included": included,
        "models": [{k: v.cpu() for k, v in sd.items()} for sd in ens.state_dicts()],
        "seconds": time.perf_counter() - t0,
    }


def compute(
    exp,
    *,
    method: str | None = None,
    models: int | None = None,
    ratio: float | None = None,
    epochs: int | None = None,
    seed: int = 0,
    released_file: str | None = None,
    check_released: bool = True,
    cache: Cache | None = None,
) -> MemScoreResult:
    """Memorization scores of the experiment's training pool, cached.

    Args:
        exp: a :class:`wemem.experiment.replicate.Experiment` (its pool, architecture and training settings).
        method: ``fz`` (Feldman–Zhang subsampling: ``models`` models on random subsets of ``ratio``),
            ``kfold`` (``models`` disjoint folds, one model per fold, spec §3.3), or ``released``
            (the paper's CSV at ``released_file``).
        check_released: check that the released file belongs to the run's (dataset, arch) and pool
            order (:func:`wemem.memorization.released.check_alignment`: file name, share with
            m ≥ τ, dependence on the pool's labels); ``False`` is the explicit opt-out.
        epochs: fixed training epochs of every model (no early stopping: a fixed budget).
        Arguments left ``None`` come from ``exp.settings`` (``memscore_*``).
    """
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
        path = Path(released_file).expanduser()
        score = load_released(path, n=n)
        if check_released:
            labels = exp.pool.y_clean[:n].cpu().numpy()  # the dataset's own labels, as the authors'
            check_alignment(score, labels, path=path, dataset=s.dataset, arch=s.arch)
        else:
            log.warning("%s: alignment with the %s pool not checked (opted out)", path, s.dataset)
        return MemScoreResult(
            score=normalize_minmax(score), method=method, settings={"file": released_file}
        )
    settings = {"method": method, "models": models, "ratio": ratio, "epochs": epochs, "seed": seed}
    spec = _cache_spec(exp, **settings)
    cache = cache or Cache(default_cache_dir(s.cache_dir))
    entry, hit = cache.get_or_compute("memscores", spec, lambda: _train_members(exp, **settings))
    log.info("mem-scores %s (%s)", method, "cache" if hit else "computed")
    prob, correct, included = entry["prob"], entry["correct"], entry["included"]
    if method == "fz":
        estimates = fz_scores(correct, prob, included)
        raw = estimates["fz_prob"].score
    else:
        estimates = {"kfold": estimate_with_stats(prob, included, method="kfold")}
        raw = estimates["kfold"].score
    filled, n_filled = _fill(raw)
    return MemScoreResult(
        score=normalize_minmax(filled),
        method=method,
        settings=spec,
        estimates=estimates,
        prob=prob,
        correct=correct,
        included=included,
        n_filled=n_filled,
        seconds=float(entry["seconds"]),
    )
