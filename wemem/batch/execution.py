"""One run executed as a record: papermill into a temp folder, swapped in whole, then its report.

Each run executes into a temporary sibling folder ``outputs/<stem>/.tmp-<run>-<pid>/`` and is
moved to ``outputs/<stem>/<run>/`` only once complete (executed notebook, the files the notebook
wrote, ``run.json``), so ``outputs/`` never holds a half-written run. The executed notebook is
then exported to ``outputs/reports/<stem>-<run>.html`` and ``outputs/reports/index.html`` is
rebuilt from the reports found there (:mod:`wemem.report.html`, :mod:`wemem.report.index`).
The batch around it (order, skipping unchanged runs, the summary) is :mod:`wemem.batch.runner`.
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
from wemem.report.run_folder import atomic_write_text, to_jsonable

__all__ = ["check_executor", "publish_report", "run_notebook"]

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


def _kernel_env(spec: RunSpec, tmp: Path, executor: str, ray_address: str | None) -> dict[str, str]:
    """The environment variables the notebook's kernel runs with (it inherits them)."""
    check_executor(executor)
    return {
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
    }


def _record(
    spec: RunSpec,
    tmp: Path,
    *,
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
    return {
        "notebook": spec.stem,
        "source": str(spec.notebook),
        "profile": spec.profile,
        "variant": spec.variant,
        "run_name": spec.run_name,
        "params_file": str(spec.params_file) if spec.params_file else None,
        "parameters": spec.params,
        "smoke": spec.smoke,  # the sizes overridden at smoke scale (wemem.batch.smoke), or None
        "executed_in": tmp.name,
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


def _keep_failed(executed: Path, spec: RunSpec, exc: BaseException) -> None:
    if not executed.exists():
        return
    keep = Path(tempfile.mkdtemp(prefix="wemem-failed-")) / f"{spec.stem}-{spec.run_name}.ipynb"
    shutil.copy2(executed, keep)
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
    ``output_dir`` (the absolute temp folder). ``timeout``: seconds per cell (``None``: no limit).
    ``executor``/``ray_address`` choose where independent trainings run (:mod:`wemem.experiment.executor`);
    ``fingerprint`` (:func:`wemem.batch.fingerprint.run_fingerprint`) is recorded in ``run.json`` with
    the cache entries the run used (for ``wemem cache gc``). On failure the executed notebook is
    copied to a fresh folder of the system temp dir (path logged and added as a note to the
    exception), the temp folder removed and the exception re-raised; an earlier complete run of the
    same name stays untouched. Returns ``{"stem", "run_name", "profile", "variant", "seconds"
    (wall time), "out_dir", "report"}``.
    """
    import papermill  # slow import

    notebook = Path(spec.notebook).resolve()
    stem_dir = Path(outputs_root) / spec.stem
    tmp = _fresh_tmp(stem_dir, spec.run_name)
    executed = tmp / f"{spec.stem}.ipynb"
    parameters = {**spec.params, "profile": spec.profile, "output_dir": str(tmp.resolve())}
    env = _kernel_env(spec, tmp, executor, ray_address)
    logger.info("running %s [%s]", spec.stem, spec.run_name)
    start, t0 = utc_now(), time.perf_counter()
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
                **_kernel_manager(),
            )
        seconds = time.perf_counter() - t0
        record = _record(
            spec,
            tmp,
            start=start,
            seconds=seconds,
            kernel_name=kernel_name,
            executor=executor,
            fingerprint=fingerprint,
        )
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
