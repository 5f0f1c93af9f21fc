"""Classifier-based membership inference attacks (spec §6.2): NN, Top3-NN, Cl-NN, NN-Sens.

An attack model learns "member or not" from per-sample features of the shadow models' outputs
(label 1 for shadow members, 0 for shadow non-members, all shadows pooled) and scores the victim's
members and non-members. Training follows the official code exactly: SGD (lr 1e-3, momentum 0.9,
weight decay 5e-4), batch 128, 100 epochs, learning rate ×0.1 at epochs 50 and 75, Xavier re-init,
plain cross-entropy, no model selection (the last epoch's model is used).

Features (:func:`features`), for posterior p (C), sensitivity s (C) and label y:

- ``nn``: p; ``top3_nn``: the 3 largest posteriors, descending; ``cl_nn``: [p ‖ onehot(y)].
- ``nn_sens``: [p ‖ s ‖ onehot(y)] with the plain MLP. The paper promises 6 classifier attacks but
  the release has 4 (spec §6.2); this is this project's reading of one of the two missing ones:
  SAMIA's features without self-attention (the official ``nn_attack("nn_sens_cls")`` default).

The other missing one, Shokri et al.'s per-class attack, lives in :mod:`.shokri` and trains with
the recipe of :func:`train_settings`.

Scores are member probabilities softmax(logits)[1], computed in float64 from the logit margin so
that confident predictions do not tie at 1.0; the decision rule is "member iff score >= 0.5".
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn
from tqdm.auto import tqdm

from wemem.errors import ParamsError
from wemem.models import xavier_init
from wemem.training import fastpath
from wemem.training.device import resolve_device, to_device
from wemem.training.dropout import Dropout
from wemem.training.fastpath import optimizer_step, zero_grad

__all__ = [
    "FEATURE_KINDS",
    "TRAIN_DEFAULTS",
    "AttackMLP",
    "attack_device",
    "features",
    "member_proba",
    "mlp_attack",
    "seeded",
    "train_and_score",
    "train_attack_model",
    "train_settings",
]

FEATURE_KINDS = ("nn", "top3_nn", "cl_nn", "nn_sens")
"""Feature sets of the MLP attacks (:func:`features`)."""

TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 100,
    "milestones": (50, 75),
    "lr": 1e-3,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "batch_size": 128,
    "progress": False,
}
"""The official attack-model training recipe (spec §6.2); keys accepted by :func:`train_settings`."""


def features(kind: str, probs: Any, labels: Any, sens: Any | None = None) -> NDArray[np.float32]:
    """Attack features of one model's outputs.

    Args:
        kind: one of :data:`FEATURE_KINDS`.
        probs: ``(n, C)`` posteriors; labels: ``(n,)`` int in ``[0, C)``;
        sens: ``(n, C)`` sensitivities (:mod:`.sensitivity`), required for ``nn_sens``.

    Returns:
        ``(n, d)`` float32 with d = C (``nn``), 3 (``top3_nn``), 2C (``cl_nn``), 3C (``nn_sens``),
        blocks laid out in the order named, e.g. ``[p_1..p_C, s_1..s_C, y_1..y_C]``.
    """
    if kind not in FEATURE_KINDS:
        raise ParamsError(f"feature kind {kind!r} is unknown; allowed: {', '.join(FEATURE_KINDS)}")
    p = np.asarray(probs, dtype=np.float32)
    y = np.asarray(labels).astype(np.int64)
    if p.ndim != 2 or y.shape != (p.shape[0],):
        raise ValueError(f"probs must be (n, C) and labels (n,); got {p.shape} and {y.shape}")
    n, c = p.shape
    if kind == "nn":
        return p
    if kind == "top3_nn":
        if c < 3:
            raise ValueError(f"top3_nn needs at least 3 classes; got {c}")
        return -np.sort(-p, axis=1)[:, :3]
    onehot = np.zeros((n, c), dtype=np.float32)
    onehot[np.arange(n), y] = 1.0
    if kind == "cl_nn":
        return np.concatenate([p, onehot], axis=1)
    if sens is None:
        raise ParamsError("sens: got None; feature kind 'nn_sens' needs (n, C) sensitivities")
    s = np.asarray(sens, dtype=np.float32)
    if s.shape != p.shape:
        raise ValueError(f"sens must have the shape of probs {p.shape}; got {s.shape}")
    return np.concatenate([p, s, onehot], axis=1)


class AttackMLP(nn.Module):
    """The official attack MLP: ``in → 512 → 256 → 128 → 2``, ReLU, Dropout(0.2) after the first
    two hidden layers, Xavier-normal weights and zero biases. Input ``(n, in)``, logits ``(n, 2)``."""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, 512),
            nn.ReLU(),
            Dropout(0.2),
            nn.Linear(512, 256),
            nn.ReLU(),
            Dropout(0.2),
            nn.Linear(256, 128),
            nn.ReLU(),
            nn.Linear(128, 2),
        )
        xavier_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# --- training -----------------------------------------------------------------------------------


def train_settings(**train: Any) -> dict[str, Any]:
    """Validate training keywords against :data:`TRAIN_DEFAULTS`; return the completed dict."""
    unknown = sorted(set(train) - set(TRAIN_DEFAULTS))
    if unknown:
        raise ParamsError(f"training keyword(s) {unknown} unknown; allowed: {list(TRAIN_DEFAULTS)}")
    cfg = {**TRAIN_DEFAULTS, **train}
    for key in ("epochs", "batch_size"):
        v = cfg[key]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ParamsError(f"{key}: got {v!r}; allowed values are integers >= 1")
    ms = cfg["milestones"]
    if not isinstance(ms, Sequence) or not all(isinstance(e, int) and e >= 1 for e in ms):
        raise ParamsError(f"milestones: got {ms!r}; allowed values are sequences of integers >= 1")
    cfg["milestones"] = tuple(sorted(ms))
    checks = {
        "lr": (lambda v: v > 0, "numbers > 0"),
        "momentum": (lambda v: 0 <= v < 1, "numbers in [0, 1)"),
        "weight_decay": (lambda v: v >= 0, "numbers >= 0"),
    }
    for key, (ok, allowed) in checks.items():
        v = cfg[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not ok(v):
            raise ParamsError(f"{key}: got {v!r}; allowed values are {allowed}")
    return cfg


@contextlib.contextmanager
def seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's RNGs (CPU and ``device``) inside; the caller's RNG state is restored after."""
    devices = []
    if device.type == "cuda":
        devices = [torch.cuda.current_device() if device.index is None else device.index]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        yield


