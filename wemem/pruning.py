"""Iterative pruning with fine-tuning, on ``torch.nn.utils.prune`` (spec §4.2, §4.3).

The official code used NNI 2.3's ``LotteryTicketPruner`` (``reset_weights=False``), whose API is
gone. This module reproduces its behaviour:

* ``rounds`` = 5 fine-tuning rounds; round 0 keeps an all-ones mask (a dense fine-tune), round
  k ≥ 1 prunes to cumulative sparsity p_k = 1 − (1 − p)^{k/(rounds−1)} (:func:`schedule`);
* masks are layer-wise (every layer reaches p_k on its own), pruned weights stay pruned, biases are
  not masked for unstructured pruning;
* each round fine-tunes for up to 21 epochs with early stopping on dev accuracy, continues from the
  *last-epoch* weights, and the optimizers persist across rounds; the exported model is the best-dev
  checkpoint of the last round, with masks folded in.

Deviation from NNI (documented in the README): NNI keeps weights with |w| > the k-th smallest value,
so ties at the threshold can prune a few more than k; here exactly ⌊numel·p_k⌋ weights are pruned per
layer (ties broken by position), so the achieved sparsity equals the schedule.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

import torch
from torch import nn
from torch.nn.utils import prune

from wemem.errors import ParamsError
from wemem.names import APPROACHES
from wemem.training.loop import FitResult, Hooks, TrainConfig, fit

log = logging.getLogger(__name__)


def schedule(p: float, rounds: int = 5) -> list[float]:
    """Cumulative sparsity per fine-tuning round (spec §4.2).

    Round 0 is dense (sparsity 0), round k ≥ 1 reaches ``1 − (1 − p)**(k / (rounds − 1))``, so the
    last round reaches exactly ``p``. For p = 0.6: [0, 0.205, 0.368, 0.497, 0.6]. ``rounds=1`` is
    one-shot pruning: a single round at ``p``.
    """
    if not 0.0 <= p < 1.0:
        raise ParamsError(f"pruning rate p = {p!r}: allowed range is [0, 1)")
    if rounds < 1:
        raise ParamsError(f"rounds = {rounds!r}: must be at least 1")
    if rounds == 1:
        return [float(p)]
    out = [0.0] + [1.0 - (1.0 - p) ** (k / (rounds - 1)) for k in range(1, rounds)]
    out[-1] = float(p)
    return out


def prunable_modules(model: nn.Module, arch: str, approach: str) -> list[tuple[str, nn.Module]]:
    """The layers an approach prunes (spec §4.2).

    ``l1_unstructured``: for images every Conv2d and Linear (first conv and classifier included); for
    the tabular FC model ``fc1`` and ``fc2`` only (the output layer stays dense, as the official
    ``iter_prunetxt``). Structured approaches: every Conv2d (output filters); Linear stays dense.
    """
    if approach not in APPROACHES:
        raise ParamsError(
            f"pruning_approach = {approach!r}: allowed values are {', '.join(APPROACHES)}"
        )
    if approach == "l1_unstructured":
        if arch == "fc":
            return [(n, m) for n, m in model.named_modules() if n in ("fc1", "fc2")]
        return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    convs = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ParamsError(
            f"pruning_approach = {approach!r} prunes Conv2d filters, and arch {arch!r} has none; "
            "use l1_unstructured"
        )
    return convs


def _current_mask(module: nn.Module) -> torch.Tensor:
    if hasattr(module, "weight_mask"):
        return module.weight_mask
    return torch.ones_like(module.weight)


def effective_weight(module: nn.Module) -> torch.Tensor:
    """``weight_orig ⊙ mask`` for a pruned module, else its weight.

    ``module.weight`` of a pruned module is only recomputed by the forward pre-hook, so after an
    optimizer step or ``load_state_dict`` it is stale until the next forward; never read it.
    """
    if hasattr(module, "weight_orig"):
        return module.weight_orig * module.weight_mask
    return module.weight


def _unstructured_mask(weight: torch.Tensor, old: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Keep all but the ⌊numel·sparsity⌋ smallest |w ⊙ old|; already pruned weights go first."""
    k = int(weight.numel() * sparsity)
    mask = torch.ones(weight.numel(), device=weight.device)
    if k > 0:
        score = (weight.detach() * old).abs().flatten()
        score[old.flatten() == 0] = -1.0
        idx = torch.argsort(score, stable=True)[:k]
        mask[idx] = 0.0
    return mask.view_as(weight) * old


