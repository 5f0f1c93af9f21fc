"""The WeMem methods RSW, RMR and SWMR as :class:`~wemem.training.loop.Hooks` (spec §2.4).

They plug into the one training loop (:func:`wemem.training.loop.fit`) and serve the victim and every
shadow model alike. Each is built from the mem-scores and labels of the *pool* rows, so it can map
any training row to its score and class:

* :class:`RSWHooks` — ranking + sliding window: epoch e trains, with plain cross-entropy and the
  default single Adam (λg = ``config.weight_decay``), on the window at position e (official
  ``slide`` = H→L, ``slide_re`` = L→H, ``random`` = a seeded random order).
* :class:`RMRHooks` — mem-score-based adaptive L2 on all rows (official ``ml2``).
* :class:`SWMRHooks` — the RSW window of each epoch, split by τ and trained as RMR (official
  ``slide_ml2`` / ``slide_re_ml2``).

:func:`wemem.pruning.prune_and_finetune` builds a *fresh* hooks object per pruning round, so the
window restarts at position 0 every round (spec §9.6), while the optimizers made by the first round
persist across rounds (spec §4.3), as in the official code.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike
from torch import nn

from wemem.defenses.primitives import (
    MODES,
    ORDERS,
    check_choice,
    check_int,
    check_labels,
    check_real,
    check_scores,
    rank_by_memscore,
    sliding_window_indices,
)
from wemem.errors import ParamsError
from wemem.training import fastpath
from wemem.training.loop import Batch, Hooks, TrainConfig

log = logging.getLogger(__name__)

#: How RMR's per-sample L2 strength is realised (see :class:`RMRHooks`).
REALISATIONS = ("official", "per_sample")


def _pool_arrays(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    s, y = check_scores(scores), check_labels(labels)
    if s.shape != y.shape:
        raise ParamsError(f"scores and labels: shapes {s.shape} and {y.shape} differ")
    return s, y


def _check_rows(rows: torch.Tensor, n: int) -> None:
    if len(rows) and (int(rows.min()) < 0 or int(rows.max()) >= n):
        raise ParamsError(
            f"training rows span [{int(rows.min())}, {int(rows.max())}], but mem-scores cover pool "
            f"rows [0, {n}); pass scores and labels for every pool row a model trains on"
        )


class _Window:
    """The sliding window over one fit's training rows: ranked on first use, cached for the fit."""

    def __init__(
        self,
        scores: np.ndarray,
        labels: np.ndarray,
        *,
        order: str,
        width: int,
        step: int,
        mode: str,
        seed: int,
    ) -> None:
        self.scores, self.labels = scores, labels
        self.order = check_choice("order", order, ORDERS)
        self.width = check_int("width", width, 1)
        self.step = check_int("step", step, 1)
        self.mode = check_choice("mode", mode, MODES)
        self.seed = check_int("seed", seed, 0)
        self.num_classes = int(labels.max()) + 1 if labels.size else 0
        self.ranked: list[np.ndarray] | None = None

    def rows(self, epoch: int, train_rows: torch.Tensor) -> torch.Tensor:
        if self.ranked is None:
            _check_rows(train_rows, len(self.scores))
            idx = train_rows.cpu().numpy()
            self.ranked = rank_by_memscore(
                idx,
                self.labels[idx],
                self.scores[idx],
                order=self.order,
                seed=self.seed,
                num_classes=self.num_classes,
            )
            log.debug(
                "ranked %d training rows %s into %d classes (sizes %d..%d)",
                len(idx),
                self.order,
                len(self.ranked),
                min(map(len, self.ranked), default=0),
                max(map(len, self.ranked), default=0),
            )
        window = sliding_window_indices(
            self.ranked, epoch, width=self.width, step=self.step, mode=self.mode
        )
        return torch.as_tensor(window, dtype=torch.long, device=train_rows.device)

    def reason(self, epoch: int) -> str:
        start = epoch * self.step
        return (
            f"sliding window empty at epoch {epoch} (start {epoch}·{self.step} = {start} ≥ every "
            "class size)"
        )


