"""WeMem defense names → training hooks, with validated settings and their cache-key spec.

:func:`make_hooks_factory` turns a name of :data:`wemem.names.DEFENSES` that is a WeMem method
(:data:`WEMEM_DEFENSES`) and its settings into the zero-argument factory that
:func:`wemem.pruning.prune_and_finetune` calls once per pruning round; :func:`defense_spec` returns
exactly the settings that matter for that defense (for cache keys and records), e.g. RSW has no τ.

Settings (keyword arguments; those a defense does not use are accepted and ignored, unknown names
are an error):

* ``width``: w >= 1, samples per class and epoch (rsw_*, swmr_*, random_window; required);
* ``step``: s >= 1, the window's slide per epoch (same; required);
* ``mode``: ``per_class`` (default) or ``faithful`` clipping (same);
* ``seed``: seed of the random order (random_window; default 0);
* ``tau``: τ in [0, 1], high-risk is m >= τ (rmr, swmr_*; required);
* ``lambda_r``: λr > 0 (rmr, swmr_*; default 0.1, spec §2.3);
* ``realisation``: ``official`` (default) or ``per_sample`` (rmr, swmr_*);
* ``lambda_g``: λg >= 0 of the per-sample loss (rmr, swmr_* with ``per_sample``; default 5e-4;
  ``official`` uses ``config.weight_decay``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from numpy.typing import ArrayLike

from wemem import names
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
