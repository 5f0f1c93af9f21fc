"""SAMIA: the self-attention membership inference attack (Yuan & Zhang, USENIX Security 2022).

Features per sample are the 3C vector [p ‖ s ‖ onehot(y)] (posterior, sensitivity from
:mod:`.sensitivity`, one-hot label), laid out ``[p_1..p_C, s_1..s_C, y_1..y_C]``. The model (spec
§6.2, official ``transformer.py``) normalises that vector with BatchNorm1d, regroups it into C
tokens, one per class,

$$ t_c = (p_c,\\ s_c,\\ y_c) \\in \\mathbb{R}^3, \\qquad c = 1..C, $$

embeds each token with Linear(3 → 64) and GELU, runs a 3-layer Transformer encoder (d_model 64,
4 heads, feed-forward 128, dropout 0.2, GELU, post-norm) over the C tokens, flattens the C·64
outputs and classifies with Linear(C·64 → 64), ReLU, Linear(64 → 2). The encoder here is
``batch_first``; the official one is sequence-first with explicit permutes, which is the same
computation. Training is the MLP attacks' recipe (:mod:`.classifier`), Xavier re-init included.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

from wemem.attacks.classifier import features, train_and_score
from wemem.models import xavier_init

__all__ = ["SAMIA", "samia_attack", "samia_tokens"]

#: Victim samples scored per forward pass: the attention weights of a batch take
#: batch × heads × C² floats (8192 samples at C = 100: 1.3 GB), so small batches stay in cache and
#: score CIFAR-100/Texas/Purchase about 1.5x faster on a CPU; each score is the same up to float32
#: rounding (bit-identical on an AMD EPYC; the BLAS kernels of other batch sizes may differ in the
#: last bits on an Intel Xeon). The batch is fixed, so the scores are deterministic.
SCORE_BATCH = 128


def samia_tokens(feats: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(n, 3C)`` laid out ``[p_1..p_C, s_1..s_C, y_1..y_C]`` → ``(n, C, 3)`` tokens ``(p_c, s_c, y_c)``."""
    n, width = feats.shape
    if width != 3 * num_classes:
        raise ValueError(f"SAMIA features must have width 3·C = {3 * num_classes}; got {width}")
    # (n, 3, C): row k is block k; transposing puts the three blocks' c-th entries in token c.
    return feats.reshape(n, 3, num_classes).transpose(1, 2)


class SAMIA(nn.Module):
    """Self-attention attack model. Input ``(n, 3C)`` features, output ``(n, 2)`` logits."""

    def __init__(
        self,
        num_classes: int,
        *,
        hidden: int = 64,
        layers: int = 3,
        heads: int = 4,
        feedforward: int = 128,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.bn = nn.BatchNorm1d(3 * num_classes)
        self.embed = nn.Linear(3, hidden)
        layer = nn.TransformerEncoderLayer(
            d_model=hidden,
            nhead=heads,
            dim_feedforward=feedforward,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=layers, enable_nested_tensor=False)
        self.fc = nn.Linear(hidden * num_classes, hidden)
        self.out = nn.Linear(hidden, 2)
        xavier_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = samia_tokens(self.bn(x), self.num_classes)  # (n, C, 3)
        h = self.encoder(F.gelu(self.embed(tokens)))  # (n, C, hidden)
        return self.out(F.relu(self.fc(h.flatten(1))))


def samia_attack(
    shadow_in: Sequence[Any],
    shadow_out: Sequence[Any],
    target_in: Sequence[Any],
    target_out: Sequence[Any],
    *,
    seed: int = 0,
    device: str | torch.device | None = None,
    **train: Any,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Train SAMIA on the pooled shadows, score the victim.

    Each data argument is ``(probs (n, C), labels (n,), sens (n, C))``; ``**train`` overrides the
    recipe (:data:`wemem.attacks.classifier.TRAIN_DEFAULTS`). Returns the victim's member
    probabilities ``(scores_in (n_in,), scores_out (n_out,))``.
    """
    sets = [features("nn_sens", *d) for d in (shadow_in, shadow_out, target_in, target_out)]
    num_classes = sets[0].shape[1] // 3
    return train_and_score(
        lambda: SAMIA(num_classes),
        *sets,
        seed=seed,
        device=device,
        score_batch_size=SCORE_BATCH,
        **train,
    )
