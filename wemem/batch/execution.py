"""One run executed as a record: papermill into a temp folder, swapped in whole, then its report.

Each run executes into a temporary sibling folder ``outputs/<stem>/.tmp-<run>-<pid>/`` and is
moved to ``outputs/<stem>/<run>/`` only once complete (executed notebook, the files the notebook
wrote, ``run.json``), so ``outputs/`` never holds a half-written run. The executed notebook is
then exported to ``outputs/reports/<stem>-<run>.html`` and ``outputs/reports/index.html`` is
rebuilt from the reports found there (:mod:`wemem.report.html`, :mod:`wemem.report.index`).
The batch around it (order, skipping unchanged runs, the summary) is :mod:`wemem.batch.runner`.

Records hold no temporary or absolute path of the machine, so two identical runs write identical
``metrics.json`` and reports: the notebook's ``output_dir`` parameter is the *final* run folder
relative to the notebook's folder (its working directory), e.g. ``../outputs/02_motivation/cpu``,
and :func:`wemem.report.run_folder.open_run` writes into the temp folder the runner names in
``WEMEM_RUN_DIR``. A failed run's executed notebook is kept as ``outputs/failed/<stem>-<run>.ipynb``
(the :data:`KEEP_FAILED` newest; listed in the reports' index).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wemem.batch.discovery import RunSpec
from wemem.batch.provenance import environment, utc_now
from wemem.errors import ParamsError
from wemem.io import pid_alive
from wemem.report.html import export_html
from wemem.report.index import write_index
from wemem.report.run_folder import (
    atomic_write_bytes,
    atomic_write_text,
    find_repo_root,
    to_jsonable,
)

__all__ = ["KEEP_FAILED", "check_executor", "clean_stale", "publish_report", "run_notebook"]

KEEP_FAILED = 20  # executed notebooks of failed runs kept under <outputs>/failed/

logger = logging.getLogger("wemem.batch.runner")  # the batch's one logger, as before the split


def _clean_stale(stem_dir: Path) -> None:
    """Remove temp folders of runs killed before they could clean up (their process is gone)."""
    for entry in sorted(stem_dir.iterdir()):
        kind, _, rest = entry.name.partition("-")
        run_name, _, pid = rest.rpartition("-")
        if kind not in (".tmp", ".old") or not pid.isdigit() or pid_alive(int(pid)):
            continue
        final = stem_dir / run_name
        if kind == ".old" and not final.exists():
            logger.warning("restoring %s from interrupted swap %s", final, entry)
            os.rename(entry, final)
        else:
            logger.warning("removing stale %s", entry)
            shutil.rmtree(entry, ignore_errors=True)


def clean_stale(outputs_root: Path) -> None:
    """Remove the temp folders under every ``outputs_root/<stem>/`` whose process is gone (and
    restore interrupted swaps): done at the start of every batch."""
    root = Path(outputs_root)
    for stem_dir in sorted(root.iterdir()) if root.is_dir() else []:
        if stem_dir.is_dir() and not stem_dir.name.startswith("."):
            _clean_stale(stem_dir)


def _fresh_tmp(stem_dir: Path, run_name: str) -> Path:
    """An empty ``stem_dir/.tmp-<run>-<pid>/`` (stale ones of killed runs removed first)."""
    stem_dir.mkdir(parents=True, exist_ok=True)
    _clean_stale(stem_dir)
    tmp = stem_dir / f".tmp-{run_name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    return tmp


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
def _environ(values: dict[str, str]) -> Iterator[None]:
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


def _kernel_manager() -> dict[str, Any]:
    """On POSIX, kernels talk over unix sockets with a per-kernel name: runs started at the same
    moment (``--jobs N``) cannot race for the same TCP port, as jupyter_client's port picking
    lets them (a kernel that loses dies at start and its run hangs)."""
    if os.name != "posix":
        return {}
    import uuid

    from jupyter_client.manager import AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.transport = "ipc"
            self.ip = str(Path(tempfile.gettempdir()) / f"wemem-kernel-{uuid.uuid4().hex[:12]}")

    return {"kernel_manager_class": IPCKernelManager}


def check_executor(executor: str) -> None:
    """Raise :class:`ParamsError` unless ``executor`` names one of :mod:`wemem.experiment.executor`'s."""
    from wemem.experiment.executor import EXECUTORS

    if executor not in EXECUTORS:
        raise ParamsError(f"executor = {executor!r}: allowed values are {', '.join(EXECUTORS)}")


