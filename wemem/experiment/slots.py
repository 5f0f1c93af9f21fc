"""Core slots shared by every worker pool of a batch: at most ``WEMEM_SLOTS`` trainings at once on
this machine, whichever notebook kernel's pool runs them (a jobserver, as ``make -j`` has).

``wemem reproduce --executor pool --jobs N`` runs N notebooks at once, each kernel with its own
pool of one worker per core. Without a shared limit two sweeps would put twice as many training
processes as cores on the machine (measured: slower than running them one after the other).
With it, the pools take turns at the cores, and a kernel's own single-process work (its start,
imports, the attacks it scores itself, figures, the HTML export) runs beside the other kernel's
trainings instead of leaving a core idle.

A slot is an exclusive ``flock`` on one of ``WEMEM_SLOTS`` files in ``WEMEM_SLOTS_DIR`` (set by
the batch runner for its kernels; without them :func:`held` does nothing). The kernel releases a
lock when its holder dies, so a killed worker never keeps a slot. Which worker gets a free slot
does not change any number: every training is seeded on its own.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from wemem.errors import ParamsError
from wemem.io import machine_locks

__all__ = ["ENV_COUNT", "ENV_DIR", "held", "machine_folder"]

ENV_DIR = "WEMEM_SLOTS_DIR"
ENV_COUNT = "WEMEM_SLOTS"
POLL_S = 0.02


def machine_folder() -> Path:
    """The slots of this machine (every batch on it shares them), beside its other locks."""
    return machine_locks() / "slots"


def _count() -> int:
    raw = os.environ.get(ENV_COUNT, "")
    try:
        n = int(raw)
    except ValueError:
        raise ParamsError(f"{ENV_COUNT} = {raw!r}: expected an integer >= 1") from None
    if n < 1:
        raise ParamsError(f"{ENV_COUNT} = {raw!r}: expected an integer >= 1")
    return n


@contextlib.contextmanager
def held() -> Iterator[int | None]:
    """Hold one core slot for the duration of the block (waiting for a free one); yields its
    number, or ``None`` when no slots are configured."""
    folder = os.environ.get(ENV_DIR, "")
    try:
        import fcntl
    except ImportError:  # no flock (Windows): no slots, as the other locks
        folder = ""
    if not folder:
        yield None
        return

    n = _count()
    Path(folder).mkdir(parents=True, exist_ok=True)
    files = [open(Path(folder) / f"slot-{i}.lock", "a+b") for i in range(n)]  # noqa: SIM115
    try:
        while True:
            for i, f in enumerate(files):
                try:
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                try:
                    yield i
                finally:
                    fcntl.flock(f.fileno(), fcntl.LOCK_UN)
                return
            time.sleep(POLL_S)
    finally:
        for f in files:
            f.close()
