"""Where independent trainings run: in this process (``local``), in a pool of worker processes on
this machine (``pool``) or as Ray tasks (``ray``).

The notebooks' code is sequential: it asks an :class:`~wemem.experiment.replicate.Experiment` for a model
and gets it from the content-addressed cache, training it on a miss. Before such a loop the
library calls :func:`prefetch` with the list of independent trainings the loop is about to need
(the victim's and every shadow's dense model, or their pruning runs with a defense, for every
setting of a sweep). The classifier attacks of an evaluation, each seeded on its own, are
trained through :func:`submit_calls` (one task per attack model), so a sweep keeps the workers
busy with the attack models of several settings while this process loads the next one. With the
``local`` executor that is a no-op and the loop trains each model in turn; with ``pool`` or
``ray`` every missing entry is trained by a worker (or Ray task) that rebuilds the experiment
from its settings and writes the entry to the shared cache, and the loop then only reads. The
computation is the same function either way, so the results are identical (tested).

Configuration (set by ``wemem reproduce --executor ray`` for the notebook kernels it starts, or
by hand before opening a notebook):

* ``WEMEM_EXECUTOR``: ``local`` (default), ``pool`` or ``ray``;
* ``WEMEM_POOL_WORKERS``: worker processes of ``pool`` (default: the CPU count), each with one
  torch thread, started once per process (a notebook kernel) and reused; a task runs with the
  ``local`` executor inside its worker (no nested pools);
* ``WEMEM_SLOTS_DIR`` / ``WEMEM_SLOTS``: the machine's core slots a pool task holds while it runs
  (:mod:`wemem.experiment.slots`; set by ``wemem reproduce --executor pool`` for its kernels, so
  the pools of runs in flight at once never run more trainings than there are cores);
* ``WEMEM_RAY_ADDRESS``: the address of an existing cluster (``ray.init(address=...)``, e.g.
  ``auto`` or ``ray://head:10001``); empty: start a local cluster on this machine;
* ``WEMEM_TASK_CPUS`` / ``WEMEM_TASK_GPUS``: ``num_cpus`` / ``num_gpus`` of each task (a params
  file sets them with its ``resources:`` key; defaults 1 and 0).

The cache folder must be shared by the driver and the workers (it is, on one machine; on a
cluster put ``WEMEM_CACHE`` on a shared file system). Ray is an optional extra
(``pip install 'wemem[cluster]'``); usage statistics are switched off
(``RAY_USAGE_STATS_ENABLED=0``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from wemem.defenses.catalog import needs_memscores
from wemem.errors import ParamsError

log = logging.getLogger(__name__)

EXECUTORS = ("local", "pool", "ray")


@dataclass(frozen=True, eq=False)
class Request:
    """One training the experiment can do on its own: ``dense`` (the role's dense model),
    ``pruned`` (Base pruning, iterative or one-shot) or ``defended`` (pruning with a defense).

    What it computes and where that is cached is decided in one place,
    :meth:`wemem.experiment.replicate.Experiment.resolve`; the experiment's ``run`` and
    ``is_cached`` use it, and so does this module (which never imports the experiment)."""

    kind: str
    role: str
    defense: str = "base"
    one_shot: bool = False
    settings: dict[str, Any] = field(default_factory=dict)


def name() -> str:
    """The configured executor (``WEMEM_EXECUTOR``), checked."""
    value = os.environ.get("WEMEM_EXECUTOR", "local") or "local"
    if value not in EXECUTORS:
        raise ParamsError(f"WEMEM_EXECUTOR = {value!r}: allowed values are {', '.join(EXECUTORS)}")
    return value


def _resources() -> dict[str, float]:
    out = {}
    for key, env, default in (
        ("num_cpus", "WEMEM_TASK_CPUS", 1.0),
        ("num_gpus", "WEMEM_TASK_GPUS", 0.0),
    ):
        raw = os.environ.get(env, "")
        try:
            value = float(raw) if raw else default
        except ValueError:
            raise ParamsError(f"{env} = {raw!r}: expected a number") from None
        if value < 0:
            raise ParamsError(f"{env} = {raw!r}: must be >= 0")
        out[key] = value
    return out


def prefetch(exp, requests: list[Request]) -> int:
    """Make sure every request's cache entry exists, training the missing ones in parallel when
    the executor is ``ray``. Dense models go first (pruning runs start from them): each role's
    dense model of each defense's experiment (DP-SGD on a BatchNorm CNN has GroupNorm ones,
    :meth:`~wemem.experiment.replicate.Experiment.for_defense`), each once.

    Returns:
        the number of trainings submitted (0 with the ``local`` executor, or when all are cached).
    """
    if name() == "local" or not requests:
        return 0
    if any(r.kind == "defended" and needs_memscores(r.defense) for r in requests):
        exp.memscores()  # WeMem defenses read the mem-scores: compute them once, here
    dense: dict[str, Request] = {}
    for r in requests:
        d = Request("dense", r.role, r.defense if r.kind == "defended" else "base")
        kind, spec, _ = exp.resolve(d)
        dense.setdefault(exp.cache.key(kind, spec), d)
    run = _run_pool if name() == "pool" else _run_ray
    submitted = run(exp, list(dense.values()))
    unique = {repr(r): r for r in requests if r.kind != "dense"}
    return submitted + run(exp, list(unique.values()))


class Pending:
    """The results of calls :func:`submit_calls` started, in call order, from :meth:`results`
    (which waits for them). Under ``local`` they were computed when submitted."""

    def __init__(self, fetch) -> None:
        self._fetch = fetch
        self._results: list | None = None

    def results(self) -> list:
        """The calls' results in order (waits for running calls the first time)."""
        if self._results is None:
            self._results = self._fetch()
            self._fetch = None
        return self._results


