"""Model trainings as countable jobs: data geometry, cache keys and the job of each training kind.

A :class:`Job` is one group of identical trainings (victim and shadows, K mem-score models, one
attack model). The builders here mirror the code paths they count (:mod:`wemem.experiment.replicate`,
:mod:`wemem.memorization.memscores`, :mod:`wemem.experiment.adaptive`) without loading any data: sizes come from the dataset
registry and the split arithmetic of :mod:`wemem.data.splits`. Every cached model gets a key built
from exactly the settings its cache entry depends on, so a batch estimate counts it once.
:mod:`wemem.planning.workload` composes these into per-notebook plans.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from wemem.attacks.suite import CLASSIFIER_ATTACKS, SENSITIVITY_ATTACKS
from wemem.data.registry import dataset_info
from wemem.defenses.primitives import window_rule
from wemem.names import label
from wemem.params import FIELDS, Settings, validate

SENSITIVITY_PASSES = 11  # m = 10 perturbed copies + the clean input (wemem.attacks.sensitivity)
ADV_K_ATTACK = 7  # ADVHooks' default inference-model steps per classifier step
DP_FACTOR = {"fc": 2.0, "cnn": 2.6}  # ghost-clipping step / Base step, benchmarks/dp_overhead.py
WINDOWED = ("rsw_h2l", "rsw_l2h", "swmr_h2l", "swmr_l2h", "random_window")


@dataclass(frozen=True)
class Job:
    """One group of identical model trainings (or forward-only passes when ``samples == 0``).

    ``samples``: training rows per epoch per model (mean over epochs for windows); ``epochs``: an
    upper bound per model; ``eval_samples``: forward-only rows per model (dev accuracy every epoch,
    per-round outputs, sensitivity); ``cost_factor`` scales the training compute (DP-SGD, ADV's
    extra forward passes); ``vectorized``: the K models train in one stacked step (mem-score
    ensembles); ``cache_keys``: one per model, empty when never cached; ``fresh``: retrained even
    when cached (notebook 10 times uncached runs) but still filling the cache.
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


# ----------------------------------------------------------------------------- data geometry


def _frac(x: float) -> Fraction:
    return Fraction(repr(float(x)))


@dataclass(frozen=True)
class Ctx:
    """A run's settings, the extra notebook parameters and the data geometry they imply."""

    s: Settings
    p: dict[str, Any]
    n_train: int
    n_test: int
    input_shape: tuple[int, ...]
    num_classes: int
    sizes: dict[str, tuple[int, int, int]]  # "victim"/"shadow" -> (members, dev, non-members)

    def role_sizes(self, role: str) -> tuple[int, int, int]:
        return self.sizes["victim" if role == "victim" else "shadow"]

    @property
    def n_c(self) -> float:
        """Members per class of the victim (``defense_eval.class_size``)."""
        return self.sizes["victim"][0] / self.num_classes


def make_ctx(params: dict[str, Any]) -> Ctx:
    s = validate({k: v for k, v in params.items() if k in FIELDS})
    info, opts = dataset_info(s.dataset), dict(s.data_options)
    if s.dataset == "synthetic":
        from wemem.data.tabular import SYNTHETIC_DEFAULTS

        opts = {**SYNTHETIC_DEFAULTS, **opts}
        n, shape, classes = opts["n_samples"], (opts["n_features"],), opts["n_classes"]
    elif s.dataset == "digits":
        n, shape, classes = 1797, info.input_shape, info.num_classes
    if info.pool_sizes is None:  # seeded 80/20 split (wemem.data.tabular.split_pool)
        n_test = math.ceil(Fraction(1, 5) * n)
        n_train = n - n_test
    else:
        (n_train, n_test), shape, classes = info.pool_sizes, info.input_shape, info.num_classes

    def split(half: int) -> tuple[int, int, int]:  # wemem.data.splits._model_split
        held = math.ceil((1 - _frac(s.member_fraction)) * half)
        rest = held + n_test
        test = math.ceil((1 - _frac(s.dev_fraction)) * rest)
        return half - held, rest - test, test

    # P is halved by train_test_split(test_size=ceil(n/2)): the victim's half is the train part
    sizes = {
        "victim": split(n_train - math.ceil(n_train / 2)),
        "shadow": split(math.ceil(n_train / 2)),
    }
    return Ctx(s, params, n_train, n_test, tuple(shape), int(classes), sizes)


# ----------------------------------------------------------------------------- cache keys


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _data_key(c: Ctx) -> str:
    s = c.s
    return _key(s.dataset, dict(s.data_options), s.label_noise, s.noise_seed * (s.label_noise > 0))


def _train_key(c: Ctx, max_epochs: int, seed: int) -> tuple:
    s = c.s
    return (s.lr, s.weight_decay, s.batch_size, max_epochs, s.patience, seed)


