"""The training stages of one model, cached: dense training, and pruning resumable per round.

:func:`train_dense` trains a role's dense (original) model with Base and early stopping;
:func:`prune` prunes it iteratively (or one-shot) with a defense's hooks, writing a resume point
after every finished round (:class:`ResumePoints`) so a killed run continues where it stopped.
Both read and write the experiment's cache under the keys of :mod:`wemem.experiment.keys`.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from wemem.cache import Cache, payload_type
from wemem.data import ModelSplit, Pool
from wemem.experiment.outputs import ModelOutputs, PrunedRun
from wemem.params import Settings
from wemem.pruning import prune_and_finetune
from wemem.training.loop import FitResult, Hooks, TrainConfig, fit

log = logging.getLogger(__name__)

# a resume point holds every finished round's fit result (wemem.pruning.prune_and_finetune)
payload_type(FitResult)


class Replicate(Protocol):
    """What the stages use of an experiment (:class:`wemem.experiment.replicate.Experiment`)."""

    settings: Settings
    pool: Pool
    cache: Cache

    def split(self, role: str) -> ModelSplit: ...

    def new_model(self, role: str) -> nn.Module: ...

    def train_config(self, role: str, *, max_epochs: int) -> TrainConfig: ...

    def dense_spec(self, role: str) -> dict: ...

    def pruned_spec(
        self,
        role: str,
        one_shot: bool = False,
        approach: str | None = None,
        rate: float | None = None,
        defense: str = "base",
        defense_spec: dict | None = None,
    ) -> dict: ...

    def dense(self, role: str) -> tuple[nn.Module, dict, ModelOutputs]: ...

    def outputs(self, model: nn.Module, role: str) -> ModelOutputs: ...


#: How a dense entry marks outputs computed in IEEE float32 (:func:`train_dense`).
FP32_OUTPUTS = "outputs_fp32"


def train_dense(exp: Replicate, role: str) -> tuple[nn.Module, dict, ModelOutputs]:
    """The role's dense model (trained with Base and early stopping, or from the cache), its
    training summary and its outputs.

    An entry written before the outputs were computed in float32 (no :data:`FP32_OUTPUTS` mark;
    on CUDA they came from bf16 autocast) keeps its model, and its outputs are recomputed from the
    weights on every load, never rewritten (a rewrite could race with a reader of the entry).
    """
    spec = exp.dense_spec(role)

    def compute() -> dict:
        s, sp = exp.settings, exp.split(role)
        model = exp.new_model(role)
        res, _ = fit(
            model,
            exp.pool.x,
            exp.pool.y,
            sp.train,
            sp.dev,
            config=exp.train_config(role, max_epochs=s.max_epochs),
            desc=f"{role} dense",
        )
        model.load_state_dict(res.best_state)
        state = {k: v.cpu() for k, v in model.state_dict().items()}
        outputs = exp.outputs(model, role)
        return {"state": state, "summary": res.summary(), "outputs": outputs, FP32_OUTPUTS: True}

    entry, hit = exp.cache.get_or_compute("dense", spec, compute)
    model = exp.new_model(role)
    model.load_state_dict(entry["state"])
    log.info("%s dense model (%s)", role, "cache" if hit else "trained")
    if not entry.get(FP32_OUTPUTS):
        return model, entry["summary"], exp.outputs(model, role)
    return model, entry["summary"], entry["outputs"]


class ResumePoints:
    """The resume points of one pruning run: one ``round`` entry per finished round, never
    overwritten (a kill while one is written leaves the previous one intact), each holding the
    state :func:`~wemem.pruning.prune_and_finetune` resumes from plus the rounds' outputs."""

    def __init__(self, cache: Cache, pruned_key: str, rounds: int) -> None:
        self.cache, self.owner = cache, pruned_key
        self.keys = [cache.key("round", {"pruned": pruned_key, "round": k}) for k in range(rounds)]

    def save(self, state: dict, per_round: list[ModelOutputs]) -> None:
        entry = {**state, "per_round": list(per_round)}
        self.cache.save("round", self.keys[state["round"]], entry, {"pruned": self.owner})
        _pause_at_resume_point()

    def latest(self) -> dict | None:
        """The last readable resume point, or ``None``."""
        for key in reversed(self.keys):
            if self.cache.contains("round", key):
                entry = self.cache.load("round", key)
                if entry is not None:
                    return entry
        return None

    def drop(self) -> None:
        """Remove them all (the finished run supersedes them)."""
        for key in self.keys:
            self.cache.drop("round", key)


_SAVED = itertools.count(1)  # resume points written by this process


def _pause_at_resume_point() -> None:
    """A fixed point for a test to kill a batch at: with ``$WEMEM_PAUSE_AT_RESUME_POINT`` = N, the
    process stops after writing its N-th resume point, writes its pid to
    ``$WEMEM_PAUSE_FILE`` and sleeps until it is killed (tests/experiment/test_resume.py)."""
    at = os.environ.get("WEMEM_PAUSE_AT_RESUME_POINT")
    if at and next(_SAVED) == int(at):
        Path(os.environ["WEMEM_PAUSE_FILE"]).write_text(str(os.getpid()))
        while True:
            time.sleep(3600)


