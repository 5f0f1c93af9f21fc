"""Victim and shadow models of one replicate: data, splits, models, and their cached stages.

One :class:`Experiment` is one replicate (one training seed) of the paper's setting: a victim and
``n_shadows`` shadow models trained by the same procedure on their own splits (spec §5.2), each
iteratively pruned with the same defense (the *adaptive* attacker, spec §6.3). Online LiRA's
reference models are roles too (``ref{k}of{K}``, not in :attr:`Experiment.roles`;
:mod:`wemem.experiment.references`). Dense models and pruning results are cached by a digest of
exactly the settings they depend on (:mod:`wemem.experiment.keys`), so every notebook reuses them;
the stages themselves are in :mod:`wemem.experiment.stages`, the per-sample outputs in
:mod:`wemem.experiment.outputs`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from wemem import data as wdata
from wemem.cache import Cache, default_cache_dir
from wemem.defenses.catalog import DefenseContext, DefenseParts, defense_parts
from wemem.experiment import executor, keys, stages
from wemem.experiment.executor import Request
from wemem.experiment.outputs import ModelOutputs, PrunedRun, model_outputs, pool_shadows
from wemem.memorization import memscores as wmemscores
from wemem.models import build_model
from wemem.params import Settings
from wemem.training.device import prepare_model, resolve_device
from wemem.training.loop import Hooks, TrainConfig, set_threads

__all__ = ["Experiment", "ModelOutputs", "PrunedRun", "pool_shadows", "split_table"]


class Experiment:
    """One replicate: pool, splits, and cached victim/shadow models for a given training seed."""

    def __init__(self, settings: Settings, *, seed: int, pool: wdata.Pool | None = None) -> None:
        self.settings = settings
        self.seed = seed
        set_threads(settings.threads)
        self.device = resolve_device(settings.device)
        self.pool = pool or wdata.load_pool(
            settings.dataset,
            label_noise=settings.label_noise,
            noise_seed=settings.noise_seed,
            device=self.device,
            **dict(settings.data_options),
        )
        self.splits = wdata.make_splits(
            self.pool.n_train,
            len(self.pool.y) - self.pool.n_train,
            n_shadows=settings.n_shadows,
            seed=settings.split_seed,
            member_fraction=settings.member_fraction,
            dev_fraction=settings.dev_fraction,
        )
        self.cache = Cache(default_cache_dir(settings.cache_dir))
        self.roles = ["victim"] + [f"shadow{i}" for i in range(settings.n_shadows)]
        shape = tuple(self.pool.x.shape[1:])
        self._in_channels = shape[0] if len(shape) == 3 else 3
        self._in_features = int(np.prod(shape))  # the FC model flattens its input (images too)
        self._memscores: wmemscores.MemScoreResult | None = None
        self._parent: Experiment | None = None  # the run's experiment, when this is a twin
        self._twins: dict[str, Experiment] = {}  # by norm: the one setting a twin changes
        self._keep: dict[int, np.ndarray] = {}  # reference keep matrices, by n_refs

    def for_defense(self, name: str) -> Experiment:
        """The experiment whose models defense ``name``'s rows train: ``self``, except DP-SGD on a
        CNN with ``norm: batch``, whose rows run on a *twin* with ``norm = dp_norm`` (GroupNorm:
        BatchNorm has no per-example gradients; :func:`wemem.experiment.keys.defense_settings`).

        The twin shares this experiment's pool, splits, seed, cache and mem-scores; its models,
        dense ones included, are GroupNorm models trained and cached under their own keys (those
        of a ``norm: group`` run). The same twin is returned on every call. Load a twin's pruned
        model with the twin (:meth:`load_pruned_model`), not with ``self``.
        """
        settings = keys.defense_settings(self.settings, name)
        if settings == self.settings:
            return self
        if settings.norm not in self._twins:
            twin = type(self)(settings, seed=self.seed, pool=self.pool)
            twin._parent = self
            self._twins[settings.norm] = twin
        return self._twins[settings.norm]

    # ---- splits and models -------------------------------------------------------------------
    def split(self, role: str) -> wdata.ModelSplit:
        """The rows of ``role``: ``victim``, ``shadow{i}`` or online-LiRA reference ``ref{k}of{K}``
        (:meth:`reference_keep`, :func:`wemem.data.reference_split`)."""
        if role == "victim":
            return self.splits.victim
        if keys.is_reference_role(role):
            ref = self._reference(role)
            keep = self.reference_keep(ref.n_refs)[ref.k]
            return wdata.reference_split(keep, self.splits.victim, self.pool.n_train, ref.keep_seed)
        return self.splits.shadows[int(role.removeprefix("shadow"))]

    def reference_keep(self, n_refs: int) -> np.ndarray:
        """``(n_refs, n_train)`` bool keep matrix of this replicate's ``n_refs`` reference models
        over P (:func:`wemem.data.reference_keep`, seeded by :func:`keys.keep_seed` of the run's
        split seed and the replicate seed); computed once per ``n_refs``."""
        if n_refs not in self._keep:
            seed = keys.keep_seed(self.settings.split_seed, self.seed)
            self._keep[n_refs] = wdata.reference_keep(self.pool.n_train, n_refs, seed)
        return self._keep[n_refs]

    def _reference(self, role: str) -> keys.Reference:
        return keys.reference_of(role, split_seed=self.settings.split_seed, seed=self.seed)

    def _role_index(self, role: str) -> int:
        return self.roles.index(role)

    def _role_key(self, role: str) -> int | keys.Reference:
        """What the keys know a role by: its index in :attr:`roles`, or a reference's identity."""
        return self._reference(role) if keys.is_reference_role(role) else self._role_index(role)

    def new_model(self, role: str) -> nn.Module:
        """A freshly initialised model for ``role`` (seeded by the replicate seed and the role)."""
        return self.build(seed=keys.model_seed(self.seed, self._role_key(role)))

    def build(self, *, seed: int) -> nn.Module:
        """A freshly initialised model of the experiment's architecture on its device.

        ``settings.norm == "group"`` builds the CNNs with GroupNorm instead of BatchNorm for every
        model of the experiment (victim, shadows, mem-score models; dense training included), so
        that the dense model, its pruning and DP-SGD fine-tuning share one architecture. A run with
        ``norm: batch`` gets such models for its DP-SGD rows only, from :meth:`for_defense`. This
        is this project's deviation for DP-SGD on CNNs: the paper does not say how it ran DP on
        BatchNorm models (:mod:`wemem.models`).
        """
        s = self.settings
        model = build_model(
            s.arch,
            num_classes=self.pool.num_classes,
            in_channels=self._in_channels,
            in_features=self._in_features,
            width=s.width,
            stem_maxpool=s.stem_maxpool,
            norm=s.norm,
            seed=seed,
        )
        return prepare_model(model, s.arch, self.device)  # channels_last for CNNs on CUDA

    def load_pruned_model(self, run: PrunedRun, role: str) -> nn.Module:
        model = self.new_model(role)
        model.load_state_dict(run.state)
        return model

    def outputs(self, model: nn.Module, role: str) -> ModelOutputs:
        """Posteriors of ``model`` on the role's members and non-members."""
        return model_outputs(model, self.pool, self.split(role))

    # ---- cache keys --------------------------------------------------------------------------
    def train_config(self, role: str, *, max_epochs: int) -> TrainConfig:
        return keys.train_config(
            self.settings, max_epochs=max_epochs, seed=self.seed, role_index=self._role_key(role)
        )

    def dense_spec(self, role: str) -> dict:
        """Cache-key spec of the role's dense model (:func:`wemem.experiment.keys.dense_spec`)."""
        sp = self.split(role)
        return keys.dense_spec(
            self.settings,
            pool_digest=self.pool.digest,
            rows=keys.rows_digest(sp.train, sp.dev),
            seed=self.seed,
            role_index=self._role_key(role),
        )

    def pruned_spec(
        self,
        role: str,
        one_shot: bool = False,
        approach: str | None = None,
        rate: float | None = None,
        defense: str = "base",
        defense_spec: dict | None = None,
    ) -> dict:
        """Cache-key spec of a pruning run (:func:`wemem.experiment.keys.pruned_spec`)."""
        return keys.pruned_spec(
            self.settings,
            dense=self.dense_spec(role),
            eval_rows=keys.rows_digest(self.split(role).test),
            seed=self.seed,
            role_index=self._role_key(role),
            one_shot=one_shot,
            approach=approach,
            rate=rate,
            defense=defense,
            defense_spec=defense_spec,
        )

    # ---- stages ------------------------------------------------------------------------------
    #: The role's dense model, its training summary and outputs (:func:`stages.train_dense`).
    dense = stages.train_dense
    #: Prune the role's dense model with a defense, cached and resumable (:func:`stages.prune`).
    pruned = stages.prune

    def memscores(self) -> wmemscores.MemScoreResult:
        """Mem-scores of the training pool (:func:`wemem.memorization.memscores.compute`, cached);
        a twin (:meth:`for_defense`) reads its run's."""
        if self._parent is not None:
            return self._parent.memscores()
        if self._memscores is None:
            self._memscores = wmemscores.compute(self)
        return self._memscores

    def defense_parts(self, defense: str, one_shot: bool, settings: dict[str, Any]) -> DefenseParts:
        """Cache-key spec, hooks factory and report function of a named defense
        (:func:`wemem.defenses.catalog.defense_parts` in this experiment)."""
        s = self.settings
        context = DefenseContext(
            arch=s.arch,
            norm=s.norm,
            epochs_planned=(1 if one_shot else s.pruning_rounds) * s.finetune_epochs,
            memscores=lambda: self.memscores().score,
            labels=lambda: self.pool.y[: self.pool.n_train].cpu().numpy(),
        )
        return defense_parts(defense, settings, context)

    def defended(
        self, role: str, defense: str, *, one_shot: bool = False, use_cache: bool = True, **settings
    ) -> PrunedRun:
        """Prune the role's dense model with a named defense (victim and shadows alike: the
        adaptive attacker's shadows use the same defense and settings, spec §6.3).

        ``settings`` are the defense's own (e.g. ``width``, ``step``, ``tau``, ``lambda_r``); they
        and, for the WeMem methods, a digest of the mem-scores enter the cache key. The models are
        those of :meth:`for_defense` (DP-SGD on a BatchNorm CNN: the GroupNorm twin's).
        """
        exp = self.for_defense(defense)
        parts = exp.defense_parts(defense, one_shot, settings)
        return exp._prune_with(role, defense, one_shot, parts, use_cache=use_cache)

    def _prune_with(
        self,
        role: str,
        defense: str,
        one_shot: bool,
        parts: DefenseParts,
        *,
        use_cache: bool = True,
    ) -> PrunedRun:
        return self.pruned(
            role,
            one_shot=one_shot,
            defense=defense,
            hooks_factory=parts.hooks_factory,
            defense_spec=parts.spec,
            defense_report=parts.report,
            window=parts.window,
            use_cache=use_cache,
        )

    # ---- executor requests -------------------------------------------------------------------
    def resolve(self, request: Request) -> tuple[str, dict, Callable[[], object]]:
        """The one dispatch on a :class:`~wemem.experiment.executor.Request`'s kind: the cache
        kind and key spec of the entry it computes, and the computation. A request naming a
        defense (``defended``, or ``dense`` for a defense's dense model) is resolved by the
        experiment of :meth:`for_defense`."""
        target = self.for_defense(request.defense)
        if target is not self:
            return target.resolve(request)
        role, one_shot = request.role, request.one_shot
        if request.kind == "dense":
            return "dense", self.dense_spec(role), lambda: self.dense(role)
        if request.kind == "pruned":
            defense, parts = "base", DefenseParts({}, Hooks)
        elif request.kind == "defended":
            defense = request.defense
            parts = self.defense_parts(defense, one_shot, request.settings)
        else:
            raise ValueError(f"unknown request kind {request.kind!r}")
        spec = self.pruned_spec(role, one_shot, defense=defense, defense_spec=parts.spec)
        return "pruned", spec, lambda: self._prune_with(role, defense, one_shot, parts)

    def is_cached(self, request: Request) -> bool:
        """Whether the cache holds the entry a :class:`~wemem.experiment.executor.Request` would
        compute."""
        kind, spec, _ = self.resolve(request)
        return self.cache.contains(kind, self.cache.key(kind, spec))

    def run(self, request: Request) -> None:
        """Compute (or read from the cache) what a request asks for."""
        _, _, compute = self.resolve(request)
        compute()

    def prefetch(self, requests: Iterable[Request]) -> int:
        """Train the requests' missing cache entries in parallel when the executor is Ray
        (:mod:`wemem.experiment.executor`); a no-op locally. Returns how many trainings were
        submitted."""
        return executor.prefetch(self, list(requests))


def split_table(exp: Experiment) -> pd.DataFrame:
    """Sizes of every model's members, dev and non-member sets, and their label-noise fractions."""
    rows = []
    for role in exp.roles:
        sp = exp.split(role)
        rows.append(
            {
                "model": role,
                "members": len(sp.train),
                "dev": len(sp.dev),
                "non-members": len(sp.test),
                "flipped members": float(exp.pool.flipped[sp.train].mean()),
                "flipped non-members": float(exp.pool.flipped[sp.test].mean()),
                "split seed": sp.seed,
            }
        )
    return pd.DataFrame(rows).set_index("model")