class RSWHooks(Hooks):
    """RSW: ranking + sliding window, plain CE, the default single Adam (spec §2.4).

    Args:
        scores: (N_pool,) float mem-score of every pool row a model may train on (pool row i ↔
            index i; the training pool P suffices), higher = more memorized.
        labels: (N_pool,) int class of every pool row (the labels the model trains on).
        order: ``"H2L"``, ``"L2H"`` or ``"random"`` (the ``random_window`` ablation).
        width: w, samples per class and epoch.
        step: s, the slide per epoch.
        mode: ``"per_class"`` or ``"faithful"`` clipping (:func:`sliding_window_indices`).
        seed: seed of the ``"random"`` order.
    """

    def __init__(
        self,
        scores: ArrayLike,
        labels: ArrayLike,
        *,
        order: str,
        width: int,
        step: int,
        mode: str = "per_class",
        seed: int = 0,
    ) -> None:
        s, y = _pool_arrays(scores, labels)
        self.window = _Window(s, y, order=order, width=width, step=step, mode=mode, seed=seed)

    def bind(self, model, x, y, train_rows, dev_rows) -> None:
        self.window.ranked = None  # rank this fit's training rows afresh

    def epoch_indices(self, epoch: int, train_rows: torch.Tensor) -> torch.Tensor:
        """The window at position ``epoch`` (ranks [e·s, e·s + w) of each class); may be empty."""
        return self.window.rows(epoch, train_rows)

    def empty_reason(self, epoch: int) -> str:
        return self.window.reason(epoch)


