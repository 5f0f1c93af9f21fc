"""Shokri et al.'s per-class attack (spec §6.2), this project's reading of the paper's sixth
classifier attack, which the release lacks.

Shokri et al., "Membership Inference Attacks Against Machine Learning Models", S&P 2017: one
attack model per class, trained on the shadows' samples of that class with the posterior as
feature, each victim sample scored by its class's model. The per-class model is smaller
(C → 64 → 2, ReLU, no dropout) than :class:`~wemem.attacks.classifier.AttackMLP` because a class
has ~1/C of the data; classes lacking shadow members or non-members fall back to one global model
of the same shape trained on all shadow samples. Training follows the official recipe
(:func:`~wemem.attacks.classifier.train_settings`), all per-class models at once in one batched
loop (:func:`_fit_groups`); scores are member probabilities as in :mod:`.classifier`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from wemem.attacks.classifier import attack_device, seeded, train_settings

__all__ = ["shokri_attack"]


def _fit_groups(
    x: torch.Tensor,
    y: torch.Tensor,
    groups: list[torch.Tensor],
    *,
    hidden: int,
    cfg: dict,
    init: list[torch.Tensor] | None = None,
) -> list[torch.Tensor]:
    """Train K independent ``d → hidden → 2`` MLPs at once, group k on rows ``groups[k]`` of x.

    Equivalent to K separate runs of the official recipe: each group has its own shuffle, its own
    batches of ``batch_size`` and ``ceil(n_k / batch_size)`` steps per epoch; SGD with momentum and
    weight decay (torch.optim.SGD's update, written out) touches only the groups with a batch in
    the current step. Weights are stacked ``(K, ...)`` and applied with ``torch.bmm``:
    ``[w1 (K, d, hidden), b1 (K, 1, hidden), w2 (K, hidden, 2), b2 (K, 1, 2)]``, Xavier-normal
    weights and zero biases unless ``init`` gives them (copied, not modified).
    """
    dev, d, k = x.device, x.shape[1], len(groups)
    counts = torch.tensor([len(g) for g in groups], device=dev)
    n_max, bs = int(counts.max()), cfg["batch_size"]
    index = torch.zeros(k, n_max, dtype=torch.long, device=dev)
    for i, g in enumerate(groups):
        index[i, : len(g)] = g
    pad = torch.arange(n_max, device=dev)[None] >= counts[:, None]
    params = [
        torch.randn(k, d, hidden, device=dev) * (2.0 / (d + hidden)) ** 0.5,
        torch.zeros(k, 1, hidden, device=dev),
        torch.randn(k, hidden, 2, device=dev) * (2.0 / (hidden + 2)) ** 0.5,
        torch.zeros(k, 1, 2, device=dev),
    ]
    if init is not None:
        params = [t.detach().clone().to(dev) for t in init]
    for p in params:
        p.requires_grad_(True)
    bufs: list[torch.Tensor | None] = [None] * len(params)
    for epoch in range(cfg["epochs"]):
        lr = cfg["lr"] * 0.1 ** sum(epoch >= m for m in cfg["milestones"])
        # A random permutation of each group's valid slots; padded slots sort last.
        order = torch.rand(k, n_max, device=dev).masked_fill(pad, 2.0).argsort(dim=1)
        for start in range(0, n_max, bs):
            slots = order[:, start : start + bs]
            valid = (start + torch.arange(slots.shape[1], device=dev))[None] < counts[:, None]
            rows = index.gather(1, slots)
            w1, b1, w2, b2 = params
            h = torch.relu(torch.bmm(x[rows], w1) + b1)
            logits = torch.bmm(h, w2) + b2
            ce = F.cross_entropy(logits.flatten(0, 1), y[rows].flatten(), reduction="none")
            ce = ce.view_as(valid) * valid
            # Singleton trailing batches are trained too (no BatchNorm here).
            loss = (ce.sum(1) / valid.sum(1).clamp(min=1)).sum()
            grads = torch.autograd.grad(loss, params)
            active = valid.any(1).view(k, 1, 1)
            with torch.no_grad():
                for i, (p, g) in enumerate(zip(params, grads, strict=True)):
                    step = g + cfg["weight_decay"] * p
                    old = bufs[i]
                    # Every group is active at the very first step, where the buffer starts.
                    bufs[i] = (
                        step
                        if old is None
                        else torch.where(active, cfg["momentum"] * old + step, old)
                    )
                    p.sub_(lr * bufs[i] * active)
    return [p.detach() for p in params]


def _apply_group(params: list[torch.Tensor], g: int, x: torch.Tensor) -> torch.Tensor:
    w1, b1, w2, b2 = (p[g] for p in params)
    margin = torch.diff((torch.relu(x @ w1 + b1) @ w2 + b2).double(), dim=1)[:, 0]
    return torch.sigmoid(margin)


def shokri_attack(
    shadow_in: Sequence[Any],
    shadow_out: Sequence[Any],
    target_in: Sequence[Any],
    target_out: Sequence[Any],
    *,
    hidden: int = 64,
    seed: int = 0,
    device: str | torch.device | None = None,
    **train: Any,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Shokri-style per-class attack (module docstring); data as in
    :func:`~wemem.attacks.classifier.mlp_attack`.

    Returns the victim's member probabilities ``(scores_in, scores_out)``, each from the model of
    the sample's class, or from the global model when the shadows lack members or non-members of
    that class.
    """
    cfg = train_settings(**train)
    dev = attack_device(device)
    (p_si, y_si, *_), (p_so, y_so, *_) = shadow_in, shadow_out
    p_t = np.concatenate([np.asarray(target_in[0]), np.asarray(target_out[0])])
    y_t = np.concatenate([np.asarray(target_in[1]), np.asarray(target_out[1])]).astype(np.int64)
    x = torch.as_tensor(np.concatenate([p_si, p_so]), dtype=torch.float32, device=dev)
    labels = torch.as_tensor(np.concatenate([y_si, y_so]).astype(np.int64), device=dev)
    member = torch.cat([torch.ones(len(y_si)), torch.zeros(len(y_so))]).long().to(dev)
    num_classes = x.shape[1]
    classes = [
        c
        for c in range(num_classes)
        if (member[labels == c] == 1).any() and (member[labels == c] == 0).any()
    ]
    xt = torch.as_tensor(p_t, dtype=torch.float32, device=dev)
    yt = torch.as_tensor(y_t, device=dev)
    scores = torch.empty(len(y_t), dtype=torch.float64, device=dev)
    groups = [torch.nonzero(labels == c)[:, 0] for c in classes]
    covered = torch.isin(yt, torch.tensor(classes, dtype=torch.long, device=dev))
    with seeded(seed, dev):
        per_class = _fit_groups(x, member, groups, hidden=hidden, cfg=cfg) if groups else []
        everyone = [torch.arange(len(member), device=dev)]
        fallback = (
            [] if bool(covered.all()) else _fit_groups(x, member, everyone, hidden=hidden, cfg=cfg)
        )
    with torch.no_grad():
        for g, c in enumerate(classes):
            rows = yt == c
            scores[rows] = _apply_group(per_class, g, xt[rows])
        if fallback:
            scores[~covered] = _apply_group(fallback, 0, xt[~covered])
    out = scores.cpu().numpy()
    return out[: len(target_in[1])], out[len(target_in[1]) :]
