"""The one training loop, with hooks through which every defense plugs in.

Base training (spec §4.1, §10): Adam (lr 1e-3, betas 0.9/0.999, *coupled* weight decay 5e-4, i.e. an
L2 term (λ/2)‖θ‖² in the loss), batch 128, early stopping on dev accuracy: a checkpoint is kept when
dev accuracy strictly improves, otherwise a counter grows and training stops once it exceeds the
patience (patience 5 = stop after 6 non-improving epochs in a row); the best-dev weights are kept.

Defenses never copy this loop. They subclass :class:`Hooks` and decide

* which training indices an epoch uses (``epoch_indices``; an empty array ends the fit cleanly),
* how those indices become batches and which optimizer steps each batch (``batch_plan``),
* the loss of a batch (``loss``), and which optimizers exist (``make_optimizers``).

All data lives in one tensor on the training device; a batch is an index gather, not a Python loop
over samples.

Device decisions (bf16 autocast of the forward pass on CUDA, how tensors move) come from
:mod:`wemem.training.device`; on the CPU they are no-ops.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from wemem.training import fastpath
from wemem.training.device import (
    resolve_device,  # noqa: F401  (re-export: it lived here)
    to_device,
    training_autocast,
)
from wemem.training.fastpath import optimizer_step, zero_grad

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one fit (spec §10 defaults)."""

    lr: float = 1e-3
    weight_decay: float = 5e-4
    batch_size: int = 128
    max_epochs: int = 100
    patience: int = 5
    seed: int = 0
    eval_batch_size: int = 2048
    progress: bool = False


@dataclass(frozen=True)
class Batch:
    """One minibatch: dataset row indices (on the device) and the optimizer that steps it."""

    rows: torch.Tensor
    optimizer: str = "main"


class Hooks:
    """Base training: all training rows every epoch, shuffled batches, cross-entropy, one Adam.

    Subclass and override to build a defense. ``epoch`` counts from 0 within one fit (one pruning
    round), which is what the sliding window and RelaxLoss' epoch parity need.
    """

    def make_optimizers(
        self, model: nn.Module, config: TrainConfig
    ) -> dict[str, torch.optim.Optimizer]:
        params = [p for p in model.parameters() if p.requires_grad]
        return {"main": fastpath.adam(params, lr=config.lr, weight_decay=config.weight_decay)}

    def epoch_indices(self, epoch: int, train_rows: torch.Tensor) -> torch.Tensor:
        """Rows used in this epoch: (m,) int64 on the device. Empty = end the fit."""
        return train_rows

    def batch_plan(
        self, epoch: int, rows: torch.Tensor, *, batch_size: int, generator: torch.Generator
    ) -> Iterator[Batch]:
        """Shuffle ``rows`` and cut them into batches for the ``main`` optimizer."""
        perm = to_device(torch.randperm(len(rows), generator=generator), rows.device)
        for chunk in rows[perm].split(batch_size):
            yield Batch(chunk)

    def loss(
        self, logits: torch.Tensor, targets: torch.Tensor, batch: Batch, epoch: int
    ) -> torch.Tensor:
        return F.cross_entropy(logits, targets)

    def bind(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        train_rows: torch.Tensor,
        dev_rows: torch.Tensor,
    ) -> None:
        """Called once at the start of a fit, before ``make_optimizers``: defenses that need the
        model or the data (ADV's reference set, DP-SGD's per-sample gradients) keep them here."""

    def backward(self, loss: torch.Tensor, batch: Batch, epoch: int) -> None:
        """Back-propagate one batch's loss (DP ghost clipping replaces this)."""
        loss.backward()

    def after_step(self, model: nn.Module, batch: Batch, epoch: int) -> None:
        """Called after every optimizer step (e.g. an adversary's own update, or re-applying a
        sparsity mask that a wrapped optimizer does not know about)."""

    def unbind(self, model: nn.Module) -> None:
        """Called once at the end of a fit (remove hooks added in ``bind``)."""

    def empty_reason(self, epoch: int) -> str:
        return f"no training rows at epoch {epoch}"

    #: Whether a pruning run with these hooks can be checkpointed after a round and resumed (its
    #: optimizers are plain ``torch.optim`` ones and :meth:`carry_state` holds any state that
    #: outlives a round). DP-SGD's accountant and wrapped optimizer are not: it sets ``False``.
    resumable: bool = True

    def carry_state(self, model: nn.Module) -> dict | None:
        """State that the defense carries from one pruning round to the next outside the optimizers
        (ADV's inference model); stored in a round checkpoint. ``None``: nothing."""
        return None

    def restore_state(self, model: nn.Module, state: dict) -> None:
        """Put back what :meth:`carry_state` returned, before the next round's fit on ``model``."""


