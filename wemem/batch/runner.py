"""Run notebooks under papermill as records: execute, swap in, report, skip what is unchanged.

Runs are found and validated by :mod:`wemem.batch.discovery` (re-exported here).

Each run executes into a temporary sibling folder ``outputs/<stem>/.tmp-<run>-<pid>/`` and is
moved to ``outputs/<stem>/<run>/`` only once complete (executed notebook, the files the notebook
wrote, ``run.json``), so ``outputs/`` never holds a half-written run. The executed notebook is
then exported to ``outputs/reports/<stem>-<run>.html`` and ``outputs/reports/index.html`` is
rebuilt from the reports found there (both by :mod:`wemem.report.html`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from wemem import __version__
from wemem.batch.discovery import (  # re-exported: callers import them from here
    DEFAULT_PROFILE,
    RunSpec,
    discover_runs,
    notebook_defaults,
    notebook_parameters,
    validate_runs,
)
from wemem.errors import ParamsError
from wemem.report.html import export_html, write_index  # re-exported: callers import them from here
from wemem.report.run_folder import atomic_write_text, to_jsonable

__all__ = [
    "RunSpec",
    "discover_runs",
    "export_html",
    "notebook_parameters",
    "plan",
    "reproduce",
    "run_notebook",
    "validate_runs",
    "write_index",
]

logger = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- execution


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _git(cwd: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _environment(cwd: Path) -> dict[str, Any]:
    commit = _git(cwd, "rev-parse", "HEAD")
    dirty = _git(cwd, "status", "--porcelain", "--untracked-files=no") if commit else None
    return {
        "wemem_version": __version__,
        "git_commit": commit or None,
        "git_dirty": bool(dirty) if dirty is not None else None,
        "python": platform.python_version(),
        "torch": _version("torch"),
        "numpy": _version("numpy"),
        "papermill": _version("papermill"),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale(stem_dir: Path) -> None:
    """Remove temp folders of runs killed before they could clean up (their process is gone)."""
    for entry in sorted(stem_dir.iterdir()):
        kind, _, rest = entry.name.partition("-")
        run_name, _, pid = rest.rpartition("-")
        if kind not in (".tmp", ".old") or not pid.isdigit() or _pid_alive(int(pid)):
            continue
        final = stem_dir / run_name
        if kind == ".old" and not final.exists():
            logger.warning("restoring %s from interrupted swap %s", final, entry)
            os.rename(entry, final)
        else:
            logger.warning("removing stale %s", entry)
            shutil.rmtree(entry, ignore_errors=True)


def _swap_in(tmp: Path, final: Path) -> None:
    """Move the complete ``tmp`` to ``final``; an existing ``final`` goes only after that."""
    if not final.exists():
        os.rename(tmp, final)
        return
    old = final.with_name(f".old-{final.name}-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    os.rename(final, old)
    try:
        os.rename(tmp, final)
    except BaseException:
        os.rename(old, final)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def _environ(values: dict[str, str]):
    """Set environment variables for the block (the notebook kernel inherits them)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _executor_env(spec: RunSpec, executor: str, ray_address: str | None) -> dict[str, str]:
    from wemem.experiment.executor import EXECUTORS

    if executor not in EXECUTORS:
        raise ParamsError(f"executor = {executor!r}: allowed values are {', '.join(EXECUTORS)}")
    return {
        "WEMEM_EXECUTOR": executor,
        "WEMEM_RAY_ADDRESS": ray_address or "",
        "WEMEM_TASK_CPUS": str(spec.resources.get("num_cpus", 1)),
        "WEMEM_TASK_GPUS": str(spec.resources.get("num_gpus", 0)),
        "RAY_USAGE_STATS_ENABLED": "0",
    }


