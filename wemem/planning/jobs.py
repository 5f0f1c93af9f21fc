"""Model trainings as countable jobs: the job of each training kind.

A :class:`Job` is one group of identical trainings (victim and shadows, K mem-score models, one
attack model). The builders here follow the code paths they count (:mod:`wemem.experiment.replicate`,
:mod:`wemem.memorization.memscores`, :mod:`wemem.experiment.adaptive`) without loading any data: sizes
come from the run's geometry (:mod:`wemem.planning.geometry`). Every cached
model is an :class:`~wemem.planning.entries.Entry` whose spec is the real cache-key spec with
placeholders for the data, so a batch estimate counts it once.
:mod:`wemem.planning.workload` composes these into per-notebook plans.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any

from wemem.attacks.suite import CLASSIFIER_ATTACKS, SENSITIVITY_ATTACKS
from wemem.defenses.baselines import ADVHooks
from wemem.defenses.catalog import WINDOW_ORDER
from wemem.defenses.config import BASE, DefenseConfig
from wemem.experiment.keys import defense_settings
from wemem.planning import entries as E
from wemem.planning.geometry import Ctx, reference_names, role_index, role_names

SENSITIVITY_PASSES = E.SENSITIVITY_M + 1  # m perturbed copies + the clean input
#: ADV's defaults: inference-model steps before every ``attack_every``-th classifier step
_ADV = {k: v.default for k, v in inspect.signature(ADVHooks).parameters.items()}
DP_FACTOR = {"fc": 2.0, "cnn": 2.6}  # ghost-clipping step / Base step, benchmarks/dp_overhead.py


@dataclass(frozen=True)
class Job:
    """One group of identical model trainings (or forward-only passes when ``samples == 0``).

    ``samples``: training rows per epoch per model (mean over epochs for windows); ``epochs``: an
    upper bound per model; ``eval_samples``: forward-only rows per model (dev accuracy every epoch,
    per-round outputs, sensitivity); ``cost_factor`` scales the training compute (DP-SGD, ADV's
    extra forward passes); ``vectorized``: the K models train in one stacked step (mem-score
    ensembles); ``cache_keys``: one per model, empty when never cached; ``fresh``: retrained even
    when cached (notebook 10 times uncached runs) but still filling the cache; ``entries``: the
    cache entries the job reads or writes (:mod:`wemem.planning.entries`).
    """

    what: str
    arch: str  # fc | resnet18 | vgg16bn | densenet121 | attack_mlp | samia | shokri
    width: float
    input_shape: tuple[int, ...]
    num_classes: int
    n_models: int
    samples: int
    epochs: int
    eval_samples: int = 0
    batch_size: int = 128
    stem_maxpool: bool = True
    cost_factor: float = 1.0
    vectorized: bool = False
    early_stopping: str = ""  # "dense" | "finetune" | "" (fixed epochs)
    cache_keys: tuple[str, ...] = ()
    fresh: bool = False
    entries: tuple[E.Entry, ...] = ()

    @property
    def model_epochs(self) -> int:
        return self.n_models * self.epochs

    @property
    def sample_epochs(self) -> int:
        return self.n_models * self.samples * self.epochs

    @property
    def steps(self) -> int:
        """Optimizer steps of all models together (K stacked models count K times)."""
        return self.n_models * self.epochs * math.ceil(self.samples / self.batch_size)


def _who(roles: list[str]) -> str:
    n_ref = sum(r.startswith("ref") for r in roles)
    n_sh = sum(r.startswith("shadow") for r in roles)
    parts = (["victim"] if "victim" in roles else []) + ([f"{n_sh} shadows"] if n_sh else [])
    return "+".join(parts + ([f"{n_ref} LiRA references"] if n_ref else []))


# ----------------------------------------------------------------------------- model jobs


def _model_job(c: Ctx, what: str, n: int, **kw: Any) -> Job:
    s = c.s
    return Job(
        what=what,
        arch=s.arch,
        width=s.width,
        input_shape=c.input_shape,
        num_classes=c.num_classes,
        n_models=n,
        batch_size=s.batch_size,
        stem_maxpool=s.stem_maxpool,
        **kw,
    )


def _dense(c: Ctx, role: str, seed: int | None) -> E.Entry:
    seed = c.seed if seed is None else seed
    return E.dense_entry(c.s, role, role_index(role, c.s, seed), seed=seed)


def dense_jobs(c: Ctx, roles: list[str], *, seed: int | None = None) -> list[Job]:
    m, dev, t = c.sizes["victim"]
    models = tuple(_dense(c, r, seed) for r in roles)
    return [
        _model_job(
            c,
            f"{_who(roles)} dense",
            len(roles),
            samples=max(c.role_sizes(r)[0] for r in roles),
            epochs=c.s.max_epochs,
            eval_samples=c.s.max_epochs * dev + m + t,
            early_stopping="dense",
            cache_keys=tuple(e.key for e in models),
            entries=models,
        )
    ]


def memscores(c: Ctx, *, method: str | None = None, models: int | None = None) -> E.Entry:
    """The mem-scores entry of :func:`wemem.memorization.memscores.compute` (settings' defaults)."""
    s = c.s
    return E.memscores_entry(
        s, method=method or s.memscore_method, models=models or s.memscore_models
    )


def memscore_jobs(c: Ctx, *, method: str | None = None, models: int | None = None) -> list[Job]:
    s = c.s
    method, k = method or s.memscore_method, models or s.memscore_models
    if method == "released":
        return []
    n = c.n_train
    rows = math.floor(s.memscore_ratio * n + 0.5) if method == "fz" else math.ceil(n / k)
    recal = rows if s.arch != "fc" else 0  # BatchNorm statistics recomputed on the member's rows
    ensemble = memscores(c, method=method, models=k)
    return [
        _model_job(
            c,
            f"mem-scores {method} K={k}",
            k,
            samples=rows,
            epochs=s.memscore_epochs,
            eval_samples=n + recal,
            vectorized=True,
            cache_keys=tuple(f"{ensemble.key}/{i}" for i in range(k)),
            entries=(ensemble,),
        )
    ]


def _round_work(c: Ctx, defense: str, st: dict, ft: int) -> tuple[int, int]:
    """(epochs, training rows) of one pruning round of a defense, upper bounds."""
    m = c.sizes["victim"][0]
    if defense not in WINDOW_ORDER:
        return ft, ft * m
    n_c, w, step = Fraction(m, c.num_classes), st["width"], st["step"]  # exact: no float drift
    epochs = rows = 0
    while epochs < ft and epochs * step < n_c:
        rows += c.num_classes * min(w, n_c - epochs * step)
        epochs += 1
    return epochs, math.ceil(rows)


def for_defense(c: Ctx, name: str) -> Ctx:
    """The context of the models defense ``name``'s rows train: ``c``, or for DP-SGD on a
    BatchNorm CNN its GroupNorm twin's (:meth:`wemem.experiment.replicate.Experiment.for_defense`,
    :func:`wemem.experiment.keys.defense_settings`)."""
    s = defense_settings(c.s, name)
    return c if s is c.s else replace(c, s=s)


def _pruned_entries(
    c: Ctx, roles: list[str], config: DefenseConfig, *, one_shot: bool, seed: int | None
) -> tuple[E.Entry, ...]:
    """The pruning runs of ``roles`` with ``config``, on the models of :func:`for_defense` (the
    mem-scores are the run's, ``c``'s, for a twin too)."""
    cd = for_defense(c, config.name)
    s = cd.s
    spec = E.defense_key_spec(
        s, config.name, config.settings, one_shot=one_shot, memscores_key=memscores(c).key
    )
    return tuple(
        E.pruned_entry(
            s,
            r,
            role_index(r, s, c.seed if seed is None else seed),
            dense=_dense(cd, r, seed),
            seed=c.seed if seed is None else seed,
            one_shot=one_shot,
            defense=config.name,
            defense_spec=spec,
        )
        for r in roles
    )


def _adv_job(c: Ctx, name: str, roles, k_every: float, keys, samples, epochs, fresh) -> Job:
    """ADV's inference model: ``k_every`` steps on 2B rows (member and reference batches) per
    classifier step; part of the pruned entry."""
    return Job(
        f"ADV inference model ({name})",
        "attack_mlp",
        1.0,
        (2 * c.num_classes,),
        2,
        len(roles),
        samples=math.ceil(samples * (1 + 2 * k_every)),
        epochs=epochs,
        batch_size=2 * c.s.batch_size,
        early_stopping="finetune",
        cache_keys=tuple(k + "/adv" for k in keys),
        fresh=fresh,
    )


def pruned_jobs(
    c: Ctx,
    roles: list[str],
    config: DefenseConfig = BASE,
    *,
    one_shot: bool | None = None,
    seed: int | None = None,
    fresh: bool = False,
    what: str = "",
) -> list[Job]:
    """Prune ``roles``' dense models with ``config`` (iteratively, or one-shot: by default
    ``config.one_shot``); ``what`` names the job (default: the config's setting)."""
    s = c.s
    one_shot = config.one_shot if one_shot is None else one_shot
    rounds = 1 if one_shot else s.pruning_rounds
    per_round, rows = _round_work(c, config.name, dict(config.settings), s.finetune_epochs)
    epochs, samples = rounds * per_round, math.ceil(rows / max(per_round, 1))
    m, dev, t = c.sizes["victim"]
    models = _pruned_entries(c, roles, config, one_shot=one_shot, seed=seed)
    keys = tuple(e.key for e in models)
    name = what or config.setting
    factor, extra = 1.0, []
    if config.name == "dp":
        factor = DP_FACTOR["fc" if s.arch == "fc" else "cnn"]
        samples = math.ceil(samples * float(config.settings.get("passes_per_epoch", 1.0)))
    if config.name == "adv":
        st = {**_ADV, **config.settings}
        k_every = st["k_attack"] / st["attack_every"]
        if st["mode"] == "official":  # one classifier batch per epoch, k attack steps before it
            samples, k_every = min(samples, s.batch_size), st["k_attack"]
        factor = 1 + 2 * k_every / 3  # 2 eval-mode forward passes of B rows per attack step
        extra.append(_adv_job(c, name, roles, k_every, keys, samples, epochs, fresh))
    job = _model_job(
        c,
        f"{_who(roles)} {'one-shot' if one_shot else f'{rounds}-round'} {name}",
        len(roles),
        samples=samples,
        epochs=epochs,
        eval_samples=epochs * dev + (rounds + 1) * (m + t),
        cost_factor=factor,
        early_stopping="finetune",
        cache_keys=keys,
        fresh=fresh,
        entries=models,
    )
    twin = for_defense(c, config.name)
    if twin is not c:  # the twin's dense models, trained by the first of its pruning runs
        extra += dense_jobs(twin, roles, seed=seed)
    return [job, *extra]


def _attack_rows(c: Ctx, roles: list[str], train_max: int | None) -> int:
    """Rows an attack model trains on: every shadow's members and non-members, or at most
    ``train_max`` per side pooled over the shadows."""
    n_sh = len(roles) - 1
    m_s, _, t_s = c.sizes["shadow"]
    per = max(1, train_max // n_sh) if train_max else None
    return n_sh * (min(per, m_s) + min(per, t_s)) if per else n_sh * (m_s + t_s)


def attack_jobs(
    c: Ctx,
    names,
    roles: list[str],
    models: Job,
    *,
    epochs: int,
    train_max: int | None,
    epochs_by: dict | None = None,
    what: str = "",
) -> list[Job]:
    """Attack models of :func:`wemem.experiment.adaptive.evaluate` on the stage whose models (one
    per role, in order) ``models`` trains."""
    n_sh, k = len(roles) - 1, c.num_classes
    m_v, _, t_v = c.sizes["victim"]
    n = _attack_rows(c, roles, train_max)
    jobs = []
    if any(a in SENSITIVITY_ATTACKS for a in names):
        # the victim's every row; a shadow's only the rows its attack models train on
        sens = tuple(
            E.sensitivity_entry(e, r, i, picked=bool(train_max) and i > 0)
            for i, (e, r) in enumerate(zip(models.entries, roles, strict=True))
        )
        rows = m_v + t_v + n
        jobs.append(
            _model_job(
                c,
                f"sensitivity {what}",
                len(roles),
                samples=0,
                epochs=0,
                eval_samples=round(SENSITIVITY_PASSES * rows / len(roles)),
                cache_keys=tuple(e.key for e in sens),
                entries=sens,
            )
        )
    if "lira" in names:
        jobs.append(
            _model_job(
                c, f"LiRA shadow outputs {what}", n_sh, samples=0, epochs=0, eval_samples=m_v + t_v
            )
        )
    dims = {"nn": k, "top3_nn": 3, "cl_nn": 2 * k, "nn_sens": 3 * k}
    for a in (a for a in names if a in CLASSIFIER_ATTACKS):
        arch = "samia" if a == "samia" else "shokri" if a == "shokri" else "attack_mlp"
        shape = (3 * k,) if a == "samia" else (k,) if a == "shokri" else (dims[a],)
        batch = 128 * k if a == "shokri" else 128  # one batched step trains every class's model
        jobs.append(
            Job(
                f"attack model {a} {what}".strip(),
                arch,
                1.0,
                shape,
                k,
                1,
                samples=n,
                epochs=(epochs_by or {}).get(a, epochs),
                eval_samples=m_v + t_v,
                batch_size=batch,
            )
        )
    return jobs


def sweep_jobs(c: Ctx, configs: list[DefenseConfig]) -> list[Job]:
    """:func:`wemem.studies.sweeps.sweep`: every config prunes victim and shadows, then the
    notebook's attacks."""
    roles, p, jobs = role_names(c.s.n_shadows), c.p, []
    for config in configs:
        models = pruned_jobs(c, roles, config)
        jobs += models + attack_jobs(
            c,
            p.get("attacks", ()),
            roles,
            models[0],
            epochs=p.get("attack_epochs", 100),
            train_max=p.get("attack_train_max"),
            what=config.setting,
        )
    return jobs


def reference_jobs(c: Ctx, configs: list[DefenseConfig], stages=("iterative",)) -> list[Job]:
    """Online LiRA's ``lira_refs`` references (:func:`wemem.experiment.references.
    reference_stage`): dense, then pruned like the victim with each config at each stage."""
    roles = reference_names(c.p.get("lira_refs", 0))
    if not roles:
        return []
    jobs = dense_jobs(c, roles)
    for config in configs:
        for stage in (st for st in stages if st != "dense"):
            jobs += pruned_jobs(c, roles, config, one_shot=stage == "one-shot")
    return jobs
