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
from wemem.training import (
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
        """A freshly initialised model of the experiment's architecture on its device."""
        s = self.settings
        model = build_model(
            s.arch,
            num_classes=self.pool.num_classes,
            in_channels=self._in_channels,
            in_features=self._in_features,
            width=s.width,
            stem_maxpool=s.stem_maxpool,
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
        return {
            "pool": self.pool.digest,
            "rows": _rows_digest(sp.train, sp.dev),
            "arch": s.arch,
            "width": s.width,
            "stem_maxpool": s.stem_maxpool,
            "train": self._train_config(role, max_epochs=s.max_epochs).__dict__,
        }

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
        spec = {
            "dense": self._dense_spec(role),
            "approach": approach,
            "rate": rate,
            "rounds": rounds,
            "finetune": ft.__dict__,
            "defense": defense,
            "defense_spec": defense_spec or {},
            "eval_rows": _rows_digest(self.split(role).test),
        }

        def compute() -> dict:
            model, _, _ = self.dense(role)
            sp = self.split(role)
            per_round: list[ModelOutputs] = []
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
                "per_round": per_round,
            }

        if use_cache:
            entry, hit = self.cache.get_or_compute("pruned", spec, compute)
        else:
            entry, hit = compute(), False
            self.cache.save("pruned", self.cache.key("pruned", spec), entry, spec)
        log.info("%s pruned model (%s)", role, "cache" if hit else "trained")
        return PrunedRun(
            final=entry["final"],
            per_round=entry["per_round"],
            summary=entry["summary"],
            state=entry["state"],
        )

    def memscores(self):
        """Mem-scores of the training pool (:func:`wemem.memscores.compute`, cached)."""
        if getattr(self, "_memscores", None) is None:
            from wemem import memscores

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
        from wemem import defenses
        from wemem.defenses.baseline_registry import BASELINES, baseline_factory

        if defense in BASELINES:
            if defense == "dp":  # the DP budget spans every round that shares the optimizer
                rounds = 1 if one_shot else self.settings.pruning_rounds
                settings.setdefault("epochs_planned", rounds * self.settings.finetune_epochs)
            spec, factory, report = baseline_factory(defense, **settings)
        else:
            spec, factory, report = defenses.defense_spec(defense, **settings), Hooks, None
        if defense != "base" and defense not in BASELINES:
            ms = self.memscores()
            labels = self.pool.y[: self.pool.n_train].cpu().numpy()
            factory = defenses.make_hooks_factory(
                defense, scores=ms.score, labels=labels, **settings
            )
            spec = {**spec, "memscores": hashlib.sha256(ms.score.tobytes()).hexdigest()}
        return self.pruned(
            role,
            one_shot=one_shot,
            defense=defense,
            hooks_factory=factory,
            defense_spec=spec,
            defense_report=report,
            use_cache=use_cache,
        )

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
