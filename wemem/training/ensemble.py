"""K models on K subsets of one pool, trained together: the ensemble behind mem-scores.

The Feldman–Zhang memorization estimator (Feldman & Zhang, 2020; spec §3.4) trains model k on the
rows where ``included[k]`` is True and needs every model's prediction on every pool row. Trained one
after another, K small models leave a GPU idle. :func:`train_ensemble` stacks the members'
parameters into (K, ...) tensors (``torch.func.stack_module_state``) and runs
``vmap(grad(loss))`` over the members, each on its own (B, ...) batch gathered by index from the one
on-device ``x``: every member gets the gradient of its own loss (the same numbers as the gradient of
the summed loss, without the transposed weight-gradient copies that one costs).
:func:`train_sequential` does the same training one member at a time with
:func:`wemem.training.loop.fit`; it is the reference the tests compare against.

Semantics shared by both: fixed epochs (no early stopping), Adam with coupled weight decay,
cross-entropy mean over the batch; each epoch member k shuffles its own rows by a permutation of
(seed, k, epoch) alone (:func:`epoch_permutation`) and cuts it into batches, the last one partial.

Unequal subset sizes (Bernoulli subsets, k-fold folds): together mode pads every member's epoch to
the step count of the largest subset. Padding weighs zero in the loss and in BatchNorm statistics,
and a member whose batch is all padding sits the step out: parameters, Adam moments and Adam step
count stay put, as if the step did not exist. ``torch.optim.Adam`` has one step count, so the
optimizer is :class:`~wemem.training.stacked_adam.StackedAdam`: while every member steps (every
step, for equal-size subsets) it is torch.optim.Adam over the stacked tensors, i.e. K independent
Adams (Adam is elementwise).

Dropout: ``vmap(randomness="different")``; each member draws its own masks (other masks than the
sequential run, so with dropout the two runs agree in distribution, not in weights).

BatchNorm: vmap cannot do train-mode BatchNorm's in-place running-statistic updates. Together mode
trains with every BatchNorm replaced by a batch-statistics normalization (what train-mode BatchNorm
computes anyway, so training is unchanged). After training *both* implementations recompute each
member's running statistics: reset, then one no-grad pass with batch statistics and
``momentum=None`` (a cumulative average over batches, like ``torch.optim.swa_utils.update_bn``)
over the member's own rows in the batches of epoch index ``epochs``, dropout off. Eval mode then
uses statistics of the final weights rather than an average over the last training steps.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state
from torch.nn.modules.batchnorm import _BatchNorm
from tqdm.auto import tqdm

from wemem.errors import ParamsError
from wemem.training.device import to_device, training_autocast
from wemem.training.loop import Batch, Hooks, TrainConfig, fit
from wemem.training.stacked_adam import StackedAdam


@dataclass(frozen=True)
class EnsembleConfig:
    """Hyper-parameters shared by all members (spec §10 optimizer settings, fixed epochs)."""

    epochs: int = 30
    lr: float = 1e-3
    weight_decay: float = 5e-4
    batch_size: int = 128
    seed: int = 0

    def __post_init__(self) -> None:
        for name, low in (("epochs", 0), ("batch_size", 1), ("seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ParamsError(f"{name}: got {value!r}; allowed values are integers >= {low}")
        if not self.lr > 0:
            raise ParamsError(f"lr: got {self.lr!r}; allowed values are numbers > 0")
        if not (wd := self.weight_decay) >= 0:
            raise ParamsError(f"weight_decay: got {wd!r}; allowed values are numbers >= 0")


def epoch_permutation(seed: int, member: int, epoch: int, n: int) -> torch.Tensor:
    """Member ``member``'s shuffle of its ``n`` rows in ``epoch``: (n,) int64 on the CPU."""
    state = np.random.SeedSequence((seed, member, epoch)).generate_state(1, np.uint64)[0]
    return torch.randperm(n, generator=torch.Generator().manual_seed(int(state)))


def _member_seed(seed: int, member: int) -> int:
    """The seed of member ``member``'s global RNG (dropout) in the sequential run."""
    return int(np.random.SeedSequence((seed, member)).generate_state(1, np.uint32)[0])