@dataclass
class FitResult:
    """What a fit did. ``best_state`` is the best-dev state dict (on the device)."""

    best_dev_acc: float
    best_epoch: int
    epochs_run: int
    stop_reason: str
    seconds: float
    history: list[dict] = field(default_factory=list)
    best_state: dict | None = None

    def summary(self) -> dict:
        return {
            "best_dev_acc": self.best_dev_acc,
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "stop_reason": self.stop_reason,
            "seconds": self.seconds,
            "history": self.history,
        }


@torch.no_grad()
def predict_proba(
    model: nn.Module, x: torch.Tensor, rows: torch.Tensor | np.ndarray, *, batch_size: int = 2048
) -> torch.Tensor:
    """Softmax posteriors of ``model`` on ``x[rows]``: (len(rows), C) float32, on x's device."""
    rows = torch.as_tensor(rows, device=x.device)
    was_training = model.training
    model.eval()
    out = []
    for chunk in rows.split(batch_size):
        with training_autocast(x.device):
            logits = model(x.index_select(0, chunk))
        out.append(torch.softmax(logits.float(), dim=1))
    model.train(was_training)
    if not out:
        return torch.empty(0, 0, device=x.device)
    return torch.cat(out)


@torch.no_grad()
def accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    rows: torch.Tensor,
    *,
    batch_size: int = 2048,
) -> float:
    """Top-1 accuracy of ``model`` on ``x[rows]`` against ``y[rows]``."""
    if len(rows) == 0:
        return float("nan")
    probs = predict_proba(model, x, rows, batch_size=batch_size)
    return float((probs.argmax(1) == y[rows]).float().mean())


