"""DP-SGD fine-tuning (Abadi et al., 2016) with Opacus 1.6, as hooks of the one training loop.

Spec §7, §9.11. The official code (bundled pyvacy) clipped per *micro-batch* of 64, so its formal
guarantee did not hold, ran ⌊N/128⌋×100 minibatches per "epoch" (``passes_per_epoch: 100`` here)
and never computed ε. Here, a documented deviation, textbook DP-SGD: every step samples each
training row independently with q = batch_size / N (Poisson; ``passes_per_epoch`` (default 1)
× ⌊N / batch_size⌋ steps an epoch; an empty draw is a noise-only step), clips every example's
gradient to norm C, adds N(0, σ²C²) to the sum, divides by the expected batch size and takes a
plain SGD step (spec: lr 1e-3, no momentum, coupled weight decay 5e-4; DP-SGD
barely moves at lr 1e-3, so ``lr`` is configurable). Opacus' RDP accountant is stepped every step;
ε is reported at δ = min(1e-5, 0.1/N) (:func:`default_delta`) unless ``delta`` is given.

Pruned layers (``torch.nn.utils.prune``: parameter ``weight_orig``, buffer ``weight_mask``) are
refused by Opacus' strict check, and its samplers key the gradient on the computed ``weight``. The
Opacus hooks of :mod:`.dp_clipping` carry instance-level samplers that key a pruned layer's
per-sample gradient on ``weight_orig`` and mask it (the gradient of the pruned parametrisation
itself), and ghost norms that include the mask. The reparametrisation is never touched, so sparsity
is exact by construction and pruned coordinates do not count towards the clipping norm. The DP
optimizer, which ``prune_and_finetune`` hands from round 0 to later rounds, carries the
accountant: ε covers all rounds.

BatchNorm mixes the samples of a batch, so it has no per-example gradients. In a CNN experiment
the DP-SGD rows train GroupNorm twins of the run's models (``dp_norm``,
:meth:`wemem.experiment.replicate.Experiment.for_defense`): victim and shadows, dense training
included, built with GroupNorm (:func:`wemem.models.to_group_norm`), so the dense model, its pruning
and the DP fine-tuning share one architecture; every other row keeps the run's BatchNorm models
(``norm: group`` builds the whole run with GroupNorm instead). A deviation: the paper does not say
how it ran DP on its BatchNorm models (its pyvacy code kept BatchNorm, in eval mode after epoch 0,
§9.11d). :func:`check_settings` refuses DP on a BatchNorm CNN before anything is trained.
"""

from __future__ import annotations

import logging
import math
import warnings
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from wemem.errors import ParamsError
from wemem.training.loop import Batch, Hooks, TrainConfig

if TYPE_CHECKING:  # Opacus is imported where DP-SGD runs (its import costs a second per process)
    from opacus.accountants import RDPAccountant
    from opacus.grad_sample import GradSampleHooks
    from opacus.optimizers import DPOptimizer

log = logging.getLogger(__name__)

#: ``ghost``: Opacus' fast-gradient-clipping hooks with the norms below for Linear and Conv2d (closed
#: forms; per-sample gradients only for a pruned conv on maps > 1×1, one layer at a time), then a
#: second backward pass of the clipped loss; ``hooks``:
#: Opacus' per-sample gradients of every layer. ``auto`` = ``ghost``, faster on every model measured
#: (benchmarks/dp_overhead.py: fc ≈2×, CNN ≈2.5× a Base epoch; ``hooks`` ≈40× and ≈16×). Norms are
#: computed in float32 (under CUDA bf16 autocast the per-sample gradients themselves are bf16).
MODES = ("auto", "ghost", "hooks")

_BACKWARD_HOOK_WARNING = "Full backward hook is firing when gradients are computed"

#: The default δ of the reported ε, as a rule of the training-set size N (:func:`default_delta`).
DELTA_RULE = "min(1e-5, 0.1/N)"


