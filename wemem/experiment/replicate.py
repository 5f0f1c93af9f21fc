"""Victim and shadow models: data, splits, dense training, pruning and per-sample outputs, cached.

One :class:`Experiment` is one replicate (one training seed) of the paper's setting: a victim and
``n_shadows`` shadow models trained by the same procedure on their own splits (spec §5.2), each
iteratively pruned with the same defense (the *adaptive* attacker, spec §6.3). Dense models and
pruning results are cached by a digest of exactly the settings they depend on, so every notebook
reuses them.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from wemem import data as wdata
from wemem.cache import Cache, default_cache_dir
from wemem.models import build_model
from wemem.params import Settings
from wemem.pruning import prune_and_finetune
from wemem.training.loop import (
    Hooks,
    TrainConfig,
    accuracy,
    fit,
    predict_proba,
    resolve_device,
    set_threads,
)

log = logging.getLogger(__name__)


@dataclass
class ModelOutputs:
    """Per-sample outputs of one model on its members (train split) and non-members (test split).

    ``probs_*``: (n, C) float32 softmax posteriors; ``labels_*``: (n,) int64 labels as trained on
    (after label noise); ``rows_*``: (n,) pool row indices; ``flipped_*``: (n,) bool label-noise flags.
    """

    probs_in: np.ndarray
    labels_in: np.ndarray
    rows_in: np.ndarray
    flipped_in: np.ndarray
    probs_out: np.ndarray
    labels_out: np.ndarray
    rows_out: np.ndarray
    flipped_out: np.ndarray
    train_acc: float
    test_acc: float
    sens_in: np.ndarray | None = None  # (n_in, C) posterior sensitivity, when an attack needs it
    sens_out: np.ndarray | None = None

    @property
    def members(self) -> tuple[np.ndarray, np.ndarray]:
        return self.probs_in, self.labels_in

    @property
    def nonmembers(self) -> tuple[np.ndarray, np.ndarray]:
        return self.probs_out, self.labels_out


def pool_shadows(shadows: list[ModelOutputs]) -> tuple[tuple, tuple]:
    """Concatenate the shadows' member and non-member outputs (how the attacks calibrate)."""
    pin = (
        np.concatenate([s.probs_in for s in shadows]),
        np.concatenate([s.labels_in for s in shadows]),
    )
    pout = (
        np.concatenate([s.probs_out for s in shadows]),
        np.concatenate([s.labels_out for s in shadows]),
    )
    return pin, pout


@dataclass
class PrunedRun:
    """A pruned model's final outputs, its per-round outputs and the pruning summary."""

    final: ModelOutputs
    per_round: list[ModelOutputs]
    summary: dict
    state: dict = field(repr=False, default_factory=dict)


