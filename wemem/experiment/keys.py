"""Cache-key specs of the victim's and shadows' models, as pure functions of plain values.

A spec is exactly what a model depends on; :meth:`wemem.cache.Cache.key` digests it. The functions
take settings, digests and indices (never a dataset), so a planner without data can call them with
placeholder digests. Their output is the cache key's content: changing a spec's shape or values
retrains every model.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from wemem.models import norm_key_part
from wemem.params import Settings
from wemem.training.loop import TrainConfig

#: What a pruning run's entry holds, part of its key. Revision 1 (no ``revision`` field): per-sample
#: outputs under CUDA bf16 autocast, summary ``seconds`` including the per-round output passes and
#: the resume-point writes. Revision 2: outputs in IEEE float32 (:mod:`wemem.experiment.outputs`),
#: ``seconds`` the training rounds only, ``output_seconds``/``checkpoint_seconds`` beside it
#: (:class:`wemem.pruning.PruneResult`).
PRUNED_REVISION = 2


def defense_settings(settings: Settings, defense: str) -> Settings:
    """The settings of the models a ``defense``'s rows train: the run's own, except DP-SGD on a
    CNN with BatchNorm, whose models (dense training included) are built with ``dp_norm``
    (GroupNorm): BatchNorm has no per-example gradients. The FC model has no norm layer."""
    s = settings
    if defense == "dp" and s.arch != "fc" and s.norm == "batch":
        return dataclasses.replace(s, norm=s.dp_norm)
    return s


def model_seed(seed: int, role_index: int) -> int:
    """The seed of a model's initialisation and training: replicate ``seed``, role ``role_index``
    (0 = victim, i + 1 = shadow i)."""
    return seed * 100 + role_index


def train_config(settings: Settings, *, max_epochs: int, seed: int, role_index: int) -> TrainConfig:
    """The training settings of one model (dense: ``max_epochs``; pruning rounds: fine-tuning)."""
    s = settings
    return TrainConfig(
        lr=s.lr,
        weight_decay=s.weight_decay,
        batch_size=s.batch_size,
        max_epochs=max_epochs,
        patience=s.patience,
        seed=model_seed(seed, role_index),
    )


def rows_digest(*arrays: np.ndarray) -> str:
    """sha256 hex of row-index arrays (as int64, each followed by ``|``)."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
        h.update(b"|")
    return h.hexdigest()


def dense_spec(
    settings: Settings, *, pool_digest: str, rows: str, seed: int, role_index: int
) -> dict:
    """Key spec of a dense model.

    Args:
        pool_digest: the pool's digest (:attr:`wemem.data.Pool.digest`).
        rows: :func:`rows_digest` of the model's train and dev rows.
        seed, role_index: the replicate seed and the role (see :func:`model_seed`).
    """
    s = settings
    config = train_config(s, max_epochs=s.max_epochs, seed=seed, role_index=role_index)
    return {
        "pool": pool_digest,
        "rows": rows,
        "arch": s.arch,
        "width": s.width,
        "stem_maxpool": s.stem_maxpool,
        "train": config.__dict__,
        **norm_key_part(s.arch, s.norm),
    }


def pruned_spec(
    settings: Settings,
    *,
    dense: dict,
    eval_rows: str,
    seed: int,
    role_index: int,
    one_shot: bool = False,
    approach: str | None = None,
    rate: float | None = None,
    defense: str = "base",
    defense_spec: dict | None = None,
) -> dict:
    """Key spec of a pruning run (iterative, or one-shot) of the ``dense`` model with a defense.

    Args:
        dense: the dense model's :func:`dense_spec`.
        eval_rows: :func:`rows_digest` of the model's non-member (test) rows.
        approach, rate: default to the settings' pruning approach and rate.
        defense, defense_spec: the defense's name and exactly its settings
            (:func:`wemem.defenses.catalog.defense_parts`).
    """
    s = settings
    return {
        "dense": dense,
        "approach": approach or s.pruning_approach,
        "rate": s.pruning_rate if rate is None else rate,
        "rounds": 1 if one_shot else s.pruning_rounds,
        "finetune": train_config(
            s, max_epochs=s.finetune_epochs, seed=seed, role_index=role_index
        ).__dict__,
        "defense": defense,
        "defense_spec": defense_spec or {},
        "eval_rows": eval_rows,
        "revision": PRUNED_REVISION,
    }


def sensitivity_spec(
    *, model: str, rows_in: str, rows_out: str, m: int, eps: float, seed: int
) -> dict:
    """Key spec of a model's posterior sensitivity (:func:`wemem.experiment.adaptive.add_sensitivity`):
    the digests of the model's weights and of its member and non-member rows, ``m`` perturbed
    copies at scale ``eps``, the ``seed`` of the perturbations."""
    return {
        "model": model,
        "rows_in": rows_in,
        "rows_out": rows_out,
        "m": m,
        "eps": eps,
        "seed": seed,
    }
