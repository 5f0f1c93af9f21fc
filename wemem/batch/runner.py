"""Run a profile's notebooks as a batch: in the manifest's order, skipping what is unchanged.

``wemem reproduce`` is :func:`reproduce`; ``wemem reproduce --dry-run`` starts from :func:`plan`.
Runs are found and validated by :mod:`wemem.batch.discovery`, each one executed as a record by
:mod:`wemem.batch.execution` (temp folder, swap in, ``run.json``, HTML report), and skipped when
its fingerprint (:mod:`wemem.batch.fingerprint`) equals the one of its last complete run. The
names callers use (:func:`run_notebook`, :func:`discover_runs`, …) are importable from here.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from pathlib import Path
from typing import Any

from wemem.batch import locks, manifest, schedule
from wemem.batch import smoke as smoke_scale
from wemem.batch.discovery import (  # re-exported: callers import them from here
    DEFAULT_PROFILE,
    RunSpec,
    discover_runs,
    notebook_defaults,
    notebook_parameters,
    validate_runs,
)
from wemem.batch.execution import check_executor, clean_stale, publish_report, run_notebook
from wemem.batch.fingerprint import run_fingerprint
from wemem.batch.preflight import check_kernel, check_outputs, check_runs, check_values
from wemem.batch.provenance import environment, utc_now
from wemem.cache import default_cache_dir
from wemem.errors import ParamsError
from wemem.report.html import export_html  # re-exported: callers import it from here
from wemem.report.index import write_index  # re-exported: callers import it from here
from wemem.report.run_folder import atomic_write_text

__all__ = [
    "DEFAULT_PROFILE",
    "RunSpec",
    "discover_runs",
    "export_html",
    "fingerprints",
    "notebook_defaults",
    "notebook_parameters",
    "plan",
    "previous_run",
    "reproduce",
    "run_notebook",
    "validate_runs",
    "write_index",
]

logger = logging.getLogger(__name__)


def previous_run(spec: RunSpec, outputs_root: Path) -> dict | None:
    """The ``run.json`` of the run's last complete execution, if its outputs are all there."""
    final = Path(outputs_root) / spec.stem / spec.run_name
    record = final / "run.json"
    if not (record.exists() and (final / f"{spec.stem}.ipynb").exists()):
        return None
    if not (final / "metrics.json").exists():
        return None
    try:
        return json.loads(record.read_text())
    except ValueError:
        return None


def _skipped(spec: RunSpec, outputs_root: Path, record: dict) -> dict[str, Any]:
    final = Path(outputs_root) / spec.stem / spec.run_name
    report = Path(outputs_root) / "reports" / f"{spec.stem}-{spec.run_name}.html"
    if not report.exists():
        publish_report(outputs_root, spec, final)
    logger.info("%s [%s] unchanged since %s: skipped", spec.stem, spec.run_name, record["end"])
    return {
        "stem": spec.stem,
        "run_name": spec.run_name,
        "profile": spec.profile,
        "variant": spec.variant,
        "seconds": 0.0,
        "previous_seconds": record.get("wall_seconds"),
        "out_dir": final,
        "report": report,
        "skipped": True,
    }


def fingerprints(runs: list[RunSpec], params_dir: Path = Path("params")) -> dict[str, str]:
    """Each run's fingerprint (by run id), the upstream runs' folded in for notebooks that read
    other runs' outputs (``reads_outputs`` in the manifest)."""
    m = manifest.load(params_dir) if (Path(params_dir) / manifest.FILE).exists() else None
    out: dict[str, str] = {}
    for spec in runs:
        entry = m.notebooks.get(spec.stem) if m else None
        upstream = []
        if entry is not None and entry.reads_outputs:
            upstream = [fp for rid, fp in out.items() if rid.partition(".")[0] in entry.needs]
        out[spec.run_id] = run_fingerprint(spec, upstream)
    return out


def _runs(
    profile: str, only: str | None, notebooks_dir: Path, params_dir: Path, smoke: bool
) -> list[RunSpec]:
    """The runs of ``profile`` (:func:`discover_runs`), at smoke scale when ``smoke``."""
    runs = discover_runs(profile, only=only, notebooks_dir=notebooks_dir, params_dir=params_dir)
    if smoke:
        scale = smoke_scale.load(params_dir)
        runs = [scale.apply(r) for r in runs]
    return runs


def _batch_fingerprints(
    runs: list[RunSpec],
    profile: str,
    only: str | None,
    notebooks_dir: Path,
    params_dir: Path,
    smoke: bool = False,
) -> dict[str, str]:
    """:func:`fingerprints` of ``runs``; upstream runs count even when ``only`` filtered them out."""
    every = runs if only is None else _runs(profile, None, notebooks_dir, params_dir, smoke)
    return fingerprints(every, params_dir)