def _rows_digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
        h.update(b"|")
    return h.hexdigest()


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

    # ---- splits and models -------------------------------------------------------------------
    def split(self, role: str) -> wdata.ModelSplit:
        if role == "victim":
            return self.splits.victim
        return self.splits.shadows[int(role.removeprefix("shadow"))]

    def _role_index(self, role: str) -> int:
        return self.roles.index(role)

    def new_model(self, role: str) -> nn.Module:
        """A freshly initialised model for ``role`` (seeded by the replicate seed and the role)."""
        return self.build(seed=self.seed * 100 + self._role_index(role))

    def build(self, *, seed: int) -> nn.Module:
        """A freshly initialised model of the experiment's architecture on its device.

        ``settings.norm == "group"`` builds the CNNs with GroupNorm instead of BatchNorm for every
        model of the experiment (victim, shadows, mem-score models; dense training included), so
        that the dense model, its pruning and DP-SGD fine-tuning share one architecture. This is
        this project's deviation for DP-SGD on CNNs: the paper does not say how it ran DP on
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
        ).to(self.device)
        if self.device.type == "cuda" and s.arch != "fc":
            model = model.to(memory_format=torch.channels_last)
        return model

    def _train_config(self, role: str, *, max_epochs: int) -> TrainConfig:
        s = self.settings
        return TrainConfig(
            lr=s.lr,
            weight_decay=s.weight_decay,
            batch_size=s.batch_size,
            max_epochs=max_epochs,
            patience=s.patience,
            seed=self.seed * 100 + self._role_index(role),
        )

    def _dense_spec(self, role: str) -> dict:
        s, sp = self.settings, self.split(role)
        spec = {
            "pool": self.pool.digest,
            "rows": _rows_digest(sp.train, sp.dev),
            "arch": s.arch,
            "width": s.width,
            "stem_maxpool": s.stem_maxpool,
            "train": self._train_config(role, max_epochs=s.max_epochs).__dict__,
        }
        # only when it changes the model: BatchNorm keys (every entry made before) stay valid, and
        # the FC model, which has no normalization layer, is shared
        if s.norm != "batch" and s.arch != "fc":
            spec["norm"] = s.norm
        return spec

    def _pruned_spec(
        self,
        role: str,
        one_shot: bool = False,
        approach: str | None = None,
        rate: float | None = None,
        defense: str = "base",
        defense_spec: dict | None = None,
    ) -> dict:
        s = self.settings
        return {
            "dense": self._dense_spec(role),
            "approach": approach or s.pruning_approach,
            "rate": s.pruning_rate if rate is None else rate,
            "rounds": 1 if one_shot else s.pruning_rounds,
            "finetune": self._train_config(role, max_epochs=s.finetune_epochs).__dict__,
            "defense": defense,
            "defense_spec": defense_spec or {},
            "eval_rows": _rows_digest(self.split(role).test),
        }

    def is_cached(self, request) -> bool:
        """Whether the cache holds the entry a :class:`wemem.experiment.executor.Request` would compute."""
        if request.kind == "dense":
            kind, spec = "dense", self._dense_spec(request.role)
        elif request.kind == "pruned":
            kind, spec = "pruned", self._pruned_spec(request.role, request.one_shot)
        else:
            dspec, _, _ = self._defense_parts(request.defense, request.one_shot, request.settings)
            kind = "pruned"
            spec = self._pruned_spec(
                request.role, request.one_shot, defense=request.defense, defense_spec=dspec
            )
        return self.cache.contains(kind, self.cache.key(kind, spec))

    def outputs(self, model: nn.Module, role: str) -> ModelOutputs:
        """Posteriors of ``model`` on the role's members and non-members."""
        sp, x, y = self.split(role), self.pool.x, self.pool.y
        flipped = self.pool.flipped
        p_in = predict_proba(model, x, sp.train).cpu().numpy()
        p_out = predict_proba(model, x, sp.test).cpu().numpy()
        y_in, y_out = y[sp.train].cpu().numpy(), y[sp.test].cpu().numpy()
        return ModelOutputs(
            probs_in=p_in,
            labels_in=y_in,
            rows_in=np.asarray(sp.train),
            flipped_in=np.asarray(flipped[sp.train]),
            probs_out=p_out,
            labels_out=y_out,
            rows_out=np.asarray(sp.test),
            flipped_out=np.asarray(flipped[sp.test]),
            train_acc=float((p_in.argmax(1) == y_in).mean()),
            test_acc=float((p_out.argmax(1) == y_out).mean()),
        )

    def dense(self, role: str) -> tuple[nn.Module, dict, ModelOutputs]:
        """The role's dense (original) model, trained with Base and early stopping, cached."""
        spec = self._dense_spec(role)

        def compute() -> dict:
            s, sp = self.settings, self.split(role)
            model = self.new_model(role)
            res, _ = fit(
                model,
                self.pool.x,
                self.pool.y,
                sp.train,
                sp.dev,
                config=self._train_config(role, max_epochs=s.max_epochs),
                desc=f"{role} dense",
            )
            model.load_state_dict(res.best_state)
            state = {k: v.cpu() for k, v in model.state_dict().items()}
            return {"state": state, "summary": res.summary(), "outputs": self.outputs(model, role)}

        entry, hit = self.cache.get_or_compute("dense", spec, compute)
        model = self.new_model(role)
        model.load_state_dict(entry["state"])
        log.info("%s dense model (%s)", role, "cache" if hit else "trained")
        return model, entry["summary"], entry["outputs"]

    def pruned(
        self,
        role: str,
        *,
        one_shot: bool = False,
        approach: str | None = None,
        rate: float | None = None,
        defense: str = "base",
        hooks_factory=Hooks,
        defense_spec: dict | None = None,
        defense_report=None,
        use_cache: bool = True,
    ) -> PrunedRun:
        """Prune the role's dense model iteratively (or one-shot) with a defense, cached.

        ``defense``/``defense_spec`` name the defense and exactly its settings; they enter the cache
        key, and ``hooks_factory`` builds its training hooks (Base by default).
        ``defense_report()`` (optional) is called after pruning; its dict is stored in the summary
        under ``"defense"`` (e.g. DP-SGD's ε). ``use_cache=False`` retrains and overwrites the
        entry (the time-cost notebook measures uncached runs).
        """
        s = self.settings
        approach = approach or s.pruning_approach
        rate = s.pruning_rate if rate is None else rate
        rounds = 1 if one_shot else s.pruning_rounds
        ft = self._train_config(role, max_epochs=s.finetune_epochs)
        spec = self._pruned_spec(role, one_shot, approach, rate, defense, defense_spec)

        key = self.cache.key("pruned", spec)
        # Resume points, one entry per finished round (never overwritten, so a kill while one is
        # written leaves the previous one intact); see prune_and_finetune.
        round_keys = [self.cache.key("round", {"pruned": key, "round": k}) for k in range(rounds)]

        def save_round(state: dict) -> None:
            entry = {**state, "per_round": list(per_round)}
            self.cache.save("round", round_keys[state["round"]], entry, {"pruned": key})

        def latest_round() -> dict | None:
            for k in reversed(range(rounds)):
                if self.cache.contains("round", round_keys[k]):
                    entry = self.cache.load("round", round_keys[k])
                    if entry is not None:
                        return entry
            return None

        def compute() -> dict:
            model, _, _ = self.dense(role)
            sp = self.split(role)
            resume = latest_round() if use_cache else None
            per_round[:] = resume.pop("per_round") if resume is not None else []
            res = prune_and_finetune(
                model,
                self.pool.x,
                self.pool.y,
                sp.train,
                sp.dev,
                arch=s.arch,
                approach=approach,
                rate=rate,
                rounds=rounds,
                config=ft,
                hooks_factory=hooks_factory,
                on_round_end=lambda k, m: per_round.append(self.outputs(m, role)),
                checkpoint=save_round,
                resume=resume,
                desc=f"{role} {'one-shot' if one_shot else 'iterative'}",
            )
            state = {k: v.cpu() for k, v in model.state_dict().items()}
            summary = res.summary()
            if defense_report is not None:
                summary["defense"] = defense_report()
            return {
                "state": state,
                "summary": summary,
                "final": self.outputs(model, role),
                "per_round": list(per_round),
            }

        per_round: list[ModelOutputs] = []
        if use_cache:
            entry, hit = self.cache.get_or_compute("pruned", spec, compute)
        else:
            entry, hit = compute(), False
            self.cache.save("pruned", key, entry, spec)
        for k in round_keys:  # the finished run supersedes its resume points
            self.cache.drop("round", k)
        log.info("%s pruned model (%s)", role, "cache" if hit else "trained")
        return PrunedRun(
            final=entry["final"],
            per_round=entry["per_round"],
            summary=entry["summary"],
            state=entry["state"],
        )

    def memscores(self):
        """Mem-scores of the training pool (:func:`wemem.memorization.memscores.compute`, cached)."""
        if getattr(self, "_memscores", None) is None:
            from wemem.memorization import memscores

            self._memscores = memscores.compute(self)
        return self._memscores

    def defended(
        self, role: str, defense: str, *, one_shot: bool = False, use_cache: bool = True, **settings
    ) -> PrunedRun:
        """Prune the role's dense model with a named defense (victim and shadows alike: the
        adaptive attacker's shadows use the same defense and settings, spec §6.3).

        ``settings`` are the defense's own (e.g. ``width``, ``step``, ``tau``, ``lambda_r``); they
        and, for the WeMem methods, a digest of the mem-scores enter the cache key.
        """
        spec, factory, report = self._defense_parts(defense, one_shot, settings)
        return self.pruned(
            role,
            one_shot=one_shot,
            defense=defense,
            hooks_factory=factory,
            defense_spec=spec,
            defense_report=report,
            use_cache=use_cache,
        )

    def _defense_parts(self, defense: str, one_shot: bool, settings: dict) -> tuple:
        """(cache-key spec, hooks factory, report function or None) of a named defense."""
        from wemem import defenses
        from wemem.defenses.baseline_catalog import BASELINES, baseline_factory

        settings = dict(settings)
        if defense in BASELINES:
            if defense == "dp":  # the DP budget spans every round that shares the optimizer
                from wemem.defenses.dp import check_settings

                check_settings(arch=self.settings.arch, norm=self.settings.norm)
                rounds = 1 if one_shot else self.settings.pruning_rounds
                settings.setdefault("epochs_planned", rounds * self.settings.finetune_epochs)
            return baseline_factory(defense, **settings)
        spec, factory = defenses.defense_spec(defense, **settings), Hooks
        if defense != "base":
            ms = self.memscores()
            labels = self.pool.y[: self.pool.n_train].cpu().numpy()
            factory = defenses.make_hooks_factory(
                defense, scores=ms.score, labels=labels, **settings
            )
            spec = {**spec, "memscores": hashlib.sha256(ms.score.tobytes()).hexdigest()}
        return spec, factory, None

    def prefetch(self, requests) -> int:
        """Train the requests' missing cache entries in parallel when the executor is Ray
        (:mod:`wemem.experiment.executor`); a no-op locally. Returns how many trainings were submitted."""
        from wemem.experiment import executor

        return executor.prefetch(self, list(requests))

    def load_pruned_model(self, run: PrunedRun, role: str) -> nn.Module:
        model = self.new_model(role)
        model.load_state_dict(run.state)
        return model

    def test_accuracy(self, model: nn.Module, role: str = "victim") -> float:
        return accuracy(model, self.pool.x, self.pool.y, torch.as_tensor(self.split(role).test))


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
