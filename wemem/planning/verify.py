"""Does a run train what its plan says? The planned cache entries against the ones it logged.

A run records every cache entry it loaded or saved (``$WEMEM_CACHE_LOG``, kept as
``cache_entries`` in its ``run.json``); each entry's sidecar holds its kind and spec. The plan of the
same run (:func:`wemem.planning.workload.planned_entries`) lists the entries it expects, with
placeholders where only data could give a value. Both sides are put in the form of
:func:`wemem.planning.entries.canonical` and compared as multisets.

A run's log holds what it touched, not everything it used: a pruning run found in the cache does
not load its dense model. The dense model is part of the pruned entry's spec, so
:func:`logged_specs` adds it: the comparison holds whatever the cache held before the run.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from wemem.cache import Cache, _sidecar, default_cache_dir
from wemem.io import canonical_json
from wemem.planning.entries import canonical
from wemem.planning.workload import planned_entries

#: Entries a run writes but that are no models: a pruning run's resume points, dropped when it ends,
#: the scores of classifier attack models (keyed on their inputs; a plan counts the attack models
#: as work, not as entries), and the pointers from a window schedule to the pruning run that
#: trained it (stages.prune; a plan counts every window setting's training: an upper bound).
TRANSIENT = ("round", "attack", "alias")
#: Plans that cannot be exact, and why (the benchmark prints it beside their differences).
APPROXIMATE = {
    "11_autotune": "the plan takes the first candidates as each rung's survivors and the first "
    "candidate as the choice; the real ones depend on the data",
}


def describe(text: str) -> str:
    """A short line for a :func:`~wemem.planning.entries.canonical` entry: what tells it apart."""
    kind, _, body = text.partition(" ")
    spec = json.loads(body)
    if kind == "dense":
        return f"dense {spec['arch']} width={spec['width']} model seed={spec['train']['seed']}"
    if kind == "pruned":
        defense = {k: v for k, v in spec["defense_spec"].items() if not str(v).startswith("<")}
        return (
            f"pruned {spec['defense']} {canonical_json(defense)} {spec['approach']} "
            f"rate={spec['rate']} rounds={spec['rounds']} max_epochs={spec['finetune']['max_epochs']} "
            f"model seed={spec['finetune']['seed']}"
        )
    if kind == "memscores":
        return f"memscores {spec['method']} K={spec['models']} epochs={spec['train']['epochs']}"
    if kind == "sensitivity":
        return f"sensitivity m={spec['m']} seed={spec['seed']}"
    return text


@dataclass
class Comparison:
    """A run's planned and logged entries in canonical form, as multisets."""

    stem: str
    run_name: str
    planned: Counter = field(default_factory=Counter)
    logged: Counter = field(default_factory=Counter)
    unreadable: list[str] = field(default_factory=list)  # logged entries without a sidecar

    @property
    def missing(self) -> Counter:
        """Planned, never touched by the run."""
        return self.planned - self.logged

    @property
    def unplanned(self) -> Counter:
        """Touched by the run, not in the plan."""
        return self.logged - self.planned

    @property
    def equal(self) -> bool:
        return not self.missing and not self.unplanned and not self.unreadable

    def lines(self, *, full: bool = False) -> list[str]:
        """One line saying whether plan and run agree, then one per difference (:func:`describe`,
        or the whole canonical spec with ``full``)."""
        head = f"{self.stem} [{self.run_name}]: "
        if self.equal:
            return [head + f"equal ({sum(self.planned.values())} entries)"]
        out = [
            head + f"differences: {sum(self.missing.values())} planned but not used, "
            f"{sum(self.unplanned.values())} used but not planned, "
            f"{len(self.unreadable)} unreadable"
        ]
        for sign, diff in (("-", self.missing), ("+", self.unplanned)):
            for text, n in sorted(diff.items()):
                out.append(f"  {sign} {n}× {text if full else describe(text)}")
        out += [f"  ? {name} (no sidecar)" for name in self.unreadable]
        if self.stem in APPROXIMATE:
            out.append(f"  (approximate plan: {APPROXIMATE[self.stem]})")
        return out


def logged_specs(names: list[str], cache_root: Path) -> tuple[list[tuple[str, dict]], list[str]]:
    """(kind, spec) of each logged ``<kind>/<key>`` from its sidecar (transient kinds left out)
    plus the dense model of each pruning run, and the names whose sidecar is gone."""
    found, unreadable = [], []
    for name in names:
        kind, _, key = name.partition("/")
        if kind in TRANSIENT:
            continue
        info, _ = _sidecar(Path(cache_root) / kind / key[:2] / f"{key}.json", kind, key)
        if info is None:  # gone, or malformed (a load would recompute it)
            unreadable.append(name)
            continue
        found.append((kind, info["spec"]))
    return _with_dense(found), unreadable


def _with_dense(found: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """``found`` and the dense model of each pruning run in it (each entry once, by cache key)."""
    keys = Cache(".")
    by_key = {keys.key(kind, spec): (kind, spec) for kind, spec in found}
    for kind, spec in found:
        if kind == "pruned" and isinstance(spec.get("dense"), dict):
            by_key.setdefault(keys.key("dense", spec["dense"]), ("dense", spec["dense"]))
    return list(by_key.values())


def compare(planned, logged: list[tuple[str, dict]]) -> tuple[Counter, Counter]:
    """Canonical multisets of planned entries (:class:`~wemem.planning.entries.Entry`) and logged
    (kind, spec) pairs."""
    return (
        Counter(canonical(e.kind, e.spec) for e in planned),
        Counter(canonical(kind, spec) for kind, spec in logged),
    )


def compare_run(
    run_dir: Path, *, cache_root: Path | None = None, notebooks_dir: Path | None = None
) -> Comparison:
    """Plan against log for the run published in ``run_dir`` (its ``run.json``); the cache is
    ``cache_root``, else the run's ``cache_dir`` setting, ``$WEMEM_CACHE`` or the default."""
    record = json.loads((Path(run_dir) / "run.json").read_text())
    params = record.get("parameters") or {}
    root = Path(cache_root) if cache_root else default_cache_dir(params.get("cache_dir", ""))
    logged, unreadable = logged_specs(record.get("cache_entries", []), root)
    entries = planned_entries(record["notebook"], params, notebooks_dir=notebooks_dir)
    planned, used = compare(entries.values(), logged)
    return Comparison(record["notebook"], record["run_name"], planned, used, unreadable)


def run_dirs(outputs_root: Path, profile: str) -> list[Path]:
    """The published run folders of ``profile`` under ``outputs_root``, in notebook order."""
    found = []
    for record in sorted(Path(outputs_root).glob("*/*/run.json")):
        try:
            if json.loads(record.read_text()).get("profile") == profile:
                found.append(record.parent)
        except (OSError, ValueError):
            continue
    return found
