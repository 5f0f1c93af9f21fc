"""Per-sample outputs of a model on its members and non-members, and what a pruning run yields.

:class:`ModelOutputs` is what the attacks read (posteriors, labels, pool rows, label-noise flags);
it is a cache payload (:func:`wemem.cache.payload_type`). :func:`model_outputs` computes it for one
model and split; :func:`pool_shadows` concatenates the shadows' outputs as the attacks calibrate.

Precision: the posteriors are computed in IEEE float32 (:func:`posteriors`), never under autocast
and without TF32 on CUDA, whatever the caller's context; training may use bf16 autocast. The
attacks' scores (log-probabilities, entropies of posteriors near 0 or 1) need the digits bf16
(≈3 significant) drops.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from wemem.attacks.posteriors import posteriors
from wemem.cache import payload_type
from wemem.data import ModelSplit, Pool


@payload_type
@dataclass
class ModelOutputs:
    """Per-sample outputs of one model on its members (train split) and non-members (test split).

    ``probs_*``: (n, C) float32 softmax posteriors; ``labels_*``: (n,) int64 labels as trained on
    (after label noise); ``rows_*``: (n,) pool row indices; ``flipped_*``: (n,) bool label-noise flags.
    """

    probs_in: np.ndarray
    labels_in: np.ndarray
    rows_in: np.ndarray
    flipped_in: np.ndarray
    probs_out: np.ndarray
    labels_out: np.ndarray
    rows_out: np.ndarray
    flipped_out: np.ndarray
    train_acc: float
    test_acc: float
    sens_in: np.ndarray | None = None  # (n_in, C) posterior sensitivity, when an attack needs it
    sens_out: np.ndarray | None = None

    @property
    def members(self) -> tuple[np.ndarray, np.ndarray]:
        return self.probs_in, self.labels_in

    @property
    def nonmembers(self) -> tuple[np.ndarray, np.ndarray]:
        return self.probs_out, self.labels_out


def pool_shadows(shadows: list[ModelOutputs]) -> tuple[tuple, tuple]:
    """Concatenate the shadows' member and non-member outputs (how the attacks calibrate)."""
    pin = (
        np.concatenate([s.probs_in for s in shadows]),
        np.concatenate([s.labels_in for s in shadows]),
    )
    pout = (
        np.concatenate([s.probs_out for s in shadows]),
        np.concatenate([s.labels_out for s in shadows]),
    )
    return pin, pout


@dataclass
class PrunedRun:
    """A pruned model's final outputs, its per-round outputs and the pruning summary."""

    final: ModelOutputs
    per_round: list[ModelOutputs]
    summary: dict
    state: dict = field(repr=False, default_factory=dict)


@torch.no_grad()
def model_outputs(model: nn.Module, pool: Pool, split: ModelSplit) -> ModelOutputs:
    """Posteriors of ``model`` on the split's members (``split.train``) and non-members
    (``split.test``), in float32 (:func:`posteriors`), with their labels, pool rows and
    label-noise flags."""
    x, y, flipped = pool.x, pool.y, pool.flipped
    p_in = posteriors(model, x, split.train).cpu().numpy()
    p_out = posteriors(model, x, split.test).cpu().numpy()
    y_in, y_out = y[split.train].cpu().numpy(), y[split.test].cpu().numpy()
    return ModelOutputs(
        probs_in=p_in,
        labels_in=y_in,
        rows_in=np.asarray(split.train),
        flipped_in=np.asarray(flipped[split.train]),
        probs_out=p_out,
        labels_out=y_out,
        rows_out=np.asarray(split.test),
        flipped_out=np.asarray(flipped[split.test]),
        train_acc=float((p_in.argmax(1) == y_in).mean()),
        test_acc=float((p_out.argmax(1) == y_out).mean()),
    )
