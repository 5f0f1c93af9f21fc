"""Run notebooks under papermill as records: discover, validate, execute, swap in, report.

A *run* is one execution of ``notebooks/<stem>.ipynb`` in a profile with the parameters of one
file ``params/<profile>/<stem>[.<variant>].yaml``; its name is ``<profile>`` or
``<profile>-<variant>``. For the ``cpu`` profile a notebook without a params file runs once with
its defaults; other profiles skip such notebooks.

Each run executes into a temporary sibling folder ``outputs/<stem>/.tmp-<run>-<pid>/`` and is
moved to ``outputs/<stem>/<run>/`` only once complete (executed notebook, the files the notebook
wrote, ``run.json``), so ``outputs/`` never holds a half-written run. The executed notebook is
then exported to ``outputs/reports/<stem>-<run>.html`` and ``outputs/reports/index.html`` is
rebuilt from the reports found there (both by :mod:`wemem.reports`).
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import datetime as dt
import fnmatch
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import nbformat
import yaml

from wemem import __version__
from wemem.errors import ParamsError
from wemem.reporting import atomic_write_text, to_jsonable
from wemem.reports import export_html, write_index  # re-exported: callers import them from here

logger = logging.getLogger(__name__)

DEFAULT_PROFILE = "cpu"
RESERVED_PARAMS = ("profile", "output_dir")  # injected by the runner, never set in params files
_NAME_RE = re.compile(r"^[A-Za-z0-9_]+(-[A-Za-z0-9_]+)*$")

__all__ = [
    "RunSpec",
    "discover_runs",
    "export_html",
    "notebook_parameters",
    "reproduce",
    "run_notebook",
    "validate_runs",
    "write_index",
]


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """One run of one notebook.

    Attributes:
        notebook: path of the source notebook.
        stem: its file name without ``.ipynb`` (``02_motivation``).
        profile: ``cpu``, ``tiny``, ``paper``, … (a folder of ``params/``).
        variant: the ``<variant>`` of ``<stem>.<variant>.yaml``, or ``None``.
        params: the parameters read from the params file (``{}``: the notebook's defaults).
        run_name: ``<profile>`` or ``<profile>-<variant>``; the run's folder name.
        params_file: the file ``params`` came from, or ``None``.
    """

    notebook: Path
    stem: str
    profile: str
    variant: str | None
    params: dict
    run_name: str
    params_file: Path | None = None


# ----------------------------------------------------------------------------- discovery


def _profiles(params_dir: Path) -> list[str]:
    found = {p.name for p in params_dir.iterdir() if p.is_dir()} if params_dir.is_dir() else set()
    return sorted(p for p in found | {DEFAULT_PROFILE} if not p.startswith((".", "_")))


def _load_params(path: Path) -> dict:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamsError(
            f"{path}: expected a mapping of parameter to value, got {type(data).__name__}: "
            f"{data!r:.60}"
        )
    bad = [k for k in data if not isinstance(k, str)]
    if bad:
        raise ParamsError(f"{path}: parameter names must be strings, got {bad[0]!r}")
    return data


def discover_runs(
    profile: str,
    *,
    only: str | None = None,
    notebooks_dir: Path = Path("notebooks"),
    params_dir: Path = Path("params"),
) -> list[RunSpec]:
    """List the runs of ``profile``, notebooks sorted by name, variants after the plain run.

    Args:
        profile: a folder of ``params_dir``, or ``cpu`` (which may have no folder).
        only: an fnmatch glob on notebook stems (``"02_*"``); ``None`` for all notebooks.

    Raises:
        ParamsError: unknown profile; ``only`` matches no notebook; a params file that names no
            notebook, has a malformed variant, is not valid YAML or is not a mapping.
    """
    notebooks_dir, params_dir = Path(notebooks_dir), Path(params_dir)
    profiles = _profiles(params_dir)
    if profile not in profiles:
        raise ParamsError(
            f"profile {profile!r} unknown: no folder {params_dir / str(profile)}; "
            f"allowed: {', '.join(profiles)}"
        )
    notebooks = sorted(notebooks_dir.glob("*.ipynb"))
    stems = [nb.stem for nb in notebooks]
    if only is not None:
        notebooks = [nb for nb in notebooks if fnmatch.fnmatchcase(nb.stem, only)]
        if not notebooks:
            raise ParamsError(
                f"only={only!r} matches no notebook in {notebooks_dir}; "
                f"stems: {', '.join(stems) or '(none)'}"
            )

    profile_dir = params_dir / profile
    files = sorted(profile_dir.glob("*.y*ml")) if profile_dir.is_dir() else []
    by_stem: dict[str, list[tuple[str | None, Path]]] = {}
    for path in files:
        if path.suffix == ".yml":
            raise ParamsError(f"{path}: params files end in '.yaml'; rename it")
        stem, _, variant = path.name[: -len(".yaml")].partition(".")
        if stem not in stems:
            raise ParamsError(
                f"{path}: names no notebook; expected <stem>[.<variant>].yaml with stem one of: "
                f"{', '.join(stems) or '(none)'}"
            )
        if variant and not _NAME_RE.match(variant):
            raise ParamsError(
                f"{path}: variant {variant!r} not allowed: use letters, digits, '_' and single "
                "'-' between them"
            )
        by_stem.setdefault(stem, []).append((variant or None, path))

    runs = []
    for nb in notebooks:
        entries = sorted(by_stem.get(nb.stem, []), key=lambda e: (e[0] is not None, e[0] or ""))
        if not entries:
            if profile != DEFAULT_PROFILE:
                logger.info("skipping %s: no params file in %s", nb.stem, profile_dir)
                continue
            entries = [(None, None)]
        for variant, path in entries:
            runs.append(
                RunSpec(
                    notebook=nb,
                    stem=nb.stem,
                    profile=profile,
                    variant=variant,
                    params=_load_params(path) if path is not None else {},
                    run_name=profile if variant is None else f"{profile}-{variant}",
                    params_file=path,
                )
            )
    return runs


def validate_runs(runs: list[RunSpec]) -> None:
    """Check every params key against its notebook's ``parameters`` cell, before running anything.

    Raises:
        ParamsError: listing every problem found: an unknown key, a key the runner injects
            (``profile``, ``output_dir``), a notebook without a cell tagged ``parameters`` or one
            whose parameters lack ``profile`` or ``output_dir``.
    """
    problems: list[str] = []
    allowed_by_nb: dict[Path, set[str] | None] = {}
    for spec in runs:
        if spec.notebook not in allowed_by_nb:
            allowed_by_nb[spec.notebook] = _notebook_params(spec.notebook, problems)
        allowed = allowed_by_nb[spec.notebook]
        if allowed is None:
            continue
        source = spec.params_file or spec.notebook
        for key in spec.params:
            if key in RESERVED_PARAMS:
                problems.append(
                    f"{source}: parameter {key!r} is set by the runner; remove it from the file"
                )
            elif key not in allowed:
                choices = ", ".join(sorted(allowed - set(RESERVED_PARAMS))) or "(none)"
                problems.append(
                    f"{source}: unknown parameter {key!r} for notebook {spec.stem}; "
                    f"allowed: {choices}"
                )
    if problems:
        raise ParamsError("\n".join(problems))


def notebook_parameters(path: Path) -> set[str] | None:
    """Names assigned at top level of the notebook's cell tagged ``parameters``; ``None``: no cell.

    Parsed with :mod:`ast` rather than ``papermill.inspect_notebook``, whose line-based parser
    silently skips any line holding two ``=`` (``x = 1  # paper: x=2``, ``d = dict(a=1)``).

    Raises:
        ParamsError: the parameters cell is not valid Python.
    """
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        return None
    try:
        tree = ast.parse(cells[0].source)
    except SyntaxError as exc:
        raise ParamsError(f"{path}: parameters cell is not valid Python: {exc}") from None
    names = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        for target in targets:
            if isinstance(target, ast.AST):
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names


def _notebook_params(path: Path, problems: list[str]) -> set[str] | None:
    try:
        allowed = notebook_parameters(path)
    except ParamsError as exc:
        problems.append(str(exc))
        return None
    if allowed is None:
        problems.append(f"{path}: no cell tagged 'parameters'; every notebook needs exactly one")
        return None
    missing = [p for p in RESERVED_PARAMS if p not in allowed]
    if missing:
        problems.append(
            f"{path}: parameters cell lacks {', '.join(missing)}; every notebook declares "
            'profile = "cpu" and output_dir = ""'
        )
    return allowed


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


def run_notebook(
    spec: RunSpec,
    *,
    outputs_root: Path = Path("outputs"),
    kernel_name: str = "python3",
    timeout: float | None = None,
) -> dict[str, Any]:
    """Execute one run and publish it as ``outputs/<stem>/<run name>/`` plus its HTML report.

    The notebook runs with cwd = its folder and parameters = the params file's + ``profile`` +
    ``output_dir`` (the absolute temp folder). ``timeout``: seconds per cell (``None``: no limit).
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

    logger.info("running %s [%s]", spec.stem, spec.run_name)
    start, t0 = _utc_now(), time.perf_counter()
    previous = os.environ.get("WEMEM_PROGRESS")
    os.environ["WEMEM_PROGRESS"] = "0"  # the kernel inherits it: no progress bars in records
    try:
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
    finally:
        if previous is None:
            os.environ.pop("WEMEM_PROGRESS", None)
        else:
            os.environ["WEMEM_PROGRESS"] = previous
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
    }


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
) -> list[dict[str, Any]]:
    """Run every notebook of ``profile`` (optionally only stems matching ``only``), in order.

    All runs are validated before the first executes, so a bad params file writes nothing. Stops
    at the first failing run (later notebooks may read what earlier ones cache). On success writes
    ``outputs/reproduce-<profile>.json`` (per-run seconds, total wall seconds, environment); a
    batch filtered by ``only`` writes ``reproduce-<profile>.partial.json`` instead, so the full
    batch's measured total is never overwritten by a partial one.

    Returns:
        the list of :func:`run_notebook` results.
    """
    runs = discover_runs(profile, only=only, notebooks_dir=notebooks_dir, params_dir=params_dir)
    validate_runs(runs)
    from wemem.preflight import check_runs

    check_runs(runs)
    if not runs:
        logger.warning("profile %s: nothing to run", profile)
    outputs_root = Path(outputs_root)
    start, t0 = _utc_now(), time.perf_counter()
    results = []
    for i, spec in enumerate(runs, 1):
        logger.info("[%d/%d] %s [%s]", i, len(runs), spec.stem, spec.run_name)
        results.append(
            run_notebook(spec, outputs_root=outputs_root, kernel_name=kernel_name, timeout=timeout)
        )
    total = time.perf_counter() - t0
    summary = {
        "profile": profile,
        "only": only,
        "start": start.isoformat(),
        "end": _utc_now().isoformat(),
        "total_seconds": round(total, 3),
        "runs": [
            {
                "notebook": r["stem"],
                "run_name": r["run_name"],
                "seconds": round(r["seconds"], 3),
                "out_dir": r["out_dir"].relative_to(outputs_root).as_posix(),
                "report": r["report"].relative_to(outputs_root).as_posix(),
            }
            for r in results
        ],
        **_environment(Path(notebooks_dir).resolve()),
    }
    name = f"reproduce-{profile}.json" if only is None else f"reproduce-{profile}.partial.json"
    outputs_root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(outputs_root / name, json.dumps(summary, indent=2) + "\n")
    logger.info("%d runs in %.1f s; summary: %s", len(results), total, outputs_root / name)
    return results