class _BatchStatNorm(nn.Module):
    """Train-mode BatchNorm without running statistics, usable under vmap.

    ``sample_weight`` ((B,) float, set per call) weighs samples in the batch statistics (0 = padding);
    with ``record`` (needs weights) the batch mean and unbiased variance, as BatchNorm would feed
    them to its running statistics, are kept in ``stats``.
    """

    def __init__(self, bn: _BatchNorm) -> None:
        super().__init__()
        self.weight, self.bias, self.eps = bn.weight, bn.bias, bn.eps
        self.sample_weight: torch.Tensor | None = None
        self.record = False
        self.stats: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf, dims = x.float(), [0, *range(2, x.dim())]  # float32 statistics, as under autocast
        if self.sample_weight is None:  # no padding: the native kernel (a bf16 input with float32
            # affine parameters breaks its backward under vmap, hence the cast)
            out = F.batch_norm(xf, None, None, self.weight, self.bias, True, 0.0, self.eps)
            return out.to(x.dtype)
        wv = self.sample_weight.view((-1,) + (1,) * (x.dim() - 1))
        n = wv.sum() * xf[0, 0].numel()
        mean = (xf * wv).sum(dims, keepdim=True) / n
        var = ((xf - mean).square() * wv).sum(dims, keepdim=True) / n
        if self.record:
            self.stats = (mean.flatten(), var.flatten() * n / (n - 1).clamp(min=1))
        out = (xf - mean) * torch.rsqrt(var + self.eps)
        channel = (1, -1) + (1,) * (x.dim() - 2)
        if self.weight is not None:
            out = out * self.weight.view(channel)
        if self.bias is not None:
            out = out + self.bias.view(channel)
        return out.to(x.dtype)


def _with_batch_stat_norm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm in ``module`` (in place) by :class:`_BatchStatNorm`."""
    for name, child in module.named_children():
        if isinstance(child, _BatchNorm):
            setattr(module, name, _BatchStatNorm(child))
        else:
            _with_batch_stat_norm(child)
    return module


class Ensemble:
    """K trained members of one architecture, stored as stacked (K, ...) tensors on one device."""

    def __init__(
        self, base: nn.Module, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor]
    ) -> None:
        self._base = copy.deepcopy(base).to("meta").eval()
        self.params = {n: p.detach() for n, p in params.items()}
        self.buffers = {n: b.detach() for n, b in buffers.items()}
        first = next(iter(self.params.values()))
        self.k, self.device = first.shape[0], first.device

    @classmethod
    def from_models(cls, models: list[nn.Module]) -> Ensemble:
        params, buffers = stack_module_state(models)
        return cls(models[0], params, buffers)

    @torch.no_grad()
    def predict_proba(self, x: torch.Tensor, rows=None, *, batch_size: int = 2048) -> torch.Tensor:
        """Softmax posteriors of every member on ``x[rows]`` (all rows when ``None``), eval mode.

        Returns (K, len(rows), C) float32 on ``x``'s device; ``[k, j]`` is member k on row j.
        """
        rows = torch.arange(len(x)) if rows is None else torch.as_tensor(rows, dtype=torch.long)
        rows = to_device(rows, x.device)

        def member(p: dict, b: dict, xb: torch.Tensor) -> torch.Tensor:
            return functional_call(self._base, (p, b), (xb,))

        run = torch.vmap(member, in_dims=(0, 0, None))
        out = []
        for chunk in rows.split(batch_size):
            with training_autocast(x.device):
                logits = run(self.params, self.buffers, x[chunk])
            out.append(torch.softmax(logits.float(), dim=-1))
        if not out:
            return torch.empty(self.k, 0, 0, device=x.device)
        return torch.cat(out, dim=1)

    def model(self, i: int) -> nn.Module:
        """Member ``i`` as a plain module (eval mode) holding copies of its trained tensors."""
        if not 0 <= i < self.k:
            raise ParamsError(f"i: got {i!r}; allowed values are 0..{self.k - 1}")
        model = copy.deepcopy(self._base).to_empty(device=self.device)
        own = dict(model.named_parameters()) | dict(model.named_buffers())
        with torch.no_grad():
            for name, value in (self.params | self.buffers).items():
                own[name].copy_(value[i])
        return model.eval()

    def state_dicts(self) -> list[dict]:
        """Every member's ``state_dict`` (tensors on the ensemble's device)."""
        return [self.model(i).state_dict() for i in range(self.k)]


def _subsets(x: torch.Tensor, y: torch.Tensor, included) -> list[torch.Tensor]:
    """Validate ``included`` ((K, n) bool) and return each member's sorted rows (CPU int64)."""
    inc = included.detach().cpu().numpy() if torch.is_tensor(included) else np.asarray(included)
    if inc.dtype != np.bool_ or inc.ndim != 2 or inc.shape[0] < 1 or inc.shape[1] != len(x):
        raise ParamsError(
            f"included: got {inc.dtype} array of shape {inc.shape}; allowed is a (K, n) bool array "
            f"with K >= 1 and n = len(x) = {len(x)}"
        )
    if len(y) != len(x):
        raise ParamsError(f"y: got {len(y)} labels; allowed is one per row of x ({len(x)})")
    empty = np.flatnonzero(~inc.any(axis=1))
    if empty.size:
        raise ParamsError(f"included: members {empty.tolist()} have no rows; each needs >= 1")
    return [torch.from_numpy(np.flatnonzero(row)) for row in inc]