def _filter_mask(
    weight: torch.Tensor, old: torch.Tensor, sparsity: float, norm: int
) -> torch.Tensor:
    """Prune ⌊n_filters·sparsity⌋ output filters with the smallest L1/L2 norm of the masked weights."""
    n = weight.shape[0]
    k = int(n * sparsity)
    keep = torch.ones(n, device=weight.device)
    if k > 0:
        w = (weight.detach() * old).flatten(1)
        score = w.norm(p=norm, dim=1)
        score[old.flatten(1).sum(1) == 0] = -1.0
        keep[torch.argsort(score, stable=True)[:k]] = 0.0
    return keep.view(-1, *([1] * (weight.dim() - 1))).expand_as(weight) * old


def apply_sparsity(modules: list[tuple[str, nn.Module]], sparsity: float, approach: str) -> None:
    """Bring every module to cumulative ``sparsity`` with the approach's masks (in place)."""
    for _, m in modules:
        old = _current_mask(m)
        w = effective_weight(m).detach()
        if approach == "l1_unstructured":
            new = _unstructured_mask(w, old, sparsity)
        else:
            new = _filter_mask(w, old, sparsity, 1 if approach == "l1_structured" else 2)
        if hasattr(m, "weight_mask"):
            m.weight_mask.copy_(new)
            m.weight = effective_weight(m)  # what the pre-hook would compute at the next forward
        else:
            prune.custom_from_mask(m, "weight", new)


def layer_sparsity(model: nn.Module, modules: list[tuple[str, nn.Module]]) -> dict[str, float]:
    """Fraction of exactly-zero weights per layer (works before and after folding the masks)."""
    return {name: float((effective_weight(m) == 0).float().mean()) for name, m in modules}


def fold_masks(modules: list[tuple[str, nn.Module]]) -> None:
    """Make the pruning permanent: ``weight = weight_orig ⊙ mask`` as a plain parameter."""
    for _, m in modules:
        if prune.is_pruned(m) and hasattr(m, "weight_mask"):
            prune.remove(m, "weight")


@dataclass
class RoundResult:
    round: int
    sparsity: float
    fit: FitResult
    best_state: dict | None = None

    def summary(self) -> dict:
        return {"round": self.round, "sparsity": self.sparsity, **self.fit.summary()}


@dataclass
class PruneResult:
    """What iterative (or one-shot) pruning produced.

    ``seconds``: wall-clock of the pruning and fine-tuning rounds only (masks, training, the
    per-epoch dev evaluation: the paper's defense time, spec §4.3); ``output_seconds``: the
    ``on_round_end`` passes (per-round outputs); ``checkpoint_seconds``: building and writing the
    resume points. The three do not overlap; resumed runs add up every session's time.
    """

    rounds: list[RoundResult]
    layer_sparsity: dict[str, float]
    target_sparsity: float
    seconds: float
    epochs: int = 0
    extra: dict = field(default_factory=dict)
    output_seconds: float = 0.0
    checkpoint_seconds: float = 0.0

    def summary(self) -> dict:
        return {
            "rounds": [r.summary() for r in self.rounds],
            "layer_sparsity": self.layer_sparsity,
            "target_sparsity": self.target_sparsity,
            "seconds": self.seconds,
            "output_seconds": self.output_seconds,
            "checkpoint_seconds": self.checkpoint_seconds,
            "epochs": self.epochs,
        }


#: The clocks of a pruning run (see :class:`PruneResult`).
CLOCKS = ("seconds", "output_seconds", "checkpoint_seconds")