def _kernel_env(
    spec: RunSpec, tmp: Path, output_dir: str, executor: str, ray_address: str | None
) -> dict[str, str]:
    """The environment variables the notebook's kernel runs with (it inherits them)."""
    check_executor(executor)
    return {
        # open_run(output_dir=<this output_dir>) writes into the temp folder (run_folder.py)
        "WEMEM_RUN_DIR": str(tmp.resolve()),
        "WEMEM_RUN_AS": output_dir,
        "WEMEM_PROGRESS": "0",  # no progress bars in records
        "WEMEM_CACHE_LOG": str((tmp / ".cache-access.log").resolve()),
        # corrupted cache entries the kernel found (and recomputed): run.json "cache_corrupted"
        "WEMEM_CACHE_EVENTS": str((tmp / ".cache-events.log").resolve()),
        "WEMEM_EXECUTOR": executor,
        "WEMEM_RAY_ADDRESS": ray_address or "",
        "WEMEM_TASK_CPUS": str(spec.resources.get("num_cpus", 1)),
        "WEMEM_TASK_GPUS": str(spec.resources.get("num_gpus", 0)),
        "RAY_USAGE_STATS_ENABLED": "0",
        # smoke scale: statistical checks are not applicable (wemem.studies.verdicts.small_scale)
        "WEMEM_SMOKE": "1" if spec.smoke is not None else "",
        **_slot_env(executor),
    }


def _slot_env(executor: str) -> dict[str, str]:
    """Under the pool executor every kernel's workers share this machine's core slots
    (:mod:`wemem.experiment.slots`): one per worker a pool starts."""
    if executor != "pool":
        return {}
    from wemem.experiment import executor, slots

    workers = str(executor.pool_workers())
    return {slots.ENV_DIR: str(slots.machine_folder()), slots.ENV_COUNT: workers}


def _output_dir(final: Path, notebook: Path) -> str:
    """The ``output_dir`` parameter: the final run folder relative to the notebook's folder (its
    working directory), the same on every machine with the same layout."""
    try:
        return Path(os.path.relpath(final.resolve(), notebook.parent)).as_posix()
    except ValueError:  # another drive (Windows): no relative path
        return str(final.resolve())


def _project_path(path: Path | None, project: Path) -> str | None:
    """``path`` relative to the project folder (``notebooks/02_motivation.ipynb``), for records."""
    if path is None:
        return None
    try:
        return Path(os.path.relpath(Path(path).resolve(), project)).as_posix()
    except ValueError:
        return str(path)


def _record(
    spec: RunSpec,
    tmp: Path,
    *,
    output_dir: str,
    start: dt.datetime,
    seconds: float,
    kernel_name: str,
    executor: str,
    fingerprint: str | None,
) -> dict[str, Any]:
    """The run's ``run.json``, with the cache entries its kernel logged."""
    from wemem.cache import read_access_log

    access_log = tmp / ".cache-access.log"
    cache_entries = read_access_log(access_log)
    access_log.unlink(missing_ok=True)
    events = tmp / ".cache-events.log"
    corrupted = events.read_text(encoding="utf-8").splitlines() if events.exists() else []
    events.unlink(missing_ok=True)
    if corrupted:
        logger.warning("%s [%s] recomputed %d corrupted cache entries: %s", spec.stem,
                       spec.run_name, len(corrupted), "; ".join(corrupted))  # fmt: skip
    if not (tmp / "metrics.json").exists():
        logger.warning("%s [%s] wrote no metrics.json", spec.stem, spec.run_name)
    project = find_repo_root(Path(spec.notebook).resolve().parent)
    return {
        "notebook": spec.stem,
        "source": _project_path(spec.notebook, project),
        "profile": spec.profile,
        "variant": spec.variant,
        "run_name": spec.run_name,
        "params_file": _project_path(spec.params_file, project),
        "parameters": spec.params,
        "smoke": spec.smoke,  # the sizes overridden at smoke scale (wemem.batch.smoke), or None
        "output_dir": output_dir,  # the final folder, from the notebook's folder
        "kernel_name": kernel_name,
        "start": start.isoformat(),
        "end": utc_now().isoformat(),
        "wall_seconds": round(seconds, 3),
        "executor": executor,
        "fingerprint": fingerprint,
        "cache_entries": cache_entries,
        "cache_corrupted": [line.removeprefix("corrupted ") for line in corrupted],
        **environment(Path(spec.notebook).resolve().parent),
    }


def _keep_failed(executed: Path, spec: RunSpec, exc: BaseException, outputs_root: Path) -> None:
    """Copy a failed run's executed notebook to ``<outputs_root>/failed/<stem>-<run>.ipynb`` (the
    :data:`KEEP_FAILED` newest kept; the reports' index rewritten when there is one)."""
    if not executed.exists() or isinstance(exc, KeyboardInterrupt):
        return
    failed = Path(outputs_root) / "failed"
    keep = failed / f"{spec.stem}-{spec.run_name}.ipynb"
    try:
        atomic_write_bytes(keep, executed.read_bytes())
        for old in sorted(failed.glob("*.ipynb"), key=lambda p: p.stat().st_mtime)[:-KEEP_FAILED]:
            old.unlink(missing_ok=True)
        if (Path(outputs_root) / "reports" / "index.html").exists():
            write_index(Path(outputs_root) / "reports")
    except OSError as e:  # keeping the copy must not hide the run's own error
        logger.warning("%s [%s]: executed notebook not kept: %s", spec.stem, spec.run_name, e)
        return
    logger.error("%s [%s] failed; executed notebook kept at %s", spec.stem, spec.run_name, keep)
    exc.add_note(f"executed notebook kept at {keep}")