def attack_device(device: str | torch.device | None) -> torch.device:
    """Where attack models train: ``device``; ``None`` means CUDA when available, else CPU
    (:func:`wemem.training.device.resolve_device`: CUDA without a CUDA device is a ParamsError)."""
    return resolve_device("auto" if device is None else device)


def train_attack_model(
    build: Callable[[], nn.Module],
    feats: NDArray[np.floating],
    member: NDArray[np.integer],
    *,
    seed: int = 0,
    device: str | torch.device | None = None,
    **train: Any,
) -> nn.Module:
    """Build (seeded) and train an attack model with the official recipe; last epoch, eval mode.

    Args:
        build: returns a fresh model mapping ``(n, d)`` float32 to ``(n, 2)`` logits.
        feats: ``(n, d)`` training features; member: ``(n,)`` 1 = member, 0 = non-member.
        seed: seeds initialisation, shuffling and dropout (global RNG state restored afterwards).
        device: where to train (default CUDA when available); the data lives there as tensors.
        **train: overrides of :data:`TRAIN_DEFAULTS` (``epochs``, ``milestones``, ...).

    A trailing batch of a single sample is skipped (BatchNorm cannot train on one sample).
    """
    cfg = train_settings(**train)
    dev = attack_device(device)
    x = to_device(torch.as_tensor(np.asarray(feats), dtype=torch.float32), dev)
    y = to_device(torch.as_tensor(np.asarray(member), dtype=torch.long), dev)
    with seeded(seed, dev):
        model = build().to(dev)
        opt = fastpath.sgd(
            model.parameters(),
            lr=cfg["lr"],
            momentum=cfg["momentum"],
            weight_decay=cfg["weight_decay"],
        )
        drops = Counter(cfg["milestones"])
        model.train()
        for epoch in tqdm(
            range(cfg["epochs"]), desc="attack model", disable=not cfg["progress"], leave=False
        ):
            for idx in torch.randperm(len(y), device=dev).split(cfg["batch_size"]):
                if len(idx) < 2 and len(y) > 1:
                    continue
                loss = F.cross_entropy(model(x.index_select(0, idx)), y.index_select(0, idx))
                zero_grad(opt)
                loss.backward()
                optimizer_step(opt)
            if drops[epoch + 1]:  # MultiStepLR(gamma=0.1)'s update after an epoch, written out
                for group in opt.param_groups:
                    group["lr"] = group["lr"] * 0.1 ** drops[epoch + 1]
    return model.eval()


