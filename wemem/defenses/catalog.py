"""Defense names → training hooks: one catalog of the WeMem methods and the baselines.

:func:`defense_parts` is the entry point: a name of :data:`wemem.names.DEFENSES` and its settings
(plus what the defense takes from the experiment, :class:`DefenseContext`) give the cache-key spec,
the hooks factory that :func:`wemem.pruning.prune_and_finetune` calls once per pruning round, and
the report function (DP-SGD's ε) or ``None``.

WeMem (spec §2): :func:`make_hooks_factory` turns a name of :data:`WEMEM_DEFENSES` and its settings
into the factory; :func:`defense_spec` returns exactly the settings that matter for that defense
(for cache keys and records), e.g. RSW has no τ. Settings (keyword arguments; those a defense does
not use are accepted and ignored, unknown names are an error):

* ``width``: w >= 1, samples per class and epoch (rsw_*, swmr_*, random_window; required);
* ``step``: s >= 1, the window's slide per epoch (same; required);
* ``mode``: ``per_class`` (default) or ``faithful`` clipping (same);
* ``seed``: seed of the random order (random_window; default 0);
* ``tau``: τ in [0, 1], high-risk is m >= τ (rmr, swmr_*; required);
* ``lambda_r``: λr > 0 (rmr, swmr_*; default 0.1, spec §2.3);
* ``realisation``: ``official`` (default) or ``per_sample`` (rmr, swmr_*);
* ``lambda_g``: λg >= 0 of the per-sample loss (rmr, swmr_* with ``per_sample``; default 5e-4;
  ``official`` uses ``config.weight_decay``).

Baselines (spec §7): PPB, ADV and RelaxLoss (:mod:`wemem.defenses.baselines`) and DP-SGD
(:mod:`wemem.defenses.dp`), built by :func:`baseline_factory`; :data:`BASELINES` lists the
settings each accepts, and the settings given are the defense's cache-key part (see
:func:`baseline_factory` for the exceptions). :func:`resolved_settings` gives every setting that
applies to any defense, defaults filled in (for records and dry-run plans).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from wemem import names
from wemem.defenses.baselines import ADVHooks, PPBHooks, RelaxLossHooks
from wemem.defenses.dp import DELTA_RULE, DPSGDHooks, check_settings, default_delta
from wemem.defenses.methods import REALISATIONS, RMRHooks, RSWHooks, SWMRHooks
from wemem.defenses.primitives import (
    MODES,
    check_choice,
    check_int,
    check_labels,
    check_real,
    check_scores,
)
from wemem.errors import ParamsError
from wemem.training.loop import Hooks

#: Ranking order of each sliding-window defense.
WINDOW_ORDER: dict[str, str] = {
    "rsw_h2l": "H2L",
    "rsw_l2h": "L2H",
    "random_window": "random",
    "swmr_h2l": "H2L",
    "swmr_l2h": "L2H",
}
#: Settings of a window defense that act on training only through the hooks' ``epoch_indices``
#: (ranking and window): pruning runs whose window schedules agree train alike (stages.prune).
WINDOW_SETTINGS = ("order", "width", "step", "mode", "seed")
#: The defenses of :data:`wemem.names.DEFENSES` that this module builds.
WEMEM_DEFENSES = ("base", "rsw_h2l", "rsw_l2h", "rmr", "swmr_h2l", "swmr_l2h", "random_window")
#: Values of the optional settings when omitted.
DEFAULTS: dict[str, Any] = {
    "mode": "per_class",
    "seed": 0,
    "lambda_r": 0.1,
    "realisation": "official",
    "lambda_g": 5e-4,
}
#: Every setting name a WeMem defense knows.
SETTINGS = ("width", "step", "mode", "seed", "tau", "lambda_r", "realisation", "lambda_g")
_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "width": lambda f, v: check_int(f, v, 1),
    "step": lambda f, v: check_int(f, v, 1),
    "mode": lambda f, v: check_choice(f, v, MODES),
    "seed": lambda f, v: check_int(f, v, 0),
    "tau": lambda f, v: check_real(f, v, low=0.0, high=1.0),
    "lambda_r": lambda f, v: check_real(f, v, low=0.0, low_open=True),
    "realisation": lambda f, v: check_choice(f, v, REALISATIONS),
    "lambda_g": lambda f, v: check_real(f, v, low=0.0),
}


def _check_name(name: str) -> None:
    if name not in names.DEFENSES or name not in WEMEM_DEFENSES:
        raise ParamsError(
            f"defense: {name!r} is not a WeMem defense; allowed values are {WEMEM_DEFENSES}"
        )


def _relevant(name: str, realisation: str) -> tuple[str, ...]:
    keys: tuple[str, ...] = ()
    if name in WINDOW_ORDER:
        keys += ("width", "step", "mode")
    if name == "random_window":
        keys += ("seed",)
    if name == "rmr" or name.startswith("swmr_"):
        keys += ("tau", "lambda_r", "realisation")
        if realisation == "per_sample":
            keys += ("lambda_g",)
    return keys


def defense_spec(name: str, **settings: Any) -> dict[str, Any]:
    """Exactly the validated settings that matter for defense ``name`` (a cache-key part).

    Defaults are filled in (so an explicit default and an omitted one give the same spec); window
    methods also record their ranking ``order``. ``base`` gives ``{}``. The mem-scores themselves
    are *not* part of the spec: key them separately (their own cache digest).

    Raises:
        ParamsError: unknown defense or setting, a required setting missing, a value out of range.
    """
    _check_name(name)
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise ParamsError(
            f"defense {name!r}: unknown setting(s) {unknown}; allowed settings are {SETTINGS}"
        )
    merged = {**DEFAULTS, **settings}
    realisation = _CHECKS["realisation"]("realisation", merged["realisation"])
    spec: dict[str, Any] = {}
    if name in WINDOW_ORDER:
        spec["order"] = WINDOW_ORDER[name]
    for key in _relevant(name, realisation):
        if key not in merged:
            raise ParamsError(f"defense {name!r}: setting {key!r} is required; got none")
        spec[key] = _CHECKS[key](key, merged[key])
    return spec


def make_hooks_factory(
    name: str,
    *,
    scores: ArrayLike | None = None,
    labels: ArrayLike | None = None,
    **settings: Any,
) -> Callable[[], Hooks]:
    """A zero-argument factory of fresh hooks for defense ``name`` (one call per pruning round).

    Args:
        name: ``base`` (plain :class:`~wemem.training.loop.Hooks`), ``rsw_h2l``, ``rsw_l2h``, ``rmr``,
            ``swmr_h2l``, ``swmr_l2h`` or ``random_window``.
        scores: (N_pool,) float mem-score of every pool row a model may train on (pool row i ↔
            index i), higher = more memorized; required except for ``base``.
        labels: (N_pool,) int class of every such row (the labels the model trains on).
        **settings: see the module docstring; validated by :func:`defense_spec`.

    Raises:
        ParamsError: as :func:`defense_spec`, or scores/labels missing or malformed.
    """
    spec = defense_spec(name, **settings)
    if name == "base":
        return Hooks
    if scores is None or labels is None:
        raise ParamsError(f"defense {name!r} needs the pool's mem-scores and labels; got None")
    s, y = check_scores(scores), check_labels(labels)
    if s.shape != y.shape:
        raise ParamsError(f"scores and labels: shapes {s.shape} and {y.shape} differ")
    if name == "rmr":
        return functools.partial(RMRHooks, s, y, **spec)
    if name.startswith("swmr_"):
        return functools.partial(SWMRHooks, s, y, **spec)
    return functools.partial(RSWHooks, s, y, **spec)


# ----------------------------------------------------------------------------- baselines

#: defense → (allowed settings, required settings)
BASELINES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ppb": (("beta",), ("beta",)),
    "adv": (("theta", "k_attack", "attack_every", "mode"), ("theta",)),
    "relaxloss": (("alpha", "upper"), ("alpha",)),
    "dp": (
        (
            "noise_multiplier",
            "target_epsilon",
            "max_grad_norm",
            "delta",
            "epochs_planned",
            "lr",
            "mode",
            "passes_per_epoch",
        ),
        (),
    ),
}
_HOOKS = {"ppb": PPBHooks, "adv": ADVHooks, "relaxloss": RelaxLossHooks, "dp": DPSGDHooks}
#: Settings whose default leaves a baseline's cache-key spec as it was before they existed: an
#: omitted setting and an explicit default give the spec without it.
_SPEC_OMITS_DEFAULT = {"adv": {"mode": "nasr"}, "dp": {"passes_per_epoch": 1.0}}
#: DP-SGD settings whose default is resolved at training time (:func:`resolved_settings`).
_DP_RULES = {
    "delta": DELTA_RULE,
    "lr": "config.lr",
    "epochs_planned": "pruning_rounds × finetune_epochs",
}

#: the paper's chosen setting of each baseline (spec §8.2 Fig. 7: β=4, θ=2, σ=0.1, α=1)
PAPER_SETTINGS = {
    "ppb": {"beta": 4.0},
    "adv": {"theta": 2.0},
    "relaxloss": {"alpha": 1.0},
    "dp": {"noise_multiplier": 0.1},
}


def _check_baseline(name: str, settings: Mapping[str, Any]) -> None:
    if name not in BASELINES:
        raise ParamsError(f"defense {name!r}: allowed baselines are {', '.join(BASELINES)}")
    allowed, required = BASELINES[name]
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise ParamsError(f"defense {name!r}: unknown setting(s) {unknown}; allowed: {allowed}")
    missing = [k for k in required if k not in settings]
    if missing:
        raise ParamsError(f"defense {name!r}: setting {missing[0]!r} is required")
    _HOOKS[name](**settings)  # validate now: a bad value fails before any training


def _baseline_spec(name: str, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings given, less those at a default that :data:`_SPEC_OMITS_DEFAULT` names; DP-SGD
    without ``delta`` records the default's rule (:data:`wemem.defenses.dp.DELTA_RULE`)."""
    omit = _SPEC_OMITS_DEFAULT.get(name, {})
    spec = {k: v for k, v in settings.items() if not (k in omit and v == omit[k])}
    if name == "dp" and "delta" not in spec:
        spec["delta"] = DELTA_RULE
    return dict(sorted(spec.items()))