def dense_key(c: Ctx, role: str, seed: int) -> str:
    s, idx = c.s, _index(role)
    split = (s.split_seed, s.member_fraction, s.dev_fraction, role)
    # GroupNorm CNNs are other models (Experiment._dense_spec); FC has no normalization layer
    norm = getattr(s, "norm", "batch") if s.arch != "fc" else "batch"
    train = _train_key(c, s.max_epochs, seed * 100 + idx)
    return _key("dense", _data_key(c), s.arch, s.width, s.stem_maxpool, norm, split, train)


def memscores_key(c: Ctx, *, method: str | None = None, models: int | None = None) -> str:
    s = c.s
    method, models = method or s.memscore_method, models or s.memscore_models
    ratio = s.memscore_ratio if method == "fz" else None
    return _key(
        "memscores",
        _data_key(c),
        s.arch,
        s.width,
        s.stem_maxpool,
        s.lr,
        s.weight_decay,
        s.batch_size,
        s.memscore_epochs,
        method,
        models,
        ratio,
    )


def _index(role: str) -> int:
    return 0 if role == "victim" else int(role.removeprefix("shadow")) + 1


def role_names(n_shadows: int, victim: bool = True) -> list[str]:
    return (["victim"] if victim else []) + [f"shadow{i}" for i in range(n_shadows)]


def _who(roles: list[str]) -> str:
    n_sh = sum(r != "victim" for r in roles)
    parts = (["victim"] if "victim" in roles else []) + ([f"{n_sh} shadows"] if n_sh else [])
    return "+".join(parts)


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


def dense_jobs(c: Ctx, roles: list[str], *, seed: int = 0) -> list[Job]:
    m, dev, t = c.sizes["victim"]
    return [
        _model_job(
            c,
            f"{_who(roles)} dense",
            len(roles),
            samples=max(c.role_sizes(r)[0] for r in roles),
            epochs=c.s.max_epochs,
            eval_samples=c.s.max_epochs * dev + m + t,
            early_stopping="dense",
            cache_keys=tuple(dense_key(c, r, seed) for r in roles),
        )
    ]


def memscore_jobs(c: Ctx, *, method: str | None = None, models: int | None = None) -> list[Job]:
    s = c.s
    method, k = method or s.memscore_method, models or s.memscore_models
    if method == "released":
        return []
    n = c.n_train
    rows = math.floor(s.memscore_ratio * n + 0.5) if method == "fz" else math.ceil(n / k)
    recal = rows if s.arch != "fc" else 0  # BatchNorm statistics recomputed on the member's rows
    return [
        _model_job(
            c,
            f"mem-scores {method} K={k}",
            k,
            samples=rows,
            epochs=s.memscore_epochs,
            eval_samples=n + recal,
            vectorized=True,
            cache_keys=tuple(f"{memscores_key(c, method=method, models=k)}/{i}" for i in range(k)),
        )
    ]


def window_grid(c: Ctx, widths=(), steps=()) -> list[dict]:
    """``wemem.studies.defense_eval.window_grid`` on the planned class size (no data needed)."""
    if widths:
        return [
            {"width": int(w), "step": int(st)}
            for w in sorted(widths, reverse=True)
            for st in sorted(steps)
        ]
    out = []
    for f in (2 / 3, 4 / 9, 2 / 9):
        w, large, small = window_rule(round(c.n_c), fraction=f)
        out += [{"width": w, "step": small}, {"width": w, "step": large}]
    return out


def _round_work(c: Ctx, defense: str, st: dict, ft: int) -> tuple[int, int]:
    """(epochs, training rows) of one pruning round of a defense, upper bounds."""
    m = c.sizes["victim"][0]
    if defense not in WINDOWED:
        return ft, ft * m
    n_c, w, step = Fraction(m, c.num_classes), st["width"], st["step"]  # exact: no float drift
    epochs = rows = 0
    while epochs < ft and epochs * step < n_c:
        rows += c.num_classes * min(w, n_c - epochs * step)
        epochs += 1
    return epochs, math.ceil(rows)


def tau_key(c: Ctx, *, tau: float | None = None, fraction: float | None = None) -> str:
    """τ as the cache sees it: a raw value, or the quantile of these mem-scores."""
    return f"raw {tau}" if tau is not None else f"quantile {fraction} of {memscores_key(c)}"