def default_delta(n_train: int) -> float:
    """δ when none is given: min(1e-5, 0.1/N) for N = ``n_train`` training rows (issue 12 item 9).

    So δ = 1e-5 up to N = 10⁴ and 0.1/N above (δ must stay well below 1/N: a mechanism that
    publishes one random row outright is (0, 1/N)-DP). The official code computed no ε (§9.11e).
    """
    if isinstance(n_train, bool) or not isinstance(n_train, int) or n_train < 1:
        raise ParamsError(f"DP-SGD n_train = {n_train!r}: must be an integer >= 1")
    return min(1e-5, 0.1 / n_train)


def dp_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """ε of ``steps`` Poisson-subsampled Gaussian steps (σ = ``noise_multiplier``, q =
    ``sample_rate``) at ``delta``, from Opacus' RDP accountant (Mironov et al., 2019). ``inf`` when
    σ = 0; 0 when no step was taken."""
    if steps <= 0:
        return 0.0
    if noise_multiplier <= 0:
        return math.inf
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = [(float(noise_multiplier), float(sample_rate), int(steps))]
    return float(accountant.get_epsilon(delta=delta))


def check_settings(*, arch: str, norm: str) -> None:
    """Raise :class:`ParamsError` when DP-SGD cannot run on the experiment's models: a CNN built
    with BatchNorm (``norm: batch``). The FC model has no normalization layer."""
    if arch != "fc" and norm != "group":
        raise ParamsError(
            f"defense 'dp' on arch = {arch!r} with norm = {norm!r}: BatchNorm has no per-example "
            "gradients; DP rows need GroupNorm models (dp_norm: group, the GroupNorm twin of a "
            "BatchNorm run, or norm: group for the whole run; allowed values of norm: batch, group)"
        )