class _Clock:
    """Wall-clock of a pruning run: what :meth:`side` times is not training, the rest is;
    ``before`` (a resume point) holds the earlier sessions' totals."""

    def __init__(self, before: dict | None = None) -> None:
        self.start, self.spent = time.perf_counter(), {k: 0.0 for k in CLOCKS[1:]}
        self.before = {k: float((before or {}).get(k, 0.0)) for k in CLOCKS}

    @contextlib.contextmanager
    def side(self, clock: str) -> Iterator[None]:
        t = time.perf_counter()
        try:
            yield
        finally:
            self.spent[clock] += time.perf_counter() - t

    def totals(self) -> dict[str, float]:
        """Seconds per clock so far, resumed sessions included."""
        now = {"seconds": time.perf_counter() - self.start - sum(self.spent.values()), **self.spent}
        return {k: self.before[k] + now[k] for k in CLOCKS}


def prune_and_finetune(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    train_rows,
    dev_rows,
    *,
    arch: str,
    approach: str,
    rate: float,
    rounds: int,
    config: TrainConfig,
    hooks_factory: Callable[[], Hooks] = Hooks,
    on_round_end: Callable[[int, nn.Module], None] | None = None,
    checkpoint: Callable[[dict], None] | None = None,
    resume: dict | None = None,
    desc: str = "prune",
) -> PruneResult:
    """Iteratively prune ``model`` in place and fine-tune it after every step (spec §4.3).

    Each round applies the round's mask, fine-tunes up to ``config.max_epochs`` epochs with early
    stopping (the hooks' defense, a fresh hooks object per round so per-round state such as the
    sliding window restarts), and continues from the last-epoch weights. ``on_round_end(k, best)``
    sees the round's best-dev model (masks applied), for per-round evaluation. At the end the model
    holds the best-dev weights of the last round with masks folded in, and the achieved per-layer
    sparsity is verified against the schedule.

    Resuming (round granularity): when ``checkpoint`` is given and the hooks are
    :attr:`~wemem.training.loop.Hooks.resumable`, ``checkpoint(state)`` receives after every round but
    the last a dict holding everything the next round starts from (the last-epoch weights with their
    masks, the optimizers' states, the defense's :meth:`~wemem.training.loop.Hooks.carry_state`, the
    finished rounds' results and elapsed seconds). Passing that dict back as ``resume`` together
    with the same *dense* ``model`` continues at the next round; every round is seeded by its index,
    so the result equals an uninterrupted run's.

    Timing (:class:`PruneResult`): ``seconds`` counts the rounds only; the ``on_round_end`` passes
    and the checkpoints are timed apart, so a slow writer does not inflate the defense time.
    """
    modules = prunable_modules(model, arch, approach)
    sparsities = schedule(rate, rounds)
    optimizers = None
    results: list[RoundResult] = []
    start = 0
    if resume is not None:
        optimizers = _restore_round(
            model, x, y, train_rows, dev_rows, modules, sparsities,
            approach=approach, config=config, hooks_factory=hooks_factory, state=resume,
        )  # fmt: skip
        results = [RoundResult(**r) for r in resume["rounds"]]
        start = resume["round"] + 1
        log.info("%s: resuming at round %d of %d", desc, start, len(sparsities))
    clock = _Clock(resume)
    for k, s in enumerate(sparsities):
        if k < start:
            continue
        if s > 0:
            apply_sparsity(modules, s, approach)
        cfg = TrainConfig(**{**config.__dict__, "seed": config.seed * 1000 + k})
        hooks = hooks_factory()
        res, optimizers = fit(
            model, x, y, train_rows, dev_rows,
            config=cfg, hooks=hooks, optimizers=optimizers, desc=f"{desc} r{k}",
        )  # fmt: skip
        results.append(RoundResult(round=k, sparsity=s, fit=res, best_state=res.best_state))
        if on_round_end is not None and res.best_state is not None:
            with clock.side("output_seconds"):
                _show_best(model, k, res.best_state, on_round_end)
        if checkpoint is not None and k < len(sparsities) - 1 and _resumable(hooks, optimizers):
            with clock.side("checkpoint_seconds"):
                checkpoint(_round_state(k, model, optimizers, hooks, results, clock=clock))
    return _export(model, modules, results, target=sparsities[-1], approach=approach, clock=clock)