def publish_report(outputs_root: Path, spec: RunSpec, final: Path, *, index: bool = True) -> Path:
    """Export the run's executed notebook to ``outputs/reports/<stem>-<run>.html`` and rebuild the
    reports' ``index.html`` (unless ``index`` is False: a parallel batch writes it itself);
    returns the report's path."""
    reports_dir = Path(outputs_root) / "reports"
    report = reports_dir / f"{spec.stem}-{spec.run_name}.html"
    export_html(final / f"{spec.stem}.ipynb", report)
    if index:
        write_index(reports_dir)
    return report


def _papermill(spec: RunSpec, executed: Path, parameters: dict, env: dict, **kwargs: Any) -> None:
    """Execute the run's notebook into ``executed`` with cwd = its folder, in ``env``."""
    import papermill  # slow import

    notebook = Path(spec.notebook).resolve()
    with _environ(env):
        papermill.execute_notebook(
            str(notebook),
            str(executed),
            parameters=parameters,
            cwd=str(notebook.parent),
            log_output=False,
            progress_bar=False,
            **kwargs,
            **_kernel_manager(),
        )


def run_notebook(
    spec: RunSpec,
    *,
    outputs_root: Path = Path("outputs"),
    kernel_name: str = "python3",
    timeout: float | None = None,
    fingerprint: str | None = None,
    executor: str = "local",
    ray_address: str | None = None,
    index: bool = True,
) -> dict[str, Any]:
    """Execute one run and publish it as ``outputs/<stem>/<run name>/`` plus its HTML report.

    The notebook runs with cwd = its folder and parameters = the params file's + ``profile`` +
    ``output_dir`` (the final folder relative to the notebook's; its files go to the temp folder,
    see the module docstring). ``timeout``: seconds per cell (``None``: no limit).
    ``executor``/``ray_address`` choose where independent trainings run (:mod:`wemem.experiment.executor`);
    ``fingerprint`` (:func:`wemem.batch.fingerprint.run_fingerprint`) is recorded in ``run.json`` with
    the cache entries the run used (for ``wemem cache gc``). On failure the executed notebook is
    kept under ``<outputs_root>/failed/`` (path logged and added as a note to the exception; not
    on Ctrl-C), the temp folder removed and the exception re-raised; an earlier complete run of
    the same name stays untouched. Returns ``{"stem", "run_name", "profile", "variant", "seconds"
    (wall time), "out_dir", "report"}``.
    """
    stem_dir = Path(outputs_root) / spec.stem
    final = stem_dir / spec.run_name
    output_dir = _output_dir(final, Path(spec.notebook).resolve())
    tmp = _fresh_tmp(stem_dir, spec.run_name)
    executed = tmp / f"{spec.stem}.ipynb"
    parameters = {**spec.params, "profile": spec.profile, "output_dir": output_dir}
    env = _kernel_env(spec, tmp, output_dir, executor, ray_address)
    logger.info("running %s [%s]", spec.stem, spec.run_name)
    start, t0 = utc_now(), time.perf_counter()
    try:
        _papermill(
            spec, executed, parameters, env, kernel_name=kernel_name, execution_timeout=timeout
        )
        seconds = time.perf_counter() - t0
        record = _record(
            spec,
            tmp,
            output_dir=output_dir,
            start=start,
            seconds=seconds,
            kernel_name=kernel_name,
            executor=executor,
            fingerprint=fingerprint,
        )
        text = json.dumps(to_jsonable(record), indent=2, allow_nan=False) + "\n"
        atomic_write_text(tmp / "run.json", text)
        _swap_in(tmp, final)
    except BaseException as exc:
        try:
            _keep_failed(executed, spec, exc, outputs_root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            with contextlib.suppress(OSError):  # leave no empty outputs/<stem>/ behind
                stem_dir.rmdir()
        raise
    (Path(outputs_root) / "failed" / f"{spec.stem}-{spec.run_name}.ipynb").unlink(missing_ok=True)
    logger.info("%s [%s] done in %.1f s -> %s", spec.stem, spec.run_name, seconds, final)
    return {
        "stem": spec.stem,
        "run_name": spec.run_name,
        "profile": spec.profile,
        "variant": spec.variant,
        "seconds": seconds,
        "out_dir": final,
        "report": publish_report(outputs_root, spec, final, index=index),
        "skipped": False,
    }