def submit_calls(fn, calls: list[dict[str, Any]]) -> Pending:
    """Start ``[fn(**kw) for kw in calls]`` and return at once: in this process (``local``,
    computed now), in the worker pool (``pool``) or one Ray task per call (``ray``); the caller
    does other work and reads :meth:`Pending.results` later. ``fn`` must be importable (a
    module-level function) and its result must not depend on the order of the calls (seed each
    call on its own)."""
    if name() == "local" or not calls:
        done = [fn(**kw) for kw in calls]
        return Pending(lambda: done)
    if name() == "pool":
        futures = [_pool().submit(_call, fn, kw) for kw in calls]
        log.info("pool: %d calls of %s submitted", len(calls), fn.__name__)
        return Pending(lambda: [f.result() for f in futures])
    ray = _ray()
    task = ray.remote(**_resources())(_call)
    refs = [task.remote(fn, kw) for kw in calls]
    log.info("ray: %d calls of %s submitted", len(calls), fn.__name__)
    return Pending(lambda: ray.get(refs))


def _call(fn, kw: dict[str, Any]):
    from wemem.experiment import slots

    with slots.held():
        return fn(**kw)


def _run_ray(exp, requests: list[Request]) -> int:
    todo = [r for r in requests if not exp.is_cached(r)]
    if not todo:
        return 0
    ray = _ray()
    task = ray.remote(**_resources())(_train)
    cache_dir = str(exp.cache.root)
    refs = [task.remote(type(exp), exp.settings, exp.seed, cache_dir, r) for r in todo]
    log.info("ray: %d trainings submitted", len(refs))
    ray.get(refs)
    return len(todo)


def _run_pool(exp, requests: list[Request]) -> int:
    todo = [r for r in requests if not exp.is_cached(r)]
    if not todo:
        return 0
    pool = _pool()
    cache_dir = str(exp.cache.root)
    futures = [pool.submit(_train, type(exp), exp.settings, exp.seed, cache_dir, r) for r in todo]
    log.info("pool: %d trainings submitted", len(futures))
    for f in futures:
        f.result()  # re-raises a worker's exception here
    return len(todo)


_POOL: dict[str, Any] = {}


def pool_workers() -> int:
    """The pool's worker count: ``WEMEM_POOL_WORKERS``, default the CPU count."""
    raw = os.environ.get("WEMEM_POOL_WORKERS", "")
    try:
        workers = int(raw) if raw else (os.cpu_count() or 1)
    except ValueError:
        raise ParamsError(f"WEMEM_POOL_WORKERS = {raw!r}: expected an integer >= 1") from None
    if workers < 1:
        raise ParamsError(f"WEMEM_POOL_WORKERS = {raw!r}: expected an integer >= 1")
    return workers


def _pool():
    """The process pool of this process (started at the first use, reused): spawned workers (no
    fork of a process holding torch's threads), each with the ``local`` executor and one thread."""
    if "pool" not in _POOL:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        workers = pool_workers()
        ctx = multiprocessing.get_context("spawn")
        env = {k: v for k, v in os.environ.items() if k.startswith("WEMEM_")}
        _POOL["pool"] = ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=_worker_init, initargs=(env,)
        )
        log.info("pool: %d worker processes", workers)
    return _POOL["pool"]


def _worker_init(env: dict[str, str]) -> None:
    import signal

    import torch

    # the kernel's end interrupts its process group: an idle worker exits without a traceback in
    # the batch log (a busy one's task fails with SystemExit, as it failed with KeyboardInterrupt)
    signal.signal(signal.SIGINT, _exit_on_interrupt)
    os.environ.update(env)
    os.environ["WEMEM_EXECUTOR"] = "local"
    torch.set_num_threads(1)


def _exit_on_interrupt(signum: int, frame) -> None:
    raise SystemExit(128 + signum)


def _train(experiment: type, settings, seed: int, cache_dir: str, request: Request) -> None:
    """A Ray task: rebuild the experiment (its class, same settings, seed and cache) and run one
    request (:meth:`wemem.experiment.replicate.Experiment.run`)."""
    import dataclasses

    from wemem.experiment import slots

    settings = dataclasses.replace(settings, cache_dir=cache_dir)
    with slots.held():
        experiment(settings, seed=seed).run(request)


def _ray():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise ParamsError(
            "executor 'ray' needs Ray: pip install 'wemem[cluster]' (or use --executor local)"
        ) from None
    if not ray.is_initialized():
        address = os.environ.get("WEMEM_RAY_ADDRESS") or None
        env = {k: v for k, v in os.environ.items() if k.startswith("WEMEM_")}
        env["RAY_USAGE_STATS_ENABLED"] = "0"
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            runtime_env={"env_vars": env},
        )
        log.info("ray: connected to %s", address or "a local cluster")
    return ray


def shutdown() -> None:
    """Stop this process's worker pool and disconnect from Ray (stopping the local cluster this
    process started), if either runs."""
    import sys

    pool = _POOL.pop("pool", None)
    if pool is not None:
        pool.shutdown()
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()