def make_private_compatible(model: nn.Module) -> nn.Module:
    """``model`` with every BatchNorm replaced by GroupNorm (Opacus ``ModuleValidator.fix``).

    For a standalone model; experiments train GroupNorm twins instead (module docstring). BatchNorm
    mixes samples within a batch, so per-example gradients do not exist for it. The replacement is
    ``GroupNorm(gcd(32, C), C)`` with weight 1 and bias 0 (running statistics are dropped), the
    layer :func:`wemem.models.to_group_norm` builds. Returns a *new* model (the input is untouched)
    and logs a warning naming the layers; a model without BatchNorm is returned as is. Convert
    *before* training the dense model, since converting a trained BN model changes its function.
    """
    names = [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not names:
        return model
    log.warning("DP-SGD: %d BatchNorm layers (%s, ...) become GroupNorm", len(names), names[0])
    from opacus.validators import ModuleValidator

    return ModuleValidator.fix(model)


def _check_compatible(model: nn.Module) -> None:
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            raise ParamsError(
                f"DP-SGD model: layer {name!r} ({type(m).__name__}) has no per-example gradients; "
                "an experiment's DP rows train GroupNorm twins from dense training on (dp_norm) "
                "(a standalone model: make_private_compatible before training it)"
            )
        trainable = any(p.requires_grad for p in m.parameters(recurse=False))
        buffers = [b for b, _ in m.named_buffers(recurse=False) if not b.endswith("_mask")]
        if trainable and buffers:
            raise ParamsError(
                f"DP-SGD model: layer {name!r} ({type(m).__name__}) is trainable and carries "
                f"buffers {buffers}; Opacus computes no per-example gradients for it"
            )


# --- privacy state shared by the rounds of one fine-tuning run ----------------------------------


@dataclass
class _Ledger:  # what the DP optimizer spent: the accountant and the settings of every step
    accountant: RDPAccountant
    noise_multiplier: float
    sample_rate: float
    delta: float
    mode: str
    steps: int = 0


# The DP optimizer persists across pruning rounds, the hooks do not: a round's hooks find the ledger
# of the optimizer that round 0 made for the same model here.
_LEDGERS: weakref.WeakKeyDictionary[nn.Module, _Ledger] = weakref.WeakKeyDictionary()
# Opacus hooks attached to a model; a fit that raised never reached unbind() to remove them.
_ATTACHED: weakref.WeakKeyDictionary[nn.Module, GradSampleHooks] = weakref.WeakKeyDictionary()


class DPSGDHooks(Hooks):
    """DP-SGD fine-tuning: Poisson batches, per-example clipping, Gaussian noise, RDP accounting.

    Args:
        noise_multiplier: σ (spec: 0.1 in the scripts, grid {0.01, 0.1, 1} — §9.19); exactly one of
            it and ``target_epsilon``.
        target_epsilon: choose σ with Opacus' ``get_noise_multiplier`` so that ε ≤ target at δ
            after ``epochs_planned`` epochs of :meth:`steps_per_epoch` steps.
        max_grad_norm: clipping norm C (spec 1.0).
        delta: δ of the reported ε (and of ``target_epsilon``); ``None`` = min(1e-5, 0.1/N), N =
            training rows (:func:`default_delta`).
        epochs_planned: epochs the target-ε budget covers, counted over every round that shares
            the DP optimizer (e.g. ``rounds × max_epochs`` for a whole pruning run). Running more
            steps than planned exceeds the target (a warning is logged).
        lr: SGD learning rate; ``None`` = ``config.lr`` (1e-3, spec). Weight decay is
            ``config.weight_decay``.
        mode: ``auto`` | ``ghost`` | ``hooks`` (see :data:`MODES`).
        passes_per_epoch: p > 0; an epoch runs p·max(1, ⌊N / batch_size⌋) Poisson steps (rounded,
            at least 1), i.e. p expected passes over the training rows. 1 (default) = one pass;
            the official code (``prune_dp_iter.py``) ran ⌊N/128⌋·100 minibatches per "epoch"
            (spec §7, §9.11b), i.e. ``passes_per_epoch: 100``. The accountant counts every step,
            and ``target_epsilon`` calibrates σ over ``epochs_planned`` such epochs.

    Use ``optimizers=None`` in round 0 (:meth:`make_optimizers` builds the DP optimizer); a fit
    stepped by any other optimizer raises at its first step. :meth:`epsilon` is the ε spent so far
    by that optimizer (all rounds).
    """

    resumable = False  # the accountant and Opacus' wrapped optimizer span all rounds

    def __init__(
        self,
        *,
        noise_multiplier: float | None = None,
        target_epsilon: float | None = None,
        max_grad_norm: float = 1.0,
        delta: float | None = None,
        epochs_planned: int = 21,
        lr: float | None = None,
        mode: str = "auto",
        passes_per_epoch: float = 1.0,
    ) -> None:
        if (noise_multiplier is None) == (target_epsilon is None):
            raise ParamsError(
                f"DP-SGD: noise_multiplier = {noise_multiplier!r}, target_epsilon = "
                f"{target_epsilon!r}; give exactly one of them"
            )
        checks = (
            ("noise_multiplier", noise_multiplier, "must be >= 0", lambda v: v >= 0),
            ("target_epsilon", target_epsilon, "must be > 0", lambda v: v > 0),
            ("max_grad_norm", max_grad_norm, "must be > 0", lambda v: v > 0),
            ("delta", delta, "allowed range is (0, 1)", lambda v: 0 < v < 1),
            ("lr", lr, "must be > 0", lambda v: v > 0),
            ("epochs_planned", epochs_planned, "must be an integer >= 1",
             lambda v: type(v) is int and v >= 1),
            ("mode", mode, f"allowed values are {', '.join(MODES)}", lambda v: v in MODES),
            ("passes_per_epoch", passes_per_epoch, "must be a number > 0",
             lambda v: type(v) is not bool and isinstance(v, int | float) and 0 < v < math.inf),
        )  # fmt: skip
        for field, value, allowed, ok in checks:
            if value is not None and not ok(value):
                raise ParamsError(f"DP-SGD {field} = {value!r}: {allowed}")
        self.requested_noise_multiplier = noise_multiplier
        self.target_epsilon = target_epsilon
        self.max_grad_norm = float(max_grad_norm)
        self.requested_delta = delta
        self.epochs_planned = epochs_planned
        self.lr = lr
        self.mode = "ghost" if mode == "auto" else mode
        self.passes_per_epoch = float(passes_per_epoch)
        self._ledger: _Ledger | None = None
        self._opacus: GradSampleHooks | None = None
        self._params: list[nn.Parameter] = []
        self._n = 0
        self._per_sample: torch.Tensor | None = None
        self._steps_seen = 0

    @property
    def noise_multiplier(self) -> float | None:  # σ of the DP optimizer, once it exists
        return self._ledger.noise_multiplier if self._ledger else self.requested_noise_multiplier

    @property
    def delta(self) -> float | None:
        return self._ledger.delta if self._ledger else self.requested_delta

    @property
    def steps(self) -> int:  # noisy steps the DP optimizer has taken, all rounds
        return self._ledger.steps if self._ledger else 0

    def epsilon(self, delta: float | None = None) -> float:
        """ε spent so far at ``delta`` (default: this run's δ), from the RDP accountant."""
        if self._ledger is None or self._ledger.steps == 0:
            return 0.0
        if self._ledger.noise_multiplier <= 0:
            return math.inf
        return float(self._ledger.accountant.get_epsilon(delta=delta or self._ledger.delta))

    def bind(self, model, x, y, train_rows, dev_rows) -> None:
        _check_compatible(model)
        self._n = len(train_rows)
        if self._n == 0:
            raise ParamsError("DP-SGD: no training rows")
        self._params = [p for p in model.parameters() if p.requires_grad]
        self._ledger = _LEDGERS.get(model)
        if (stale := _ATTACHED.pop(model, None)) is not None:
            stale.cleanup()
        ghost = self.mode == "ghost"
        from wemem.defenses.dp_clipping import GhostHooks, PerSampleHooks

        self._opacus = GhostHooks(model, self.max_grad_norm) if ghost else PerSampleHooks(model)
        _ATTACHED[model] = self._opacus
        self._steps_seen = self._ledger.steps if self._ledger else 0

    def make_optimizers(
        self, model: nn.Module, config: TrainConfig
    ) -> dict[str, torch.optim.Optimizer]:
        from opacus.accountants import RDPAccountant
        from opacus.accountants.utils import get_noise_multiplier
        from opacus.optimizers import DPOptimizer, DPOptimizerFastGradientClipping

        q = min(1.0, config.batch_size / self._n)
        delta = self.requested_delta
        if delta is None:
            delta = default_delta(self._n)
        sigma = self.requested_noise_multiplier
        if sigma is None:
            steps = self.epochs_planned * self.steps_per_epoch(config.batch_size)
            sigma = get_noise_multiplier(
                target_epsilon=self.target_epsilon, target_delta=delta, sample_rate=q, steps=steps
            )
            log.info(
                "DP-SGD: sigma %.4f for epsilon %g over %d steps", sigma, self.target_epsilon, steps
            )
        ledger = _Ledger(RDPAccountant(), float(sigma), q, delta, self.mode)
        lr = self.lr if self.lr is not None else config.lr
        sgd = torch.optim.SGD(self._params, lr=lr, weight_decay=config.weight_decay)  # no momentum
        wrapper = DPOptimizerFastGradientClipping if self.mode == "ghost" else DPOptimizer
        opt = wrapper(
            sgd,
            noise_multiplier=ledger.noise_multiplier,
            max_grad_norm=self.max_grad_norm,
            expected_batch_size=config.batch_size,  # "mean": divide the noisy sum by it
        )

        def account(_: DPOptimizer) -> None:
            ledger.accountant.step(noise_multiplier=ledger.noise_multiplier, sample_rate=q)
            ledger.steps += 1

        opt.attach_step_hook(account)
        _LEDGERS[model] = ledger
        self._ledger, self._steps_seen = ledger, 0
        return {"main": opt}

    def steps_per_epoch(self, batch_size: int) -> int:
        """Poisson steps of one epoch (after :meth:`bind`): round(p·max(1, ⌊N / batch_size⌋)),
        at least 1, p = ``passes_per_epoch``; p = 100 gives the official ⌊N/128⌋·100."""
        return max(1, round(self.passes_per_epoch * max(1, self._n // batch_size)))

    def batch_plan(
        self, epoch: int, rows: torch.Tensor, *, batch_size: int, generator: torch.Generator
    ) -> Iterator[Batch]:
        """:meth:`steps_per_epoch` Poisson draws of ``rows``, each row kept with q = batch_size / N."""
        self._check_ledger(batch_size)
        q = self._ledger.sample_rate
        for _ in range(self.steps_per_epoch(batch_size)):
            keep = torch.rand(len(rows), generator=generator) < q
            chunk = rows[keep.to(rows.device)]
            if len(chunk) == 0:  # no activations to capture; backward() fills zero gradients
                self._opacus.disable_hooks()
            yield Batch(chunk)

    def _check_ledger(self, batch_size: int) -> None:
        ledger, q = self._ledger, min(1.0, batch_size / self._n)
        if ledger is None or ledger.mode != self.mode or not math.isclose(q, ledger.sample_rate):
            raise RuntimeError(
                "DP-SGD: no DP optimizer of these settings for this model (fit round 0 with "
                "optimizers=None; mode, training-set size and batch size must stay the same)"
            )

    def loss(self, logits, targets, batch, epoch) -> torch.Tensor:
        per = F.cross_entropy(logits, targets, reduction="none")
        self._per_sample = per
        return per.mean() if len(per) else logits.sum() * 0.0

    def backward(self, loss: torch.Tensor, batch: Batch, epoch: int) -> None:
        per, self._per_sample = self._per_sample, None
        if len(batch.rows) == 0:  # an empty Poisson draw: the step adds noise only
            for p in self._params:
                if self.mode == "ghost":
                    p.grad = torch.zeros_like(p)
                else:
                    p.grad_sample = p.new_zeros((0, *p.shape))
            self._opacus.enable_hooks()
            return
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_BACKWARD_HOOK_WARNING)
            if self.mode == "hooks":
                loss.backward()
                return
            # Ghost clipping (Li et al., 2022; Bu et al., 2023): pass 1 gives per-sample gradient
            # norms; pass 2 back-propagates Σ_i min(1, C/‖g_i‖)·ℓ_i = the sum of clipped gradients.
            per.sum().backward(retain_graph=True)
            coef = self._opacus.get_clipping_coef().detach()
            for p in self._params:
                p.grad = None
            self._opacus.disable_hooks()
            try:
                (coef * per).sum().backward()
            finally:
                self._opacus.enable_hooks()

    def after_step(self, model: nn.Module, batch: Batch, epoch: int) -> None:
        self._steps_seen += 1
        if self._ledger is None or self._ledger.steps != self._steps_seen:
            raise RuntimeError(
                "DP-SGD: the optimizer that stepped is not the DP optimizer of these hooks (pass "
                "optimizers=None in round 0, and round 0's optimizers afterwards)"
            )

    def unbind(self, model: nn.Module) -> None:
        if self._opacus is not None:
            self._opacus.cleanup()
            self._opacus = None
            _ATTACHED.pop(model, None)
        if self.target_epsilon is not None and self.epsilon() > self.target_epsilon * 1.001:
            log.warning(
                "DP-SGD: epsilon %.3f exceeds the target %.3f (more steps than epochs_planned)",
                self.epsilon(),
                self.target_epsilon,
            )
