"""The existing defenses the paper compares with (spec §7), as hooks of the one training loop.

Each is a :class:`~wemem.training.loop.Hooks` subclass that serves the victim and the shadow models
alike (the attacks are adaptive, spec §6.3), runs only in the fine-tuning rounds, and keeps Base's
Adam (lr 1e-3, coupled weight decay 5e-4) and early stopping:

* :class:`PPBHooks` — pair-based posterior balancing (Yuan & Zhang, 2022);
* :class:`RelaxLossHooks` — RelaxLoss (Chen et al., 2022);
* :class:`ADVHooks` — adversarial regularisation (Nasr et al., 2018): ``mode: nasr`` (default) as
  published, k inference-model steps before *every* classifier step; ``mode: official`` as the
  paper ran it, k θ-scaled inference-model steps and one classifier step per "epoch" (spec §7,
  §9.12).

Base is :class:`wemem.training.loop.Hooks` itself; DP-SGD is in :mod:`wemem.defenses.dp`.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike
from torch import nn

from wemem.attacks.classifier import AttackMLP
from wemem.errors import ParamsError
from wemem.training import fastpath
from wemem.training.device import training_autocast
from wemem.training.loop import Batch, Hooks, TrainConfig


def _real(name: str, value: object, *, low: float, high: float = float("inf")) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ParamsError(f"{name} = {value!r}: allowed range is [{low}, {high}]")
    return float(value)


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParamsError(f"{name} = {value!r}: must be an integer >= 1")
    return value


# --- PPB ----------------------------------------------------------------------------------------


def ppb_loss(logits: torch.Tensor, targets: torch.Tensor, *, beta: float) -> torch.Tensor:
    """Pair-based posterior balancing loss of one batch (Yuan & Zhang, 2022; spec §7).

    ``logits``: (n, C); ``targets``: (n,) int64. Every row's logits are sorted in descending order;
    a = the first ⌊n/2⌋ rows, b = the next ⌊n/2⌋ (an odd last row only enters the CE). Returns

        CE(logits, targets) + β · (1/⌊n/2⌋) Σ_i KL(softmax(b_i) ‖ softmax(a_i)),

    i.e. ``F.kl_div(log_softmax(a), softmax(b), reduction="batchmean")`` exactly as the official
    ``train_defend_ppb`` (``batchmean`` divides the summed KL by the number of pairs). n < 2: CE.
    """
    ce = F.cross_entropy(logits, targets)
    half = len(logits) // 2
    if half == 0:
        return ce
    ranked = logits.sort(dim=1, descending=True).values
    kl = F.kl_div(
        F.log_softmax(ranked[:half], dim=1),
        F.softmax(ranked[half : 2 * half], dim=1),
        reduction="batchmean",
    )
    return ce + beta * kl


class PPBHooks(Hooks):
    """PPB: Base plus β·KL between the sorted posteriors of the two halves of each batch.

    ``beta`` ∈ {1, 2, 4, 8, 16} in the paper's grid, 4 in its scripts. Batches are Base's shuffled
    batches, so the pairs are random.
    """

    def __init__(self, *, beta: float) -> None:
        self.beta = _real("PPB beta", beta, low=0.0)

    def loss(self, logits, targets, batch, epoch) -> torch.Tensor:
        return ppb_loss(logits, targets, beta=self.beta)


# --- RelaxLoss ----------------------------------------------------------------------------------


def relaxloss_loss(
    logits: torch.Tensor, targets: torch.Tensor, *, epoch: int, alpha: float, upper: float = 1.0
) -> torch.Tensor:
    """RelaxLoss objective of one batch (Chen et al., 2022, Alg. 1; official code, spec §7).

    ``logits``: (n, C), C ≥ 2; ``targets``: (n,). With ℓ_i the CE of row i and L = mean_i ℓ_i:

    * even ``epoch``: |L − α| (gradient ascent once the loss is below the target α);
    * odd ``epoch``, L > α: L (normal descent);
    * odd ``epoch``, L ≤ α: posterior flattening. Soft target t_i keeps the true-class probability
      p_i = clamp(softmax(logits_i)_y, 0, upper) and spreads 1 − p_i evenly over the other C − 1
      classes; the loss is mean_i[(1 − correct_i) · CE(logits_i, t_i) − ℓ_i], correct_i = 1 when
      argmax = y. So correctly classified rows are pushed *up* in loss (their target posterior
      flattened), misclassified rows towards t_i.

    As in both official codes (RelaxLoss' and WeMem's), t_i is *not* detached: the gradient also
    flows through p_i. The L ≤ α test is on the batch mean and selects without a host sync.
    """
    ce_rows = F.cross_entropy(logits, targets, reduction="none")
    ce = ce_rows.mean()
    if epoch % 2 == 0:
        return (ce - alpha).abs()
    num_classes = logits.shape[1]
    log_probs = F.log_softmax(logits, dim=1)
    p_true = log_probs.exp().gather(1, targets[:, None]).squeeze(1).clamp(0.0, upper)
    p_else = (1.0 - p_true) / (num_classes - 1)
    onehot = F.one_hot(targets, num_classes).to(logits.dtype)
    soft = onehot * p_true[:, None] + (1.0 - onehot) * p_else[:, None]
    ce_soft = -(soft * log_probs).sum(1)
    correct = (logits.argmax(1) == targets).to(logits.dtype)
    flattened = ((1.0 - correct) * ce_soft - ce_rows).mean()
    return torch.where(ce > alpha, ce, flattened)


class RelaxLossHooks(Hooks):
    """RelaxLoss with target loss ``alpha`` (1 in the WeMem README) and ``upper`` (1 = no clamp).

    Epoch parity is the epoch index within the current fit (pruning round), as in the official
    code, which calls it with the round's epoch counter.
    """

    def __init__(self, *, alpha: float, upper: float = 1.0) -> None:
        self.alpha = _real("RelaxLoss alpha", alpha, low=0.0)
        self.upper = _real("RelaxLoss upper", upper, low=0.0, high=1.0)

    def loss(self, logits, targets, batch, epoch) -> torch.Tensor:
        if logits.shape[1] < 2:
            raise ParamsError(f"RelaxLoss: {logits.shape[1]} class(es); needs at least 2")
        return relaxloss_loss(logits, targets, epoch=epoch, alpha=self.alpha, upper=self.upper)


# --- ADV ----------------------------------------------------------------------------------------


@dataclass
class _Adversary:
    model: AttackMLP
    optimizer: torch.optim.Optimizer


# The inference model persists across pruning rounds like the classifier's optimizers (in the
# official code both live on the victim's BaseModel); a round's fresh hooks find it here.
_ADVERSARIES: weakref.WeakKeyDictionary[nn.Module, _Adversary] = weakref.WeakKeyDictionary()


#: ADV's schedules: ``nasr`` = Nasr et al.'s Alg. 1, ``official`` = the paper's code (spec §9.12).
ADV_MODES = ("nasr", "official")


class ADVHooks(Hooks):
    """Adversarial regularisation (Nasr, Shokri & Houmansadr, 2018), as published or as run.

    The inference model h is the attack MLP of spec §6.2 (``2C → 512 → 256 → 128 → 2``, ReLU,
    Dropout 0.2) on [softmax(f(x)) ‖ onehot(y)]; its output P(member) = softmax(h)[:, 1]; Adam
    (lr ``attack_lr`` 1e-3, weight decay 5e-4). An attack step draws a member batch (training
    rows) and a reference batch (``reference``: the dev rows, as the official code, or given pool
    rows), both of the training batch size without replacement, and, with the classifier frozen in
    eval mode, minimises the cross-entropy of h on the concatenated batch, members labelled 1 and
    reference rows 0 (−½ Nasr's gain for equal batch sizes). A classifier step minimises

        CE(f(x), y) + θ · mean_i log h(f(x_i), y_i)    on its own training batch,

    identical to the official ``CE − θ·CE_attack(member label)``.

    ``mode``:

    * ``nasr`` (default): before every ``attack_every``-th classifier step (default: every step,
      Nasr's Alg. 1) ``k_attack`` attack steps (7, the official count), with the attack loss
      unscaled; an epoch is Base's pass over the training rows, about (1 + 2·k_attack) forward
      passes per batch. Deviates from the official code (§9.12).
    * ``official``: spec §7 / §9.12. Each "epoch" takes ``k_attack`` attack steps whose loss is
      multiplied by θ, then exactly one classifier step on one batch of training rows drawn
      without replacement (:meth:`batch_plan`); the epoch then ends (dev evaluation and early
      stopping as Base). ``attack_every`` must be 1.

    ``counts`` records the steps of this fit: ``{"attack": ..., "classifier": ...}``. The inference
    model and its optimizer persist across the rounds of one pruning run.
    """

    def __init__(
        self,
        *,
        theta: float,
        k_attack: int = 7,
        reference: str | ArrayLike = "dev",
        attack_every: int = 1,
        attack_lr: float = 1e-3,
        attack_weight_decay: float = 5e-4,
        mode: str = "nasr",
    ) -> None:
        self.theta = _real("ADV theta", theta, low=0.0)
        self.k_attack = _count("ADV k_attack", k_attack)
        self.attack_every = _count("ADV attack_every", attack_every)
        self.attack_lr = _real("ADV attack_lr", attack_lr, low=1e-12)
        self.attack_weight_decay = _real("ADV attack_weight_decay", attack_weight_decay, low=0.0)
        if isinstance(reference, str) and reference != "dev":
            raise ParamsError(f"ADV reference = {reference!r}: 'dev' or an array of pool rows")
        if mode not in ADV_MODES:
            raise ParamsError(f"ADV mode = {mode!r}: allowed values are {', '.join(ADV_MODES)}")
        if mode == "official" and self.attack_every != 1:
            raise ParamsError(
                f"ADV attack_every = {attack_every!r} with mode = 'official': allowed value is 1 "
                "(the official code takes k_attack attack steps before its one classifier step)"
            )
        self.mode = mode
        self.reference = reference
        self.counts = {"attack": 0, "classifier": 0}
        self._adversary: _Adversary | None = None
        self._fresh = False
        self._batch_size = 0

    def bind(self, model, x, y, train_rows, dev_rows) -> None:
        # The inference model's small weights and Adam moments decay into the denormal range, where
        # Intel CPUs compute about 4x slower; flush them to zero for this fit (CPU only: no effect
        # on CUDA). Deterministic, but not bit-equal to an unflushed run.
        torch.set_flush_denormal(True)
        self._model, self._x, self._y, self._train_rows = model, x, y, train_rows
        if isinstance(self.reference, str):
            self._ref_rows = dev_rows
        else:
            self._ref_rows = torch.as_tensor(self.reference, dtype=torch.long, device=x.device)
        if len(self._ref_rows) == 0 or len(train_rows) == 0:
            raise ParamsError("ADV: needs non-empty training and reference (dev) rows")
        self._adversary = _ADVERSARIES.get(model)

    def make_optimizers(
        self, model: nn.Module, config: TrainConfig
    ) -> dict[str, torch.optim.Optimizer]:
        self._fresh = True  # round 0 of a run: a new inference model (built at the first batch)
        return super().make_optimizers(model, config)

    def batch_plan(
        self, epoch: int, rows: torch.Tensor, *, batch_size: int, generator: torch.Generator
    ) -> Iterator[Batch]:
        """Base's shuffled batches (``nasr``), or only the first of them (``official``: one
        classifier step on one batch of ``rows`` drawn without replacement per epoch)."""
        self._batch_size = batch_size
        plan = super().batch_plan(epoch, rows, batch_size=batch_size, generator=generator)
        if self.mode == "official":
            return itertools.islice(plan, 1)
        return plan

    def _ensure_adversary(self, num_classes: int) -> _Adversary:
        if self._adversary is None or self._fresh:
            h = AttackMLP(2 * num_classes).to(self._x.device)
            opt = fastpath.adam(
                h.parameters(), lr=self.attack_lr, weight_decay=self.attack_weight_decay
            )
            self._adversary = _ADVERSARIES[self._model] = _Adversary(h, opt)
            self._fresh = False
        return self._adversary

    def _features(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        probs = F.softmax(logits.float(), dim=1)
        return torch.cat([probs, F.one_hot(labels, probs.shape[1]).float()], dim=1)

    @staticmethod
    def _sample(rows: torch.Tensor, size: int) -> torch.Tensor:
        return rows[torch.randperm(len(rows), device=rows.device)[:size]]

    def _attack_step(self, adversary: _Adversary, size: int) -> None:
        model, x, y = self._model, self._x, self._y
        member, ref = self._sample(self._train_rows, size), self._sample(self._ref_rows, size)
        was_training = model.training
        model.eval()
        with torch.no_grad(), training_autocast(x.device):
            feats = torch.cat(
                [self._features(model(x[member]), y[member]), self._features(model(x[ref]), y[ref])]
            )
        model.train(was_training)
        labels = torch.cat(
            [torch.ones(len(member), dtype=torch.long), torch.zeros(len(ref), dtype=torch.long)]
        ).to(x.device)
        adversary.model.train()
        adversary.optimizer.zero_grad(set_to_none=True)
        scale = self.theta if self.mode == "official" else 1.0  # the official code scales by θ
        (scale * F.cross_entropy(adversary.model(feats), labels)).backward()
        adversary.optimizer.step()
        self.counts["attack"] += 1

    def loss(self, logits, targets, batch, epoch) -> torch.Tensor:
        adversary = self._ensure_adversary(logits.shape[1])
        if self.counts["classifier"] % self.attack_every == 0:
            for _ in range(self.k_attack):
                self._attack_step(adversary, self._batch_size or len(batch.rows))
        h = adversary.model
        h.eval()
        h.requires_grad_(False)  # the privacy term trains the classifier only
        log_member = F.log_softmax(h(self._features(logits, targets)), dim=1)[:, 1]
        h.requires_grad_(True)
        return F.cross_entropy(logits, targets) + self.theta * log_member.mean()

    def after_step(self, model: nn.Module, batch: Batch, epoch: int) -> None:
        self.counts["classifier"] += 1

    def unbind(self, model: nn.Module) -> None:
        torch.set_flush_denormal(False)  # PyTorch's default, restored for the next fit

    def carry_state(self, model: nn.Module) -> dict | None:
        adversary = _ADVERSARIES.get(model)
        if adversary is None:
            return None
        return {
            "in_features": adversary.model.net[0].in_features,
            "model": {k: v.detach().cpu().clone() for k, v in adversary.model.state_dict().items()},
            "optimizer": adversary.optimizer.state_dict(),
        }

    def restore_state(self, model: nn.Module, state: dict) -> None:
        device = next(model.parameters()).device
        h = AttackMLP(state["in_features"]).to(device)
        h.load_state_dict(state["model"])
        opt = fastpath.adam(
            h.parameters(), lr=self.attack_lr, weight_decay=self.attack_weight_decay
        )
        opt.load_state_dict(state["optimizer"])
        _ADVERSARIES[model] = _Adversary(h, opt)