def pruned_jobs(
    c: Ctx,
    roles: list[str],
    defense: str = "base",
    st: dict | None = None,
    *,
    one_shot: bool = False,
    seed: int = 0,
    fresh: bool = False,
    what: str = "",
) -> list[Job]:
    """Prune ``roles``' dense models with ``defense`` (settings ``st``; τ given as :func:`tau_key`)."""
    s, st = c.s, dict(st or {})
    rounds = 1 if one_shot else s.pruning_rounds
    if defense == "dp":
        st.setdefault("epochs_planned", rounds * s.finetune_epochs)
    if defense in (*WINDOWED, "rmr"):  # WeMem methods: the mem-scores' digest enters the key
        st["memscores"] = memscores_key(c)
    per_round, rows = _round_work(c, defense, st, s.finetune_epochs)
    epochs, samples = rounds * per_round, math.ceil(rows / max(per_round, 1))
    m, dev, t = c.sizes["victim"]
    factor, extra = 1.0, []
    cnn = "fc" if s.arch == "fc" else "cnn"
    if defense == "dp":
        factor = DP_FACTOR[cnn]
    keys = tuple(
        _key(
            "pruned",
            dense_key(c, r, seed),
            s.pruning_approach,
            s.pruning_rate,
            rounds,
            _train_key(c, s.finetune_epochs, seed * 100 + _index(r)),
            defense,
            st,
        )
        for r in roles
    )
    name = what or f"{label(defense)} {fmt_settings(st)}".strip()
    stage = "one-shot" if one_shot else f"{rounds}-round"
    if defense == "adv":
        k_every = ADV_K_ATTACK / st.get("attack_every", 1)
        factor = 1 + 2 * k_every / 3  # 2 eval-mode forward passes of B rows per attack step
        extra.append(
            Job(
                f"ADV inference model ({name})",
                "attack_mlp",
                1.0,
                (2 * c.num_classes,),
                2,
                len(roles),
                samples=math.ceil(samples * (1 + 2 * k_every)),
                epochs=epochs,
                batch_size=2 * s.batch_size,
                early_stopping="finetune",
                cache_keys=tuple(k + "/adv" for k in keys),
                fresh=fresh,
            )
        )
    job = _model_job(
        c,
        f"{_who(roles)} {stage} {name}",
        len(roles),
        samples=samples,
        epochs=epochs,
        eval_samples=epochs * dev + (rounds + 1) * (m + t),
        cost_factor=factor,
        early_stopping="finetune",
        cache_keys=keys,
        fresh=fresh,
    )
    return [job, *extra]


def fmt_settings(st: dict) -> str:
    shown = {k: v for k, v in st.items() if k not in ("memscores", "epochs_planned")}
    return " ".join(
        f"{k}={v}" if not str(v).startswith("quantile") else f"{k}@{str(v).split()[1]}"
        for k, v in shown.items()
    )


def attack_jobs(
    c: Ctx,
    names,
    roles: list[str],
    model_keys: tuple[str, ...],
    *,
    epochs: int,
    train_max: int | None,
    epochs_by: dict | None = None,
    what: str = "",
) -> list[Job]:
    """Attack models of :func:`wemem.experiment.adaptive.evaluate` on the stage whose models are ``roles``."""
    n_sh, k = len(roles) - 1, c.num_classes
    m_s, _, t_s = c.sizes["shadow"]
    m_v, _, t_v = c.sizes["victim"]
    per = max(1, train_max // n_sh) if train_max else None
    n = n_sh * (min(per, m_s) + min(per, t_s)) if per else n_sh * (m_s + t_s)
    jobs = []
    if any(a in SENSITIVITY_ATTACKS for a in names):
        eval_rows = SENSITIVITY_PASSES * (m_v + t_v)
        jobs.append(
            _model_job(
                c,
                f"sensitivity {what}",
                len(roles),
                samples=0,
                epochs=0,
                eval_samples=eval_rows,
                cache_keys=tuple(x + "/sens" for x in model_keys),
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


def stage_jobs(
    c: Ctx, roles, defense="base", st=None, *, one_shot=False, seed=0, what=""
) -> list[Job]:
    return dense_jobs(c, roles, seed=seed) + pruned_jobs(
        c, roles, defense, st, one_shot=one_shot, seed=seed, what=what
    )


def sweep_jobs(c: Ctx, configs: list[tuple[str, dict, str]], *, one_shot_of=None) -> list[Job]:
    """``defense_eval.sweep``: every config prunes victim+shadows, then the notebook's attacks."""
    roles, p, jobs = role_names(c.s.n_shadows), c.p, []
    for defense, st, tag in configs:
        one_shot = bool(one_shot_of and one_shot_of(tag))
        models = pruned_jobs(c, roles, defense, st, one_shot=one_shot, what=tag)
        jobs += models + attack_jobs(
            c,
            p.get("attacks", ()),
            roles,
            models[0].cache_keys,
            epochs=p.get("attack_epochs", 100),
            train_max=p.get("attack_train_max"),
            what=tag,
        )
    return jobs