def run_notebook(
    spec: RunSpec,
    *,
    outputs_root: Path = Path("outputs"),
    kernel_name: str = "python3",
    timeout: float | None = None,
    fingerprint: str | None = None,
    executor: str = "local",
    ray_address: str | None = None,
) -> dict[str, Any]:
    """Execute one run and publish it as ``outputs/<stem>/<run name>/`` plus its HTML report.

    The notebook runs with cwd = its folder and parameters = the params file's + ``profile`` +
    ``output_dir`` (the absolute temp folder). ``timeout``: seconds per cell (``None``: no limit).
    ``executor``/``ray_address`` choose where independent trainings run (:mod:`wemem.experiment.executor`);
    ``fingerprint`` (:func:`wemem.batch.fingerprint.run_fingerprint`) is recorded in ``run.json`` with
    the cache entries the run used (for ``wemem cache gc``).
    On failure the executed notebook is copied to a fresh folder of the system temp dir (path
    logged and added as a note to the exception), the temp folder is removed and the exception
    re-raised; an earlier complete run of the same name stays untouched.

    Returns:
        ``{"stem", "run_name", "profile", "variant", "seconds", "out_dir", "report"}``;
        ``seconds`` is the execution's wall time, ``out_dir`` and ``report`` are paths.
    """
    import papermill  # slow import

    outputs_root = Path(outputs_root)
    notebook = Path(spec.notebook).resolve()
    stem_dir = outputs_root / spec.stem
    stem_dir.mkdir(parents=True, exist_ok=True)
    _clean_stale(stem_dir)
    tmp = stem_dir / f".tmp-{spec.run_name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    executed = tmp / f"{spec.stem}.ipynb"
    parameters = {**spec.params, "profile": spec.profile, "output_dir": str(tmp.resolve())}

    access_log = tmp / ".cache-access.log"
    env = {
        "WEMEM_PROGRESS": "0",  # no progress bars in records
        "WEMEM_CACHE_LOG": str(access_log.resolve()),
        **_executor_env(spec, executor, ray_address),
    }

    logger.info("running %s [%s]", spec.stem, spec.run_name)
    start, t0 = _utc_now(), time.perf_counter()
    try:
        with _environ(env):
            papermill.execute_notebook(
                str(notebook),
                str(executed),
                parameters=parameters,
                cwd=str(notebook.parent),
                kernel_name=kernel_name,
                log_output=False,
                progress_bar=False,
                execution_timeout=timeout,
            )
        seconds = time.perf_counter() - t0
        from wemem.cache import read_access_log

        cache_entries = read_access_log(access_log)
        access_log.unlink(missing_ok=True)
        if not (tmp / "metrics.json").exists():
            logger.warning("%s [%s] wrote no metrics.json", spec.stem, spec.run_name)
        record = {
            "notebook": spec.stem,
            "source": str(spec.notebook),
            "profile": spec.profile,
            "variant": spec.variant,
            "run_name": spec.run_name,
            "params_file": str(spec.params_file) if spec.params_file else None,
            "parameters": spec.params,
            "executed_in": tmp.name,
            "kernel_name": kernel_name,
            "start": start.isoformat(),
            "end": _utc_now().isoformat(),
            "wall_seconds": round(seconds, 3),
            "executor": executor,
            "fingerprint": fingerprint,
            "cache_entries": cache_entries,
            **_environment(notebook.parent),
        }
        text = json.dumps(to_jsonable(record), indent=2, allow_nan=False) + "\n"
        atomic_write_text(tmp / "run.json", text)
        final = stem_dir / spec.run_name
        _swap_in(tmp, final)
    except BaseException as exc:
        try:
            _keep_failed(executed, spec, exc)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            with contextlib.suppress(OSError):  # leave no empty outputs/<stem>/ behind
                stem_dir.rmdir()
        raise
    logger.info("%s [%s] done in %.1f s -> %s", spec.stem, spec.run_name, seconds, final)

    reports_dir = outputs_root / "reports"
    report = reports_dir / f"{spec.stem}-{spec.run_name}.html"
    export_html(final / f"{spec.stem}.ipynb", report)
    write_index(reports_dir)
    return {
        "stem": spec.stem,
        "run_name": spec.run_name,
        "profile": spec.profile,
        "variant": spec.variant,
        "seconds": seconds,
        "out_dir": final,
        "report": report,
        "skipped": False,
    }


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
        export_html(final / f"{spec.stem}.ipynb", report)
        write_index(report.parent)
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
    from wemem.batch import manifest
    from wemem.batch.fingerprint import run_fingerprint

    m = manifest.load(params_dir) if (Path(params_dir) / manifest.FILE).exists() else None
    out: dict[str, str] = {}
    for spec in runs:
        entry = m.notebooks.get(spec.stem) if m else None
        upstream = []
        if entry is not None and entry.reads_outputs:
            upstream = [fp for rid, fp in out.items() if rid.partition(".")[0] in entry.needs]
        out[spec.run_id] = run_fingerprint(spec, upstream)
    return out


def _keep_failed(executed: Path, spec: RunSpec, exc: BaseException) -> None:
    if not executed.exists():
        return
    keep = Path(tempfile.mkdtemp(prefix="wemem-failed-")) / f"{spec.stem}-{spec.run_name}.ipynb"
    shutil.copy2(executed, keep)
    logger.error("%s [%s] failed; executed notebook kept at %s", spec.stem, spec.run_name, keep)
    exc.add_note(f"executed notebook kept at {keep}")