class RMRHooks(Hooks):
    """RMR: mem-score-based adaptive L2 regularization on all training rows (spec §2.3, §9.8).

    Each sample's loss is CE(f_θ(x_i), y_i) + (λ(i)/2)·‖θ‖² with λ(i) = λr if m_i >= τ (high-risk)
    else λg. Two realisations:

    * ``"official"`` (default, the official ``train_defend_ml2``): two Adam optimizers over the
      *same* parameters, ``"general"`` with ``weight_decay = config.weight_decay`` (λg) and
      ``"risk"`` with ``weight_decay = lambda_r``. torch Adam's ``weight_decay`` is coupled L2 (λθ
      added to the gradient before the adaptive scaling), i.e. a loss term (λ/2)‖θ‖². Each epoch
      makes one shuffled pass over the high-risk rows (batches stepped by ``"risk"``) and *then*
      one over the general rows (``"general"``): batches are homogeneous. Each optimizer keeps its
      own moments, and both persist across pruning rounds.
    * ``"per_sample"``: one Adam *without* weight decay over mixed shuffled batches, and the loss of
      a batch B is the per-sample form averaged over the batch,
      mean_{i∈B}[CE_i + (λ(i)/2)‖θ‖²] = CE + ½·mean_{i∈B}(λ(i))·‖θ‖², where θ is every trainable
      parameter (collected in :meth:`bind`; for a pruned layer that is ``weight_orig``, as the
      official decay also acts on it). λg is ``lambda_g`` here because a later round's fresh hooks
      never see the config.

    If one set is empty only the other trains; both empty (no rows) ends the fit.

    Args:
        scores, labels: as for :class:`RSWHooks` (labels are only checked, the split is global).
        tau: τ; high-risk is m >= τ.
        lambda_r: λr, the risk L2 strength (0.1 best, spec §2.3).
        realisation: ``"official"`` or ``"per_sample"``.
        lambda_g: λg of the ``"per_sample"`` loss (the official realisation uses
            ``config.weight_decay``).
    """

    def __init__(
        self,
        scores: ArrayLike,
        labels: ArrayLike,
        *,
        tau: float,
        lambda_r: float,
        realisation: str = "official",
        lambda_g: float = 5e-4,
    ) -> None:
        self.scores, _ = _pool_arrays(scores, labels)
        self.tau = check_real("tau", tau, low=0.0, high=1.0)
        self.lambda_r = check_real("lambda_r", lambda_r, low=0.0, low_open=True)
        self.lambda_g = check_real("lambda_g", lambda_g, low=0.0)
        self.realisation = check_choice("realisation", realisation, REALISATIONS)
        self._risk: torch.Tensor | None = None  # (N_pool,) bool on the device: m >= τ
        self._lam: torch.Tensor | None = None  # (N_pool,) float λ(i) for per_sample
        self._params: list[nn.Parameter] = []

    def bind(self, model, x, y, train_rows, dev_rows) -> None:
        _check_rows(train_rows, len(self.scores))
        risk = self.scores >= self.tau
        self._risk = torch.as_tensor(risk, device=x.device)
        self._lam = torch.as_tensor(
            np.where(risk, self.lambda_r, self.lambda_g), dtype=torch.float32, device=x.device
        )
        self._params = [p for p in model.parameters() if p.requires_grad]

    def make_optimizers(
        self, model: nn.Module, config: TrainConfig
    ) -> dict[str, torch.optim.Optimizer]:
        params = [p for p in model.parameters() if p.requires_grad]
        if self.realisation == "per_sample":
            return {"main": fastpath.adam(params, lr=config.lr, weight_decay=0.0)}
        return {
            "general": fastpath.adam(params, lr=config.lr, weight_decay=config.weight_decay),
            "risk": fastpath.adam(params, lr=config.lr, weight_decay=self.lambda_r),
        }

    def split(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(risk, general) rows of ``rows``: m >= τ and m < τ, in the order of ``rows``."""
        if self._risk is None:
            raise RuntimeError("RMRHooks.split called before bind")
        mask = self._risk[rows]
        return rows[mask], rows[~mask]

    def batch_plan(
        self, epoch: int, rows: torch.Tensor, *, batch_size: int, generator: torch.Generator
    ) -> Iterator[Batch]:
        """Official: all risk batches (shuffled) then all general batches; per_sample: mixed."""
        if self.realisation == "per_sample":
            yield from super().batch_plan(epoch, rows, batch_size=batch_size, generator=generator)
            return
        risk, general = self.split(rows)
        for part, name in ((risk, "risk"), (general, "general")):
            if len(part) == 0:  # an empty tensor still splits into one empty chunk
                continue
            perm = torch.randperm(len(part), generator=generator).to(part.device)
            for chunk in part[perm].split(batch_size):
                yield Batch(chunk, name)

    def loss(
        self, logits: torch.Tensor, targets: torch.Tensor, batch: Batch, epoch: int
    ) -> torch.Tensor:
        ce = F.cross_entropy(logits, targets)
        if self.realisation != "per_sample":
            return ce
        sq_norm = torch.stack([p.pow(2).sum() for p in self._params]).sum()
        return ce + 0.5 * self._lam[batch.rows].mean() * sq_norm

    def unbind(self, model: nn.Module) -> None:
        self._params = []


class SWMRHooks(RMRHooks):
    """SWMR: the RSW window of each epoch, split by τ and trained as RMR on just those rows.

    Args: those of :class:`RSWHooks` (``order``, ``width``, ``step``, ``mode``, ``seed``) and of
    :class:`RMRHooks` (``tau``, ``lambda_r``, ``realisation``, ``lambda_g``).
    """

    def __init__(
        self,
        scores: ArrayLike,
        labels: ArrayLike,
        *,
        order: str,
        width: int,
        step: int,
        tau: float,
        lambda_r: float,
        mode: str = "per_class",
        seed: int = 0,
        realisation: str = "official",
        lambda_g: float = 5e-4,
    ) -> None:
        super().__init__(
            scores, labels, tau=tau, lambda_r=lambda_r, realisation=realisation, lambda_g=lambda_g
        )
        s, y = _pool_arrays(scores, labels)
        self.window = _Window(s, y, order=order, width=width, step=step, mode=mode, seed=seed)

    def bind(self, model, x, y, train_rows, dev_rows) -> None:
        super().bind(model, x, y, train_rows, dev_rows)
        self.window.ranked = None

    def epoch_indices(self, epoch: int, train_rows: torch.Tensor) -> torch.Tensor:
        return self.window.rows(epoch, train_rows)

    def empty_reason(self, epoch: int) -> str:
        return self.window.reason(epoch)
