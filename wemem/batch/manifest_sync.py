"""The run manifest kept in step with the tree: checked against ``notebooks/`` and ``params/``, its
minutes refreshed from measured batches or the cost model.

Above :mod:`wemem.batch.manifest` (the file itself) and :mod:`wemem.batch.discovery` (which orders
runs by it), so that neither has to import the other's callers.
"""

from __future__ import annotations

import json
from pathlib import Path

from wemem.batch.discovery import discover_runs
from wemem.batch.manifest import Manifest, load, set_minutes

__all__ = ["ESTIMATE_CLASS", "check", "refresh_minutes"]

#: The device class whose estimate a profile's minutes take when no measured batch exists.
ESTIMATE_CLASS = {"cpu": "cpu-2core", "gpu": "gpu-h100-class"}


def check(manifest: Manifest, notebooks_dir: Path, params_dir: Path) -> list[str]:
    """Every disagreement between the manifest and ``notebooks/`` + ``params/`` (empty: none)."""
    problems = []
    stems = sorted(p.stem for p in Path(notebooks_dir).glob("*.ipynb"))
    for stem in sorted(set(stems) - set(manifest.notebooks)):
        problems.append(f"notebook {stem} is not in the manifest's 'notebooks'")
    for stem in sorted(set(manifest.notebooks) - set(stems)):
        problems.append(f"manifest lists notebook {stem}, which does not exist")
    for stem, entry in manifest.notebooks.items():
        for need in entry.needs:
            if need not in manifest.notebooks or need >= stem:
                problems.append(f"{stem} needs {need}: not an earlier notebook of the manifest")
    for profile in sorted({p.name for p in Path(params_dir).iterdir() if p.is_dir()} | {"cpu"}):
        found = [
            s.stem if s.variant is None else f"{s.stem}.{s.variant}"
            for s in discover_runs(profile, notebooks_dir=notebooks_dir, params_dir=params_dir)
        ]
        listed = [r.run for r in manifest.runs.get(profile, [])]
        for run in sorted(set(found) - set(listed)):
            problems.append(
                f"profile {profile}: run {run} missing; add '- {{run: {run}, minutes: …}}'"
            )
        for run in sorted(set(listed) - set(found)):
            problems.append(f"profile {profile}: run {run} listed but has no params file")
        order = [r for r in listed if r in found]
        if order != sorted(order, key=lambda r: (r.partition(".")[0], "." in r, r)):
            problems.append(f"profile {profile}: runs not in notebook (dependency) order")
    return problems


def _measured(batch: Path, profile: str) -> dict[str, float]:
    """Minutes per run id of a batch summary ``reproduce-<profile>.json`` (skipped runs left out)."""
    minutes: dict[str, float] = {}
    record = json.loads(batch.read_text())
    for r in record["runs"]:
        if not r.get("skipped"):
            variant = r["run_name"].removeprefix(profile).removeprefix("-")
            minutes[r["notebook"] + (f".{variant}" if variant else "")] = r["seconds"] / 60
    return minutes


def refresh_minutes(
    params_dir: Path = Path("params"),
    outputs_root: Path = Path("outputs"),
    notebooks_dir: Path = Path("notebooks"),
) -> dict[str, str]:
    """Rewrite every run's ``minutes``: measured from ``outputs/reproduce-<profile>.json`` when a
    complete batch of that profile ran there (skipped runs keep their old value), else the cost
    model's expected time (early stopping as measured) on :data:`ESTIMATE_CLASS` of its hardware.

    Returns ``{profile: "measured" | "estimated on <class>"}``.
    """
    from wemem.planning.costing import estimate_runs  # slow import (the planners), only here

    m = load(params_dir)
    how = {}
    for profile, runs in m.runs.items():
        batch = Path(outputs_root) / f"reproduce-{profile}.json"
        minutes: dict[str, float] = {}
        if batch.exists():
            minutes = _measured(batch, profile)
            how[profile] = "measured"
        else:
            specs = discover_runs(profile, notebooks_dir=notebooks_dir, params_dir=params_dir)
            cls = ESTIMATE_CLASS[runs[0].hardware]
            table = estimate_runs(specs, device_class_names=[cls], expected=True)
            for spec, sec in zip(specs, table[f"seconds {cls}"], strict=True):
                minutes[spec.run_id] = sec / 60
            how[profile] = f"estimated on {cls}"
        set_minutes(params_dir, profile, minutes)
    return how