def _state_copy(model: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@dataclass
class _Best:
    """Early stopping on dev accuracy: the best epoch so far and the non-improving streak since."""

    acc: float = -1.0
    epoch: int = -1
    bad: int = 0
    state: dict | None = None

    def update(self, model: nn.Module, dev_acc: float, epoch: int) -> None:
        """Keep a checkpoint when dev accuracy strictly improves, else lengthen the streak."""
        if dev_acc > self.acc:
            self.acc, self.epoch, self.bad = dev_acc, epoch, 0
            self.state = _state_copy(model)
        else:
            self.bad += 1


def _skips_one_row(model: nn.Module) -> bool:
    """Whether :func:`fit` skips one-row batches: for models with BatchNorm, which cannot normalise
    a single sample (it fails on 1×1 feature maps and is noise on larger ones); sliding windows can
    produce such a batch. Empty batches still run: DP-SGD's Poisson sampling makes noise-only
    steps of them."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _epoch_record(
    epoch: int,
    n_seen: int,
    total: torch.Tensor,
    dev_acc: float,
    train_seconds: float,
    *,
    started: float,
) -> dict:
    """One entry of :attr:`FitResult.history`; ``started`` is the epoch's ``perf_counter`` start."""
    return {
        "epoch": epoch,
        "n_train": n_seen,
        "train_loss": float(total) / max(n_seen, 1),
        "dev_acc": dev_acc,
        "train_seconds": train_seconds,
        "seconds": time.perf_counter() - started,
    }


def _train_epoch(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    rows: torch.Tensor,
    epoch: int,
    *,
    hooks: Hooks,
    optimizers: dict[str, torch.optim.Optimizer],
    batch_size: int,
    generator: torch.Generator,
    skip_one_row: bool,
) -> tuple[torch.Tensor, int]:
    """One epoch over ``rows`` (m,) as ``hooks`` batch them; returns the loss summed over the
    trained rows (0-dim tensor on the device) and how many rows were trained."""
    model.train()
    total, n_seen = torch.zeros((), device=x.device), 0
    for batch in hooks.batch_plan(epoch, rows, batch_size=batch_size, generator=generator):
        if skip_one_row and len(batch.rows) == 1:
            continue
        opt = optimizers[batch.optimizer]
        zero_grad(opt)
        with training_autocast(x.device):
            logits = model(x.index_select(0, batch.rows))  # = x[rows], a faster gather on CPU
        loss = hooks.loss(logits.float(), y.index_select(0, batch.rows), batch, epoch)
        hooks.backward(loss, batch, epoch)
        optimizer_step(opt)
        hooks.after_step(model, batch, epoch)
        total += loss.detach() * len(batch.rows)
        n_seen += len(batch.rows)
    return total, n_seen


def fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    train_rows: torch.Tensor | np.ndarray,
    dev_rows: torch.Tensor | np.ndarray,
    *,
    config: TrainConfig,
    hooks: Hooks | None = None,
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    desc: str = "train",
) -> tuple[FitResult, dict[str, torch.optim.Optimizer]]:
    """Train ``model`` in place with early stopping on dev accuracy.

    Args:
        model: the network, already on ``x``'s device. It ends with its *last-epoch* weights (the
            pruning rounds continue from those, spec §4.3); the best-dev weights are in
            ``result.best_state``.
        x: (N, ...) float inputs of the whole pool, on the training device.
        y: (N,) int64 labels.
        train_rows, dev_rows: row indices of the training and dev sets.
        config: hyper-parameters; ``config.seed`` fixes shuffling and dropout.
        hooks: the defense; :class:`Hooks` (Base) when ``None``.
        optimizers: optimizers to continue with (they persist across pruning rounds, spec §4.3);
            created by ``hooks.make_optimizers`` when ``None``.

    Returns:
        The fit result and the optimizers (to pass to the next round).
    """
    hooks = hooks or Hooks()
    device = x.device
    train_rows = torch.as_tensor(train_rows, dtype=torch.long, device=device)
    dev_rows = torch.as_tensor(dev_rows, dtype=torch.long, device=device)
    hooks.bind(model, x, y, train_rows, dev_rows)
    if optimizers is None:
        optimizers = hooks.make_optimizers(model, config)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    skip_one_row = _skips_one_row(model)

    t0 = time.perf_counter()
    try:
        best = _Best()
        history: list[dict] = []
        stop = "max_epochs"
        bar = tqdm(range(config.max_epochs), desc=desc, disable=not config.progress, leave=False)
        for epoch in bar:
            te = time.perf_counter()
            rows = hooks.epoch_indices(epoch, train_rows)
            if len(rows) == 0:
                stop = hooks.empty_reason(epoch)
                log.info("%s: stopping at epoch %d: %s", desc, epoch, stop)
                break
            total, n_seen = _train_epoch(
                model, x, y, rows, epoch, hooks=hooks, optimizers=optimizers,
                batch_size=config.batch_size, generator=gen, skip_one_row=skip_one_row,
            )  # fmt: skip
            train_seconds = time.perf_counter() - te
            dev_acc = accuracy(model, x, y, dev_rows, batch_size=config.eval_batch_size)
            best.update(model, dev_acc, epoch)
            history.append(_epoch_record(epoch, n_seen, total, dev_acc, train_seconds, started=te))
            bar.set_postfix(dev=f"{dev_acc:.3f}")
            if best.bad > config.patience:
                stop = f"early stop: dev accuracy did not improve for {best.bad} epochs"
                break
    finally:
        hooks.unbind(model)
    result = FitResult(
        best_dev_acc=best.acc,
        best_epoch=best.epoch,
        epochs_run=len(history),
        stop_reason=stop,
        seconds=time.perf_counter() - t0,
        history=history,
        best_state=best.state,
    )
    return result, optimizers


def set_threads(threads: int) -> None:
    """Fix the CPU thread count (results are bit-identical for 1 and 2 threads; 1 is the safe default
    on a shared 2-core machine, spec cpu_scouting §2 'threading hazard')."""
    torch.set_num_threads(threads)
