"""Run a batch's runs several at a time (``wemem reproduce --jobs N``), in dependency order.

A notebook kernel spends much of its time in one process (imports, loading the cache, the attacks
it scores itself, figures, the HTML export) while the executor's workers train; with ``N`` runs
in flight the machine's cores stay busy. A run starts when every run of the notebooks it
``needs`` (``params/manifest.yaml``) has finished; a notebook marked ``exclusive`` runs alone
(``always``: 10's controlled timing; ``parallel``: with the Ray executor, sweeps that keep every
core busy). Under the pool executor the sweeps overlap: every kernel's workers share one core
slot per worker (:mod:`wemem.experiment.slots`), so two pools never run more trainings than
there are cores, and one kernel's single-process work fills the cores the other's pool leaves
idle (cold ``cpu`` batch on a 2-core Intel Xeon: 751 s against 908 s with the sweeps alone).
Each run executes in its own process (its kernel's environment is
set per process), the reports' index is written here after each run. The first failure stops
new starts; runs in flight finish, then the error is raised. Numbers do not depend on ``N``: each
computation is seeded on its own and the cache serialises trainings of the same entry
(:meth:`wemem.cache.Cache.get_or_compute`).
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from wemem.batch import manifest as manifest_mod
from wemem.batch.discovery import RunSpec

logger = logging.getLogger("wemem.batch.runner")


def dependencies(runs: list[RunSpec], params_dir: Path) -> dict[str, set[str]]:
    """Per run id, the run ids of this batch it waits for. A notebook that reads the runs'
    outputs (``reads_outputs``: 12) waits for every run of the notebooks it needs; the others
    need those notebooks' cached models, so a run waits for the runs of the same variant
    (``02_motivation.cifar10_resnet18`` for ``06_baselines.cifar10_resnet18``; a run without a
    counterpart waits for none and trains what it needs itself, under the cache's lock)."""
    path = Path(params_dir) / manifest_mod.FILE
    m = manifest_mod.load(params_dir) if path.exists() else None
    out: dict[str, set[str]] = {}
    for spec in runs:
        entry = m.notebooks.get(spec.stem) if m else None
        needs = set(entry.needs) if entry else set()
        every = entry is not None and entry.reads_outputs
        out[spec.run_id] = {
            r.run_id for r in runs if r.stem in needs and (every or r.variant == spec.variant)
        }
    return out


def exclusive_stems(params_dir: Path, executor: str = "local") -> set[str]:
    """Notebooks that run alone: ``exclusive: always`` in the manifest, and ``parallel`` under
    the Ray executor (the pool's workers share the machine's core slots instead)."""
    path = Path(params_dir) / manifest_mod.FILE
    if not path.exists():
        return set()
    alone = {"always"} | ({"parallel"} if executor == "ray" else set())
    return {s for s, e in manifest_mod.load(params_dir).notebooks.items() if e.exclusive in alone}


def _init_worker(level: int) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(name)s: %(message)s")


def run_parallel(
    runs: list[RunSpec],
    start: Callable[..., dict[str, Any]],
    kwargs: Callable[[RunSpec], dict[str, Any]],
    *,
    jobs: int,
    params_dir: Path,
    on_done: Callable[[dict[str, Any]], None],
    executor: str = "local",
    keep_going: bool = False,
) -> list[dict[str, Any]]:
    """``[start(spec, **kwargs(spec)) for spec in runs]`` with up to ``jobs`` at once, each in a
    worker process, respecting the manifest's ``needs`` and ``exclusive``; results in the order of
    ``runs``. ``on_done(result)`` runs here after each run (e.g. to write the reports' index).

    The first failure stops new starts, unless ``keep_going``: then every run that does not need a
    failed run still runs, and all failures are logged together before the first is raised."""
    waits = dependencies(runs, params_dir)
    alone = exclusive_stems(params_dir, executor)
    order = {spec.run_id: i for i, spec in enumerate(runs)}
    todo, done = list(runs), {}
    running: dict[Future, RunSpec] = {}
    failures: dict[str, BaseException] = {}
    dropped: list[str] = []
    level = logging.getLogger("wemem").getEffectiveLevel()
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=(level,)
    ) as pool:
        while todo or running:
            if failures and keep_going:  # runs that need a failed (or dropped) run never start
                lost = set(failures) | set(dropped)
                for spec in [s for s in todo if waits[s.run_id] & lost]:
                    todo.remove(spec)
                    dropped.append(spec.run_id)
                    lost.add(spec.run_id)
            if not failures or keep_going:
                for spec in list(todo):
                    busy = [s.stem in alone for s in running.values()]
                    if len(running) >= jobs or any(busy):
                        break
                    if not waits[spec.run_id] <= set(done):
                        continue
                    if spec.stem in alone and running:
                        break  # keep the order: the exclusive run starts when the others end
                    todo.remove(spec)
                    logger.info("[%d/%d] %s [%s]", order[spec.run_id] + 1, len(runs),
                                spec.stem, spec.run_name)  # fmt: skip
                    running[pool.submit(start, spec, **kwargs(spec))] = spec
                    if spec.stem in alone:
                        break
            elif not running:
                break
            if not running:
                if todo and not failures:
                    raise RuntimeError(f"runs waiting for unfinished dependencies: {todo}")
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                spec = running.pop(future)
                try:
                    result = future.result()
                except BaseException as exc:  # noqa: BLE001 - re-raised below, after the others
                    logger.error("%s [%s] failed: %s", spec.stem, spec.run_name, exc)
                    failures[spec.run_id] = exc
                    continue
                done[spec.run_id] = result
                on_done(result)
    if failures:
        if keep_going:
            lines = [f"  {rid}: {_first_line(exc)}" for rid, exc in failures.items()]
            logger.error(
                "%d of %d runs failed%s:\n%s",
                len(failures),
                len(runs),
                f" ({len(dropped)} not run: they need a failed run)" if dropped else "",
                "\n".join(lines),
            )
        raise next(iter(failures.values()))
    return [done[spec.run_id] for spec in runs]


def _first_line(exc: BaseException) -> str:
    name = getattr(exc, "ename", None) or type(exc).__name__
    text = str(getattr(exc, "evalue", None) or exc).strip().splitlines()
    return f"{name}: {text[-1] if text else ''}"[:300]
