"""The cache entries a plan expects, keyed by the real key specs with placeholders for the data.

Every spec here comes from the function the experiment uses (:mod:`wemem.experiment.keys` for dense
and pruned models, :func:`wemem.defenses.catalog.defense_parts` for a defense's part,
:mod:`wemem.memorization.memscores` for mem-scores), called without data: what only data could give
(the pool's digest, a split's row digests, the mem-scores' digest, a quantile τ, a model's weights)
is a readable placeholder that says what it stands for, so that two runs training the same model
get the same spec and the same key, and two different models never do.

:func:`canonical` puts a planned spec and a spec a real run logged (:mod:`wemem.cache` sidecars) in
one comparable form: every data-dependent field becomes ``<field>``.
"""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np

from wemem.cache import Cache
from wemem.defenses.catalog import DefenseContext, defense_parts
from wemem.experiment import adaptive, keys
from wemem.io import canonical_json
from wemem.memorization import memscores
from wemem.params import Settings

#: What :func:`wemem.experiment.adaptive.add_sensitivity` records besides the model and its rows,
#: its defaults: m perturbed copies at scale eps, seeded by the evaluation's seed (the default of
#: :func:`wemem.experiment.adaptive.evaluate`) plus the role's index.
_SENSITIVITY = inspect.signature(adaptive.add_sensitivity).parameters
SENSITIVITY_M, SENSITIVITY_EPS = _SENSITIVITY["m"].default, _SENSITIVITY["eps"].default
EVAL_SEED = inspect.signature(adaptive.evaluate).parameters["seed"].default

#: Per kind, the fields (paths into the spec) whose values only data can give.
DATA_FIELDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "dense": (("pool",), ("rows",)),
    "pruned": (
        ("dense", "pool"),
        ("dense", "rows"),
        ("eval_rows",),
        ("defense_spec", "memscores"),
        ("defense_spec", "tau"),
    ),
    "memscores": (("pool",),),
    "sensitivity": (("model",), ("rows_in",), ("rows_out",), ("picked",)),
}

_KEYS = Cache(".")  # only its key function: a digest of kind, version, format and spec


@dataclass(frozen=True)
class Entry:
    """One cache entry a plan reads or writes: its kind, key and spec (placeholders for data)."""

    kind: str
    key: str
    spec: dict = field(compare=False, hash=False, repr=False)


def entry(kind: str, spec: dict) -> Entry:
    """The entry of ``spec``, keyed as :meth:`wemem.cache.Cache.key` keys it."""
    return Entry(kind, _KEYS.key(kind, spec), spec)


# ----------------------------------------------------------------------------- placeholders


def pool_placeholder(s: Settings) -> str:
    """The pool's digest: dataset, options and label noise (the noise seed only with noise)."""
    seed = s.noise_seed if s.label_noise > 0 else None
    options = canonical_json(dict(s.data_options))
    return f"<pool {s.dataset} {options} label_noise={s.label_noise} noise_seed={seed}>"


def rows_placeholder(s: Settings, role: str, part: str) -> str:
    """A split's row digest (:func:`wemem.experiment.keys.rows_digest`) of ``role``'s ``part``."""
    split = f"seed={s.split_seed} members={s.member_fraction} dev={s.dev_fraction}"
    return f"<rows {part} of {role}, split {split}>"


#: The mem-scores a :class:`~wemem.planning.replicate.PlanReplicate` shows the τ builders: a ramp
#: on which the τ of a high-risk fraction f (with at most 5 decimals) is (N − ⌊fN⌋)/(N − 1).
RAMP_N = 10**5


@functools.cache
def ramp() -> np.ndarray:
    return np.arange(RAMP_N, dtype=np.float64) / (RAMP_N - 1)


def tau_placeholder(tau: Any) -> Any:
    """τ as the planner knows it: ``<tau quantile f>`` for the τ a quantile gives on :func:`ramp`
    (f read back from it), a raw τ as given (a raw 0 or 1 reads as a quantile: both degenerate)."""
    if isinstance(tau, str) or tau is None:
        return tau
    i = round(float(tau) * (RAMP_N - 1))
    if float(ramp()[i]) != float(tau):
        return float(tau)
    return f"<tau quantile {(RAMP_N - i) / RAMP_N:g}>"


