"""``wemem reproduce --dry-run --json``: the resolved plan of a batch as one JSON document.

For every run of :func:`wemem.batch.runner.plan` (skipped ones too, with their ``action``): the
notebook, run name, dataset and architecture, the attacks it runs and those averaged for paper
comparisons, and every defense setting it trains, as the cost plan counts them
(:func:`wemem.planning.workload.planned_configs`: the notebooks' own config builders on a stand-in
with no data). Each setting's ``settings`` are fully resolved
(:func:`wemem.defenses.catalog.resolved_settings`, defaults filled in); a τ that only the mem-scores
can give is ``null`` and its ``tau_rule`` (:func:`wemem.studies.sweeps.run_tau_rule`) says how the
run picks it. Schema (README, *The resolved plan as JSON*)::

    {"profile": P, "runs": [{"notebook", "run", "action", "dataset", "arch", "attacks",
      "paper_mean_attacks", "configs": [{"defense", "setting", "norm", "settings", "tau_rule"}]}]}
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from wemem.defenses.catalog import resolved_settings
from wemem.defenses.config import DefenseConfig
from wemem.experiment.keys import defense_settings
from wemem.memorization.tau import TauRule
from wemem.names import PAPER_ATTACKS
from wemem.params import Settings
from wemem.planning.entries import RAMP_N, tau_placeholder
from wemem.planning.workload import planned_configs
from wemem.studies.sweeps import run_tau_rule

_QUANTILE = "<tau quantile "
#: The run parameter holding the high-risk share of τ's quantile rule, newest name first.
SHARE_PARAMS = ("tau_share", "tau_fraction")


def plain(value: Any) -> Any:
    """``value`` as plain JSON: mappings and sequences recursively, numpy scalars as Python
    numbers, a non-finite float as ``None``, anything else unknown as its ``str``."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if hasattr(value, "item"):  # numpy scalar
        return plain(value.item())
    return str(value)


def _run_share(p: Mapping[str, Any]) -> float | None:
    for key in SHARE_PARAMS:
        if isinstance(p.get(key), int | float) and not isinstance(p.get(key), bool):
            return float(p[key])
    return None


def tau_and_rule(
    s: Settings, tau: Any, run_share: float | None
) -> tuple[float | None, dict[str, Any]]:
    """(τ for ``settings``, its rule as JSON) of a config's ``tau``: a quantile τ (a placeholder, or
    the τ the stand-in's ramp gives for a share) is ``None`` with the run's quantile rule at that
    share (the run's ``tau_share`` where it is that share); a raw τ is itself, rule ``raw``."""
    held = tau_placeholder(tau)
    if isinstance(held, str) and held.startswith(_QUANTILE):
        share = float(held.removeprefix(_QUANTILE).removesuffix(">"))
        if run_share is not None and abs(run_share - share) <= 1 / RAMP_N:
            share = run_share
        return None, run_tau_rule(s, share).to_json()
    return float(held), TauRule("raw", value=float(held)).to_json()


def config_norm(s: Settings, name: str) -> str:
    """The normalisation of the models that defense ``name`` trains (``none`` for fc): the run's
    ``norm``, or DP-SGD's on a BatchNorm CNN (:func:`wemem.experiment.keys.defense_settings`,
    what :meth:`wemem.experiment.replicate.Experiment.for_defense` trains)."""
    return "none" if s.arch == "fc" else defense_settings(s, name).norm


#: Catalog setting names shown under the plan's own names where they would be ambiguous (a window's
#: clipping ``mode`` and ADV's ``mode``) or where the paper names them otherwise (σ).
PLAN_NAMES: dict[str, dict[str, str]] = {
    "window": {"mode": "window_mode"},
    "adv": {"mode": "adv_mode"},
    "dp": {
        "noise_multiplier": "sigma",
        "passes_per_epoch": "dp_passes_per_epoch",
        "mode": "clipping_mode",
    },
}


def plan_names(name: str, resolved: Mapping[str, Any]) -> dict[str, Any]:
    """``resolved`` settings of defense ``name`` under :data:`PLAN_NAMES` (order kept)."""
    kind = "window" if "order" in resolved else name
    rename = PLAN_NAMES.get(kind, {})
    return {rename.get(k, k): v for k, v in resolved.items()}


def config_entry(config: DefenseConfig, s: Settings, run_share: float | None) -> dict[str, Any]:
    """One trained defense setting: catalog name, display label, norm, resolved settings, τ rule."""
    settings, tau, rule = dict(config.settings), None, None
    if "tau" in settings:
        tau, rule = tau_and_rule(s, settings["tau"], run_share)
        settings["tau"] = 0.5 if tau is None else tau  # validated in place of the unknown τ
    resolved = resolved_settings(config.name, settings, n_train=None)
    if rule is not None and "tau" in resolved:
        resolved["tau"] = tau
    return plain(
        {
            "defense": config.name,
            "setting": config.setting,
            "norm": config_norm(s, config.name),
            "settings": plan_names(config.name, resolved),
            "tau_rule": rule,
        }
    )


def run_entry(row: Mapping[str, Any]) -> dict[str, Any]:
    """One run of :func:`wemem.batch.runner.plan` (its ``stem``, ``run_name``, ``action``,
    ``params``) with its attacks and trained defense settings (each distinct one once, in order)."""
    p = row["params"]
    c, configs = planned_configs(row["stem"], p)
    attacks = [str(a) for a in p.get("attacks") or ()]
    entries: list[dict[str, Any]] = []
    if c is not None:
        share = _run_share(c.p)
        for config in configs:
            e = config_entry(config, c.s, share)
            if e not in entries:
                entries.append(e)
    return plain(
        {
            "notebook": row["stem"],
            "run": row["run_name"],
            "action": row["action"],
            "dataset": c.s.dataset if c is not None else p.get("dataset"),
            "arch": c.s.arch if c is not None else p.get("arch"),
            "attacks": attacks,
            "paper_mean_attacks": [a for a in PAPER_ATTACKS if a in attacks],
            "configs": entries,
        }
    )


def plan_document(rows: list[Mapping[str, Any]], *, profile: str) -> dict[str, Any]:
    """``{"profile": profile, "runs": [...]}``: :func:`run_entry` of every row, in batch order."""
    return {"profile": profile, "runs": [run_entry(r) for r in rows]}


def dumps(document: Mapping[str, Any]) -> str:
    """The document as indented JSON (UTF-8 labels kept; NaN is an error, never written)."""
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False)