def _show_best(
    model: nn.Module, k: int, best_state: dict, on_round_end: Callable[[int, nn.Module], None]
) -> None:
    """``on_round_end(k, model)`` with round k's best-dev weights loaded; the last-epoch weights,
    which the next round continues from, are put back afterwards."""
    last = {n: v.detach().clone() for n, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    on_round_end(k, model)
    model.load_state_dict(last)


def _round_state(
    k: int,
    model: nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    hooks: Hooks,
    results: list[RoundResult],
    *,
    clock: _Clock,
) -> dict:
    """The checkpoint after round ``k``: everything round k + 1 starts from (see
    :func:`prune_and_finetune`), model weights on the CPU, round results without their states,
    and the clocks so far (:data:`CLOCKS`; the checkpoint being written is not in them yet)."""
    return {
        "round": k,
        "model": {n: v.detach().cpu().clone() for n, v in model.state_dict().items()},
        "optimizers": {n: o.state_dict() for n, o in optimizers.items()},
        "carry": hooks.carry_state(model),
        "rounds": [
            {
                "round": r.round,
                "sparsity": r.sparsity,
                "fit": replace(r.fit, best_state=None),
            }
            for r in results
        ],
        **clock.totals(),
    }


def _export(
    model: nn.Module,
    modules: list[tuple[str, nn.Module]],
    results: list[RoundResult],
    *,
    target: float,
    approach: str,
    clock: _Clock,
) -> PruneResult:
    """Load the last round's best-dev weights, fold the masks, check the achieved sparsity against
    ``target`` and drop the round states (the folded model is the export)."""
    final = results[-1].best_state
    if final is not None:
        model.load_state_dict(final)
    fold_masks(modules)
    achieved = layer_sparsity(model, modules)
    for name, m in modules:
        want = int(m.weight.numel() * target) if approach == "l1_unstructured" else None
        zeros = int((effective_weight(m) == 0).sum())
        if want is not None and zeros < want:
            raise RuntimeError(
                f"layer {name}: {zeros} zeros < {want} required by sparsity {target}"
            )
    for r in results:
        r.best_state = None  # the folded model is the export; round states are not kept
    return PruneResult(
        rounds=results,
        layer_sparsity=achieved,
        target_sparsity=target,
        epochs=sum(r.fit.epochs_run for r in results),
        **clock.totals(),
    )


def _resumable(hooks: Hooks, optimizers: dict) -> bool:
    return hooks.resumable and all(
        type(o).__module__.startswith("torch.optim") for o in optimizers.values()
    )


def _restore_round(
    model, x, y, train_rows, dev_rows, modules, sparsities, *,
    approach, config, hooks_factory, state,
) -> dict:  # fmt: skip
    """Rebuild the optimizers and masks of a checkpoint on the dense ``model`` (see
    :func:`prune_and_finetune`). The optimizers are made before the masks are replayed, as in an
    uninterrupted run, so their parameter order (and hence their loaded state) matches."""
    hooks = hooks_factory()
    device = x.device
    train_t = torch.as_tensor(train_rows, dtype=torch.long, device=device)
    dev_t = torch.as_tensor(dev_rows, dtype=torch.long, device=device)
    hooks.bind(model, x, y, train_t, dev_t)
    try:
        optimizers = hooks.make_optimizers(model, config)
    finally:
        hooks.unbind(model)
    for s in sparsities[: state["round"] + 1]:
        if s > 0:
            apply_sparsity(modules, s, approach)
    model.load_state_dict({k: v.to(device) for k, v in state["model"].items()})
    for name, opt in optimizers.items():
        opt.load_state_dict(state["optimizers"][name])
    if state.get("carry") is not None:
        hooks.restore_state(model, state["carry"])
    return optimizers