# ----------------------------------------------------------------------------- entries


def memscores_entry(s: Settings, *, method: str, models: int) -> Entry:
    """Mem-scores of ``method`` with ``models`` models (:func:`wemem.memorization.memscores.compute`
    with the settings' ratio, epochs and seed 0)."""
    replicate = SimpleNamespace(settings=s, pool=SimpleNamespace(digest=pool_placeholder(s)))
    spec = memscores._cache_spec(
        replicate,
        method=method,
        models=models,
        ratio=s.memscore_ratio,
        epochs=s.memscore_epochs,
        seed=0,
    )
    return entry("memscores", spec)


def dense_entry(s: Settings, role: str, role_index: int, *, seed: int) -> Entry:
    spec = keys.dense_spec(
        s,
        pool_digest=pool_placeholder(s),
        rows=rows_placeholder(s, role, "train+dev"),
        seed=seed,
        role_index=role_index,
    )
    return entry("dense", spec)


def _context(s: Settings, one_shot: bool) -> DefenseContext:
    """The defense's view of the experiment, with stand-in arrays for the mem-scores and labels
    (their digest becomes a placeholder)."""
    return DefenseContext(
        arch=s.arch,
        norm=s.norm,
        epochs_planned=(1 if one_shot else s.pruning_rounds) * s.finetune_epochs,
        memscores=lambda: np.zeros(1),
        labels=lambda: np.zeros(1, dtype=np.int64),
    )


def defense_key_spec(
    s: Settings, name: str, settings: Mapping[str, Any], *, one_shot: bool, memscores_key: str
) -> dict:
    """The defense's cache-key part (:func:`wemem.defenses.catalog.defense_parts`), the mem-scores'
    digest and a quantile τ as placeholders."""
    settings = dict(settings)
    tau = tau_placeholder(settings.get("tau"))
    if isinstance(tau, str):
        settings["tau"] = 0.5  # validated in place of the placeholder, then replaced
    spec = dict(defense_parts(name, settings, _context(s, one_shot)).spec)
    if "memscores" in spec:
        spec["memscores"] = f"<memscores {memscores_key}>"
    if "tau" in spec:
        spec["tau"] = tau
    return spec


def pruned_entry(
    s: Settings,
    role: str,
    role_index: int,
    *,
    dense: Entry,
    seed: int,
    one_shot: bool,
    defense: str,
    defense_spec: dict,
) -> Entry:
    spec = keys.pruned_spec(
        s,
        dense=dense.spec,
        eval_rows=rows_placeholder(s, role, "test"),
        seed=seed,
        role_index=role_index,
        one_shot=one_shot,
        defense=defense,
        defense_spec=defense_spec,
    )
    return entry("pruned", spec)


def sensitivity_entry(model: Entry, role: str, role_index: int, *, picked: bool = False) -> Entry:
    """The posterior sensitivity of ``model`` on ``role``'s members and non-members (``picked``:
    only on the rows a classifier attack trains on, a shadow's under ``attack_train_max``)."""
    spec = keys.sensitivity_spec(
        model=f"<weights of {model.kind} {model.key}>",
        rows_in=f"<member rows of {role}>",
        rows_out=f"<non-member rows of {role}>",
        m=SENSITIVITY_M,
        eps=SENSITIVITY_EPS,
        seed=EVAL_SEED + role_index,
        picked=f"<attack rows of {role}>" if picked else None,
    )
    return entry("sensitivity", spec)


# ----------------------------------------------------------------------------- comparison


def canonical(kind: str, spec: dict) -> str:
    """``kind`` and ``spec`` as one JSON string, every field of :data:`DATA_FIELDS` (placeholder or
    digest) replaced by ``<field>``: a planned spec and the spec of the entry it stands for agree."""
    out = json.loads(json.dumps(spec, default=str))
    for path in DATA_FIELDS.get(kind, ()):
        node = out
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and path[-1] in node:
            node[path[-1]] = f"<{path[-1]}>"
    return f"{kind} {canonical_json(out)}"