def baseline_factory(name: str, **settings: Any) -> tuple[dict, Callable, Callable | None]:
    """(cache-key spec, hooks factory, report function or None) for a baseline defense.

    The spec is the settings given, except: ADV's ``mode: nasr`` and DP-SGD's ``passes_per_epoch:
    1`` (the defaults) are left out, so the keys of runs that predate these settings stand; DP-SGD
    without ``delta`` records ``delta: "min(1e-5, 0.1/N)"`` (the default's rule).
    """
    _check_baseline(name, settings)
    cls = _HOOKS[name]
    made: dict[str, Any] = {}

    def factory():
        made["hooks"] = cls(**settings)
        return made["hooks"]

    report = None
    if name == "dp":

        def report() -> dict:
            h = made["hooks"]
            return {
                "epsilon": h.epsilon(),
                "delta": h.delta,
                "noise_multiplier": h.noise_multiplier,
                "steps": h.steps,
            }

    return _baseline_spec(name, settings), factory, report


def resolved_settings(
    name: str, settings: Mapping[str, Any], *, n_train: int | None = None
) -> dict[str, Any]:
    """Every setting that applies to defense ``name`` with ``settings``, defaults filled in.

    For records and dry-run plans; values are plain JSON. WeMem methods: :func:`defense_spec`
    (``order``, ``width``, ``step``, window ``mode``, ``tau``, ``lambda_r``, ``realisation``, …);
    ``base``: ``{}``. Baselines (spec §7): every setting of :data:`BASELINES` with its default
    (ADV: ``theta``, ``k_attack`` 7, ``attack_every`` 1, ``mode`` ``nasr``). DP-SGD gives the one of
    ``noise_multiplier`` and ``target_epsilon`` that is set, and rules as strings for defaults
    fixed at training time: ``delta`` = min(1e-5, 0.1/N) (a number when ``n_train`` = N is
    given), ``lr`` = ``"config.lr"``, ``epochs_planned`` = ``"pruning_rounds × finetune_epochs"``.

    Raises:
        ParamsError: an unknown defense or setting, a required one missing, a bad value.
    """
    settings = dict(settings)
    if name not in BASELINES:
        return defense_spec(name, **settings)
    _check_baseline(name, settings)
    allowed = BASELINES[name][0]
    params = inspect.signature(_HOOKS[name]).parameters
    out = {k: settings.get(k, params[k].default) for k in allowed}
    if name == "dp":
        for key, rule in _DP_RULES.items():
            out[key] = settings.get(key, rule)
        if "delta" not in settings and n_train is not None:
            out["delta"] = default_delta(n_train)
        out = {k: v for k, v in out.items() if v is not None}
    return out