def prune(
    exp: Replicate,
    role: str,
    *,
    one_shot: bool = False,
    approach: str | None = None,
    rate: float | None = None,
    defense: str = "base",
    hooks_factory: Callable[[], Hooks] = Hooks,
    defense_spec: dict | None = None,
    defense_report: Callable[[], dict] | None = None,
    window: tuple[str, ...] = (),
    use_cache: bool = True,
) -> PrunedRun:
    """Prune the role's dense model iteratively (or one-shot) with a defense, cached
    (``Experiment.pruned`` is this function as a method).

    ``defense``/``defense_spec`` name the defense and exactly its settings; they enter the cache
    key, and ``hooks_factory`` builds its training hooks (Base by default). ``defense_report()``
    (optional) is called after pruning; its dict is stored in the summary under ``"defense"``
    (e.g. DP-SGD's ε). ``use_cache=False`` retrains and overwrites the entry (the time-cost
    notebook measures uncached runs).

    ``window`` names the keys of ``defense_spec`` that act on training only through the hooks'
    ``epoch_indices`` (a window defense's ranking and window). A cached run whose window
    schedule on this role's training rows is the same (:func:`window_schedule_spec`; at smoke
    scale every window wider than the largest class) is the same training: its entry is reused,
    its summary marked ``same_training_as``, and nothing is retrained.
    """
    s = exp.settings
    approach = approach or s.pruning_approach
    rate = s.pruning_rate if rate is None else rate
    rounds = 1 if one_shot else s.pruning_rounds
    spec = exp.pruned_spec(role, one_shot, approach, rate, defense, defense_spec)
    key = exp.cache.key("pruned", spec)
    points = ResumePoints(exp.cache, key, rounds)
    alias = window_schedule_spec(exp, role, spec, hooks_factory, window) if use_cache else None

    def compute() -> dict:
        same = _same_training(exp.cache, alias)
        if same is not None:
            return same
        return _prune_run(
            exp,
            role,
            one_shot=one_shot,
            approach=approach,
            rate=rate,
            hooks_factory=hooks_factory,
            defense_report=defense_report,
            points=points,
            resume=use_cache,
        )

    if use_cache:
        entry, hit = exp.cache.get_or_compute("pruned", spec, compute)
    else:
        entry, hit = compute(), False
        exp.cache.save("pruned", key, entry, spec)
    points.drop()
    if alias is not None and not exp.cache.contains("alias", exp.cache.key("alias", alias)):
        exp.cache.save("alias", exp.cache.key("alias", alias), {"key": key}, alias)
    log.info("%s pruned model (%s)", role, "cache" if hit else "trained")
    return PrunedRun(
        final=entry["final"],
        per_round=entry["per_round"],
        summary=entry["summary"],
        state=entry["state"],
    )


def window_schedule_spec(
    exp: Replicate,
    role: str,
    spec: dict,
    hooks_factory: Callable[[], Hooks],
    window: tuple[str, ...],
) -> dict | None:
    """The pruning run's key spec with its window settings replaced by the sha256 of the window
    schedule they give on the role's training rows (every fine-tuning epoch's indices, up to the
    first empty window and its stop reason), or ``None`` without window settings."""
    if not window:
        return None
    hooks, rows = hooks_factory(), torch.as_tensor(exp.split(role).train, dtype=torch.long)
    schedule = hashlib.sha256()
    for epoch in range(exp.settings.finetune_epochs):
        idx = hooks.epoch_indices(epoch, rows)
        schedule.update(np.asarray(idx.cpu(), dtype=np.int64).tobytes() + b"|")
        if len(idx) == 0:
            schedule.update(hooks.empty_reason(epoch).encode())
            break
    defense = {k: v for k, v in spec["defense_spec"].items() if k not in window}
    return {**spec, "defense_spec": {**defense, "window_schedule": schedule.hexdigest()}}


def _same_training(cache: Cache, alias: dict | None) -> dict | None:
    """The cached entry of a pruning run with the same window schedule, or ``None``."""
    if alias is None:
        return None
    target = cache.load("alias", cache.key("alias", alias))
    entry = cache.load("pruned", target["key"]) if target is not None else None
    if entry is None:
        return None
    log.info("same window schedule as pruned/%s: its training is reused", target["key"][:12])
    entry["summary"] = {**entry["summary"], "same_training_as": target["key"]}
    return entry


def _prune_run(
    exp: Replicate,
    role: str,
    *,
    one_shot: bool,
    approach: str,
    rate: float,
    hooks_factory: Callable[[], Hooks],
    defense_report: Callable[[], dict] | None,
    points: ResumePoints,
    resume: bool,
) -> dict:
    """One pruning run from the dense model (continued from its latest resume point when
    ``resume``): the pruned state, summary, final and per-round outputs."""
    s = exp.settings
    rounds = 1 if one_shot else s.pruning_rounds
    ft = exp.train_config(role, max_epochs=s.finetune_epochs)
    model, _, _ = exp.dense(role)
    sp = exp.split(role)
    point = points.latest() if resume else None
    per_round: list[ModelOutputs] = point.pop("per_round") if point is not None else []
    res = prune_and_finetune(
        model,
        exp.pool.x,
        exp.pool.y,
        sp.train,
        sp.dev,
        arch=s.arch,
        approach=approach,
        rate=rate,
        rounds=rounds,
        config=ft,
        hooks_factory=hooks_factory,
        on_round_end=lambda k, m: per_round.append(exp.outputs(m, role)),
        checkpoint=lambda st: points.save(st, per_round),
        resume=point,
        desc=f"{role} {'one-shot' if one_shot else 'iterative'}",
    )
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    summary = res.summary()
    if defense_report is not None:
        summary["defense"] = defense_report()
    return {
        "state": state,
        "summary": summary,
        "final": exp.outputs(model, role),
        "per_round": list(per_round),
    }