@torch.no_grad()
def member_proba(
    model: nn.Module, feats: NDArray[np.floating], *, batch_size: int = 8192
) -> NDArray[np.float64]:
    """``(n,)`` float64 member probability softmax(logits)[1] = sigmoid(l₁ − l₀), eval mode."""
    dev = next(model.parameters()).device
    x = torch.as_tensor(np.asarray(feats), dtype=torch.float32, device=dev)
    model.eval()
    margins = [torch.diff(model(chunk).double(), dim=1)[:, 0] for chunk in x.split(batch_size)]
    return torch.sigmoid(torch.cat(margins)).cpu().numpy()


def train_and_score(
    build: Callable[[], nn.Module],
    shadow_in: NDArray[np.floating],
    shadow_out: NDArray[np.floating],
    target_in: NDArray[np.floating],
    target_out: NDArray[np.floating],
    *,
    seed: int = 0,
    device: str | torch.device | None = None,
    score_batch_size: int = 8192,
    **train: Any,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Train on shadow member / non-member features ``(n, d)``; return the victim's member
    probabilities ``(scores_in (n_in,), scores_out (n_out,))``, scored ``score_batch_size`` at a
    time (eval mode: each sample's score does not depend on the others in its batch)."""
    feats = np.concatenate([shadow_in, shadow_out])
    member = np.concatenate(
        [np.ones(len(shadow_in), np.int64), np.zeros(len(shadow_out), np.int64)]
    )
    model = train_attack_model(build, feats, member, seed=seed, device=device, **train)
    scores = member_proba(
        model, np.concatenate([target_in, target_out]), batch_size=score_batch_size
    )
    return scores[: len(target_in)], scores[len(target_in) :]


def _feats(kind: str, outputs: Sequence[Any]) -> NDArray[np.float32]:
    """Features of a ``(probs, labels)`` or ``(probs, labels, sens)`` tuple."""
    probs, labels, *rest = outputs
    return features(kind, probs, labels, rest[0] if rest else None)


def mlp_attack(
    kind: str,
    shadow_in: Sequence[Any],
    shadow_out: Sequence[Any],
    target_in: Sequence[Any],
    target_out: Sequence[Any],
    *,
    seed: int = 0,
    device: str | torch.device | None = None,
    **train: Any,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """One MLP attack (``kind`` in :data:`FEATURE_KINDS`) with :class:`AttackMLP`.

    Each data argument is ``(probs (n, C), labels (n,))``, or ``(probs, labels, sens (n, C))`` for
    ``nn_sens``; the shadow ones are all shadow models pooled. Returns the victim's member
    probabilities ``(scores_in, scores_out)``.
    """
    sets = [_feats(kind, d) for d in (shadow_in, shadow_out, target_in, target_out)]
    width = sets[0].shape[1]
    return train_and_score(lambda: AttackMLP(width), *sets, seed=seed, device=device, **train)