# ----------------------------------------------------------------------------- every defense


@dataclass(frozen=True)
class DefenseContext:
    """What a defense takes from the experiment whose models it prunes.

    ``memscores`` and ``labels`` are called only by the WeMem methods (so a baseline sweep never
    computes mem-scores): (N_pool,) float mem-scores of the training pool (pool row i ↔ index i),
    and the (N_pool,) int labels the models train on.
    """

    arch: str
    norm: str
    epochs_planned: int  # fine-tuning epochs of the whole pruning run: rounds × finetune_epochs
    memscores: Callable[[], np.ndarray]
    labels: Callable[[], np.ndarray]


@dataclass(frozen=True)
class DefenseParts:
    """What pruning with a defense needs: its cache-key spec, a zero-argument factory of fresh
    hooks (one call per round) and the report function (called after pruning; DP-SGD's ε) or
    ``None``."""

    spec: dict[str, Any]
    hooks_factory: Callable[[], Hooks]
    report: Callable[[], dict] | None = None
    window: tuple[str, ...] = ()  # spec keys of WINDOW_SETTINGS (window defenses only)


def needs_memscores(name: str) -> bool:
    """Whether defense ``name`` reads the mem-scores (the WeMem methods, not Base or a baseline)."""
    return name != "base" and name not in BASELINES