def _unchanged(spec: RunSpec, outputs_root: Path, fingerprint: str, force: bool) -> dict | None:
    """The last complete run's ``run.json`` when it has ``fingerprint`` (and not ``force``)."""
    record = None if force else previous_run(spec, outputs_root)
    return record if record is not None and record.get("fingerprint") == fingerprint else None


def _write_summary(
    results: list[dict[str, Any]],
    outputs_root: Path,
    notebooks_dir: Path,
    *,
    profile: str,
    only: str | None,
    start: dt.datetime,
    total: float,
    executor: str,
    force: bool,
    smoke: bool = False,
) -> Path:
    """Write ``reproduce-<profile>.json`` for a complete batch (not filtered by ``only``, nothing
    skipped), else ``reproduce-<profile>.partial.json``; returns its path."""
    summary = {
        "profile": profile,
        "only": only,
        "start": start.isoformat(),
        "end": utc_now().isoformat(),
        "total_seconds": round(total, 3),
        "executor": executor,
        "force": force,
        "smoke": smoke,
        "runs": [
            {
                "notebook": r["stem"],
                "run_name": r["run_name"],
                "seconds": round(r["seconds"], 3),
                "skipped": r["skipped"],
                "out_dir": r["out_dir"].relative_to(outputs_root).as_posix(),
                "report": r["report"].relative_to(outputs_root).as_posix(),
            }
            for r in results
        ],
        **environment(Path(notebooks_dir).resolve()),
    }
    complete = only is None and not any(r["skipped"] for r in results)
    name = f"reproduce-{profile}.json" if complete else f"reproduce-{profile}.partial.json"
    outputs_root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(outputs_root / name, json.dumps(summary, indent=2) + "\n")
    return outputs_root / name


def _checked_runs(
    profile, only, notebooks_dir, params_dir, smoke, outputs_root, kernel_name, executor, jobs
) -> list[RunSpec]:
    """The runs of the batch, once every check of :func:`reproduce` passed (nothing written)."""
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ParamsError(f"jobs = {jobs!r}: allowed values are integers >= 1")
    check_executor(executor)
    check_outputs(outputs_root)
    runs = _runs(profile, only, notebooks_dir, params_dir, smoke)
    validate_runs(runs)
    check_runs(runs)
    check_kernel(kernel_name)
    return runs


def reproduce(
    profile: str = DEFAULT_PROFILE,
    *,
    only: str | None = None,
    outputs_root: Path = Path("outputs"),
    notebooks_dir: Path = Path("notebooks"),
    params_dir: Path = Path("params"),
    kernel_name: str = "python3",
    timeout: float | None = None,
    force: bool = False,
    executor: str = "local",
    ray_address: str | None = None,
    smoke: bool = False,
    jobs: int = 1,
    keep_going: bool = False,
    wait: bool = False,
) -> list[dict[str, Any]]:
    """Run every notebook of ``profile`` (optionally only stems matching ``only``), in the
    manifest's order, skipping runs that are unchanged since their last execution.

    A run is skipped when its fingerprint (:mod:`wemem.batch.fingerprint`) equals the one in its
    ``run.json`` and its outputs exist; ``force=True`` runs everything. ``executor``: ``local``,
    ``pool`` or ``ray`` (:mod:`wemem.experiment.executor`; ``ray_address``: an existing cluster).
    All runs are validated before the first executes (a bad params file writes nothing); the
    first failing run stops the batch. On success writes ``outputs/reproduce-<profile>.json``
    (per-run seconds, total wall seconds, environment; ``.partial.json`` for a batch filtered by
    ``only`` or with skipped runs). ``smoke``: every run at smoke scale (:mod:`wemem.batch.smoke`)
    under ``<outputs_root>/smoke/``. ``jobs``: runs in flight at once (:mod:`wemem.batch.schedule`);
    ``keep_going``: a failure does not stop the runs that do not need it. Returns the
    :func:`run_notebook` results.

    Every check of the user's input and environment (params, datasets, the outputs folder, the
    Jupyter kernel ``kernel_name``, ``executor``, ``jobs``) is made before anything is written;
    then the batch holds its outputs folder and the cache (:func:`wemem.batch.locks.batch`:
    another batch on the same outputs fails at once, or waits with ``wait``) and the temp folders
    of killed batches are removed (:func:`clean_stale`)."""
    runs = _checked_runs(
        profile, only, notebooks_dir, params_dir, smoke, outputs_root, kernel_name, executor, jobs
    )
    if not runs:
        logger.warning("profile %s: nothing to run", profile)
    outputs_root = smoke_scale.outputs_root(outputs_root) if smoke else Path(outputs_root)
    with locks.batch(outputs_root, default_cache_dir(), wait=wait):
        return _run_batch(
            runs, profile, only, outputs_root, notebooks_dir, params_dir, smoke, force, jobs,
            keep_going, {"kernel_name": kernel_name, "timeout": timeout, "executor": executor,
                         "ray_address": ray_address},
        )  # fmt: skip


