"""Names → hooks for the five existing defenses the paper compares with (spec §7).

Base is the plain training loop; PPB, ADV, RelaxLoss and DP-SGD are hooks in
:mod:`wemem.defenses.baselines` and :mod:`wemem.defenses.dp`. Each entry lists the settings the
defense accepts; the settings given are the defense's cache-key part.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wemem.errors import ParamsError

#: defense → (allowed settings, required settings)
BASELINES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "ppb": (("beta",), ("beta",)),
    "adv": (("theta", "k_attack", "attack_every"), ("theta",)),
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
        ),
        (),
    ),
}

#: the paper's chosen setting of each baseline (spec §8.2 Fig. 7: β=4, θ=2, σ=0.1, α=1)
PAPER_SETTINGS = {
    "ppb": {"beta": 4.0},
    "adv": {"theta": 2.0},
    "relaxloss": {"alpha": 1.0},
    "dp": {"noise_multiplier": 0.1},
}


def baseline_factory(name: str, **settings: Any) -> tuple[dict, Callable, Callable | None]:
    """(cache-key spec, hooks factory, report function or None) for a baseline defense."""
    from wemem.defenses.baselines import ADVHooks, PPBHooks, RelaxLossHooks
    from wemem.defenses.dp import DPSGDHooks

    if name not in BASELINES:
        raise ParamsError(f"defense {name!r}: allowed baselines are {', '.join(BASELINES)}")
    allowed, required = BASELINES[name]
    unknown = sorted(set(settings) - set(allowed))
    if unknown:
        raise ParamsError(f"defense {name!r}: unknown setting(s) {unknown}; allowed: {allowed}")
    missing = [k for k in required if k not in settings]
    if missing:
        raise ParamsError(f"defense {name!r}: setting {missing[0]!r} is required")
    cls = {"ppb": PPBHooks, "adv": ADVHooks, "relaxloss": RelaxLossHooks, "dp": DPSGDHooks}[name]
    cls(**settings)  # validate now: a bad value fails before any training
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

    return dict(sorted(settings.items())), factory, report