def _gather(t: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``t[rows]`` for (K, B) ``rows``: (K, B, ...); index_select is the faster gather on CPU."""
    return t.index_select(0, rows.flatten()).view(*rows.shape, *t.shape[1:])


def _padded_epoch(
    subsets: list[torch.Tensor], config: EnsembleConfig, *, epoch: int, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor, np.ndarray, bool]]:
    """Steps of one epoch of all members: (rows (K, B), real (K, B) bool, active (K,), full).

    Member k's shuffled rows fill the first ``len(subsets[k])`` positions; the rest is padding
    (row 0, ``real`` False). ``active[k]``: member k has a real row in the step; ``full``: no
    member has padding in the step.
    """
    seed, batch_size = config.seed, config.batch_size
    sizes = np.array([len(s) for s in subsets])
    steps = -(-int(sizes.max()) // batch_size)
    order = torch.zeros(len(subsets), steps * batch_size, dtype=torch.long)
    for k, rows in enumerate(subsets):
        order[k, : len(rows)] = rows[epoch_permutation(seed, k, epoch, len(rows))]
    real = torch.arange(steps * batch_size) < torch.from_numpy(sizes)[:, None]
    order, real = to_device(order, device), to_device(real, device)
    for s in range(steps):
        lo, hi = s * batch_size, (s + 1) * batch_size
        yield order[:, lo:hi], real[:, lo:hi], sizes > lo, bool(sizes.min() >= hi)


def _member_forward(base: nn.Module, norms: list[_BatchStatNorm], *, record: bool):
    """One member's ``f(params, buffers, xb, bn_weight | None) -> (logits, BatchNorm stats)``."""

    def forward(p: dict, b: dict, xb: torch.Tensor, bn_weight: torch.Tensor | None):
        for m in norms:
            m.sample_weight, m.record = bn_weight, record
        try:
            out = functional_call(base, (p, b), (xb,))
            stats = [m.stats for m in norms] if record else []
        finally:
            for m in norms:
                m.sample_weight, m.record, m.stats = None, False, None
        return out, stats

    return forward


def _gradient_step(
    base: nn.Module, norms: list[_BatchStatNorm], *, padded: bool, device: torch.device
):
    """``f(params, buffers, xb (K, B, ...), yb (K, B), w (K, B), bn_weight) -> grads (K, ...)``."""
    forward = _member_forward(base, norms, record=False)

    def loss(p, b, xb, yb, w, bn_weight):
        with training_autocast(device):  # the forward only; grad differentiates outside, as fit
            logits, _ = forward(p, b, xb, bn_weight)
        ce = F.cross_entropy(logits.float(), yb, reduction="none")
        return (ce * w).sum() / w.sum().clamp(min=1)  # mean over the member's real rows

    in_dims = (0, 0, 0, 0, 0, 0 if padded else None)
    return torch.vmap(torch.func.grad(loss), in_dims=in_dims, randomness="different")


def train_ensemble(
    make_model: Callable[[int], nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    included: np.ndarray | torch.Tensor,
    *,
    config: EnsembleConfig,
    progress: bool = False,
) -> Ensemble:
    """Train member k = ``make_model(k)`` on the rows ``included[k]`` of ``x``, all K at once.

    ``make_model``: one architecture for all k (e.g. seed base + k); ``x``: (n, ...) float pool on
    the training device; ``y``: (n,) int64; ``included``: (K, n) bool; ``config.seed`` fixes
    shuffles and dropout. Semantics: the module docstring.
    """
    device = x.device
    subsets = _subsets(x, y, included)
    models = [make_model(k).to(device) for k in range(len(subsets))]
    params, buffers = stack_module_state(models)
    params = {n: p.detach() for n, p in params.items()}
    base = copy.deepcopy(models[0]).to("meta")
    del models
    train_base = _with_batch_stat_norm(copy.deepcopy(base)).train()
    norms = [m for m in train_base.modules() if isinstance(m, _BatchStatNorm)]
    train_buffers = {n: buffers[n] for n, _ in train_base.named_buffers()}
    opt = StackedAdam(list(params.values()), lr=config.lr, weight_decay=config.weight_decay)
    full_step = _gradient_step(train_base, norms, padded=False, device=device)
    padded_step = _gradient_step(train_base, norms, padded=True, device=device)
    torch.manual_seed(config.seed)
    for epoch in tqdm(range(config.epochs), desc="ensemble", disable=not progress, leave=False):
        for rows, real, active, full in _padded_epoch(subsets, config, epoch=epoch, device=device):
            xb, yb, w = _gather(x, rows), _gather(y, rows), real.float()
            if full:
                grads = full_step(params, train_buffers, xb, yb, w, None)
            else:
                inactive = ~torch.as_tensor(active, device=device)[:, None]
                bn_weight = (real | inactive).float()  # all-padding members: any weights
                grads = padded_step(params, train_buffers, xb, yb, w, bn_weight)
            opt.step(list(grads.values()), active)
    ensemble = Ensemble(base, params, buffers)
    _recalibrate(ensemble, x, subsets, config)
    return ensemble


@torch.no_grad()
def _recalibrate(ens: Ensemble, x: torch.Tensor, subsets: list, config: EnsembleConfig) -> None:
    """Recompute every member's BatchNorm running statistics in place (module docstring)."""
    base = _with_batch_stat_norm(copy.deepcopy(ens._base)).eval()  # eval: dropout off
    named = [(n, m) for n, m in base.named_modules() if isinstance(m, _BatchStatNorm)]
    if not any(f"{n}.running_mean" in ens.buffers for n, _ in named):
        return
    norms = [m for _, m in named]
    run = torch.vmap(_member_forward(base, norms, record=True), randomness="different")
    buffers = {n: ens.buffers[n] for n, _ in base.named_buffers()}
    dev, sums = x.device, [0.0] * len(norms)
    count = torch.zeros(ens.k, device=dev)
    for rows, real, active, _ in _padded_epoch(subsets, config, epoch=config.epochs, device=dev):
        on = torch.as_tensor(active, device=dev)
        with training_autocast(dev):
            _, stats = run(ens.params, buffers, _gather(x, rows), (real | ~on[:, None]).float())
        count += on
        sums = [total + torch.stack(s) * on[:, None] for total, s in zip(sums, stats, strict=True)]
    for (name, _), (mean, var) in zip(named, sums, strict=True):
        if f"{name}.running_mean" in ens.buffers:  # else track_running_stats=False: nothing kept
            ens.buffers[f"{name}.running_mean"].copy_(mean / count[:, None])
            ens.buffers[f"{name}.running_var"].copy_(var / count[:, None])
            ens.buffers[f"{name}.num_batches_tracked"].copy_(count)


class _MemberOrder(Hooks):
    """Base training whose batches follow :func:`epoch_permutation` of one member."""

    def __init__(self, seed: int, member: int) -> None:
        self.seed, self.member = seed, member

    def batch_plan(
        self, epoch: int, rows: torch.Tensor, *, batch_size: int, generator: torch.Generator
    ) -> Iterator[Batch]:
        perm = to_device(epoch_permutation(self.seed, self.member, epoch, len(rows)), rows.device)
        for chunk in rows[perm].split(batch_size):
            yield Batch(chunk)


def train_sequential(
    make_model: Callable[[int], nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    included: np.ndarray | torch.Tensor,
    *,
    config: EnsembleConfig,
    progress: bool = False,
) -> Ensemble:
    """The training of :func:`train_ensemble`, one member after another with :func:`fit`."""
    device = x.device
    subsets = _subsets(x, y, included)
    no_dev = torch.empty(0, dtype=torch.long, device=device)
    models = []
    for k in tqdm(range(len(subsets)), desc="ensemble", disable=not progress, leave=False):
        model = make_model(k).to(device)
        rows = to_device(subsets[k], device)
        train_config = TrainConfig(
            lr=config.lr,
            weight_decay=config.weight_decay,
            batch_size=config.batch_size,
            max_epochs=config.epochs,
            patience=config.epochs,  # no dev rows: never improves, never stops early
            seed=_member_seed(config.seed, k),
        )
        fit(model, x, y, rows, no_dev, config=train_config, hooks=_MemberOrder(config.seed, k))
        models.append(model)
    ensemble = Ensemble.from_models(models)
    _recalibrate(ensemble, x, subsets, config)
    return ensemble