def _run_batch(
    runs, profile, only, outputs_root, notebooks_dir, params_dir, smoke, force, jobs, keep_going,
    options,
) -> list[dict[str, Any]]:  # fmt: skip
    """:func:`reproduce` once its input is checked and its locks are held."""
    kernel_name, timeout = options["kernel_name"], options["timeout"]
    executor, ray_address = options["executor"], options["ray_address"]
    clean_stale(outputs_root)
    start, t0 = utc_now(), time.perf_counter()
    fps = _batch_fingerprints(runs, profile, only, notebooks_dir, params_dir, smoke)

    def kwargs(spec: RunSpec) -> dict[str, Any]:
        return {
            "outputs_root": outputs_root,
            "kernel_name": kernel_name,
            "timeout": timeout,
            "fingerprint": fps[spec.run_id],
            "executor": executor,
            "ray_address": ray_address,
        }

    skipped, todo = {}, []
    for spec in runs:
        record = _unchanged(spec, outputs_root, fps[spec.run_id], force)
        if record is not None:
            skipped[spec.run_id] = _skipped(spec, outputs_root, record)
        else:
            todo.append(spec)
    ran = _execute(todo, kwargs, jobs=jobs, keep_going=keep_going, params_dir=params_dir)
    by_id = {**skipped, **{spec.run_id: r for spec, r in zip(todo, ran, strict=True)}}
    results = [by_id[spec.run_id] for spec in runs]
    total = time.perf_counter() - t0
    summary = _write_summary(
        results,
        outputs_root,
        notebooks_dir,
        profile=profile,
        only=only,
        start=start,
        total=total,
        executor=executor,
        force=force,
        smoke=smoke,
    )
    logger.info("%d runs in %.1f s; summary: %s", len(results), total, summary)
    return results


def _execute(
    todo: list[RunSpec], kwargs, *, jobs: int, keep_going: bool, params_dir: Path
) -> list[dict[str, Any]]:
    """Run ``todo`` (``run_notebook(spec, **kwargs(spec))``): one at a time, or with
    :func:`wemem.batch.schedule.run_parallel` for ``jobs`` > 1 or ``keep_going``."""
    if (jobs > 1 and len(todo) > 1) or keep_going:
        reports = Path(kwargs(todo[0])["outputs_root"]) / "reports"
        return schedule.run_parallel(
            todo,
            run_notebook,
            lambda spec: {**kwargs(spec), "index": False},
            jobs=jobs,
            params_dir=params_dir,
            on_done=lambda result: write_index(reports),
            executor=kwargs(todo[0])["executor"],
            keep_going=keep_going,
        )
    ran = []
    for i, spec in enumerate(todo, 1):
        logger.info("[%d/%d] %s [%s]", i, len(todo), spec.stem, spec.run_name)
        ran.append(run_notebook(spec, **kwargs(spec)))
    return ran


def plan(
    profile: str,
    *,
    only: str | None = None,
    outputs_root: Path = Path("outputs"),
    notebooks_dir: Path = Path("notebooks"),
    params_dir: Path = Path("params"),
    force: bool = False,
    smoke: bool = False,
) -> list[dict[str, Any]]:
    """What :func:`reproduce` would do, without running anything: one dict per run with ``stem``,
    ``run_name``, ``run_id``, ``action`` (``run`` or ``skip (unchanged)``), ``params`` (the
    notebook's defaults overlaid with the params file's) and ``spec``.

    Raises the same errors as :func:`reproduce` for bad params (nothing is written)."""
    check_outputs(outputs_root, write=False)
    runs = _runs(profile, only, notebooks_dir, params_dir, smoke)
    validate_runs(runs)
    check_values(runs)
    fps = _batch_fingerprints(runs, profile, only, notebooks_dir, params_dir, smoke)
    if smoke:
        outputs_root = smoke_scale.outputs_root(outputs_root)
    rows = []
    for spec in runs:
        same = _unchanged(spec, outputs_root, fps[spec.run_id], force) is not None
        rows.append(
            {
                "stem": spec.stem,
                "run_name": spec.run_name,
                "run_id": spec.run_id,
                "action": "skip (unchanged)" if same else "run",
                "params": {**notebook_defaults(spec.notebook), **spec.params, "profile": profile},
                "spec": spec,
            }
        )
    return rows