# ----------------------------------------------------------------------------- batches


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
) -> list[dict[str, Any]]:
    """Run every notebook of ``profile`` (optionally only stems matching ``only``), in the
    manifest's order, skipping runs that are unchanged since their last execution.

    A run is skipped when its fingerprint (:mod:`wemem.batch.fingerprint`: notebook, params, the library
    code it imports, upstream runs it reads) equals the one in its ``run.json`` and its outputs
    exist; ``force=True`` runs everything. ``executor``: ``local`` or ``ray``
    (:mod:`wemem.experiment.executor`), ``ray_address`` an existing Ray cluster (default: a local one).

    All runs are validated before the first executes, so a bad params file writes nothing. Stops
    at the first failing run (later notebooks may read what earlier ones cache). On success writes
    ``outputs/reproduce-<profile>.json`` (per-run seconds, total wall seconds, environment); a
    batch filtered by ``only`` or with skipped runs writes ``reproduce-<profile>.partial.json``, so
    the full batch's measured total is never overwritten by a partial one.

    Returns:
        the list of :func:`run_notebook` results.
    """
    runs = discover_runs(profile, only=only, notebooks_dir=notebooks_dir, params_dir=params_dir)
    validate_runs(runs)
    from wemem.batch.preflight import check_runs

    check_runs(runs)
    if not runs:
        logger.warning("profile %s: nothing to run", profile)
    outputs_root = Path(outputs_root)
    start, t0 = _utc_now(), time.perf_counter()
    results = []
    from wemem.experiment.executor import EXECUTORS

    if executor not in EXECUTORS:
        raise ParamsError(f"executor = {executor!r}: allowed values are {', '.join(EXECUTORS)}")
    every = (
        runs
        if only is None
        else discover_runs(profile, notebooks_dir=notebooks_dir, params_dir=params_dir)
    )
    fps = fingerprints(every, params_dir)  # upstream runs count even when filtered out
    for i, spec in enumerate(runs, 1):
        logger.info("[%d/%d] %s [%s]", i, len(runs), spec.stem, spec.run_name)
        record = None if force else previous_run(spec, outputs_root)
        if record is not None and record.get("fingerprint") == fps[spec.run_id]:
            results.append(_skipped(spec, outputs_root, record))
            continue
        results.append(
            run_notebook(
                spec,
                outputs_root=outputs_root,
                kernel_name=kernel_name,
                timeout=timeout,
                fingerprint=fps[spec.run_id],
                executor=executor,
                ray_address=ray_address,
            )
        )
    total = time.perf_counter() - t0
    summary = {
        "profile": profile,
        "only": only,
        "start": start.isoformat(),
        "end": _utc_now().isoformat(),
        "total_seconds": round(total, 3),
        "executor": executor,
        "force": force,
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
        **_environment(Path(notebooks_dir).resolve()),
    }
    complete = only is None and not any(r["skipped"] for r in results)
    name = f"reproduce-{profile}.json" if complete else f"reproduce-{profile}.partial.json"
    outputs_root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(outputs_root / name, json.dumps(summary, indent=2) + "\n")
    logger.info("%d runs in %.1f s; summary: %s", len(results), total, outputs_root / name)
    return results


def plan(
    profile: str,
    *,
    only: str | None = None,
    outputs_root: Path = Path("outputs"),
    notebooks_dir: Path = Path("notebooks"),
    params_dir: Path = Path("params"),
    force: bool = False,
) -> list[dict[str, Any]]:
    """What :func:`reproduce` would do, without running anything: one dict per run with ``stem``,
    ``run_name``, ``run_id``, ``action`` (``run`` or ``skip (unchanged)``), ``params`` (the
    notebook's defaults overlaid with the params file's) and ``spec``.

    Raises the same errors as :func:`reproduce` for bad params (nothing is written)."""
    runs = discover_runs(profile, only=only, notebooks_dir=notebooks_dir, params_dir=params_dir)
    validate_runs(runs)
    every = (
        runs
        if only is None
        else discover_runs(profile, notebooks_dir=notebooks_dir, params_dir=params_dir)
    )
    fps = fingerprints(every, params_dir)
    rows = []
    for spec in runs:
        record = None if force else previous_run(spec, outputs_root)
        same = record is not None and record.get("fingerprint") == fps[spec.run_id]
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