def defense_parts(name: str, settings: Mapping[str, Any], context: DefenseContext) -> DefenseParts:
    """Defense ``name`` with its ``settings``, ready for pruning.

    The spec is the baseline's settings (DP-SGD's budget spanning every round that shares its
    optimizer: ``epochs_planned`` defaults to ``context.epochs_planned``), or :func:`defense_spec`
    plus, for a WeMem method, the sha256 of the mem-scores.

    Raises:
        ParamsError: an unknown defense or setting, a bad value, DP-SGD on a BatchNorm CNN.
    """
    settings = dict(settings)
    if name in BASELINES:
        if name == "dp":
            check_settings(arch=context.arch, norm=context.norm)
            settings.setdefault("epochs_planned", context.epochs_planned)
        return DefenseParts(*baseline_factory(name, **settings))
    spec = defense_spec(name, **settings)
    if name == "base":
        return DefenseParts(spec, Hooks)
    scores = context.memscores()
    factory = make_hooks_factory(name, scores=scores, labels=context.labels(), **settings)
    digest = hashlib.sha256(scores.tobytes()).hexdigest()
    window = tuple(k for k in WINDOW_SETTINGS if k in spec) if name in WINDOW_ORDER else ()
    return DefenseParts({**spec, "memscores": digest}, factory, window=window)
