"""Locks that keep two batches, or a batch and ``cache gc``, from undoing each other's work.

A batch holds an **exclusive** lock on its outputs folder (:func:`outputs_lock`: a file in the
system's temp folder named after the folder's resolved path, so the outputs hold nothing but
results; batches on other machines sharing a network folder are not covered) and a **shared**
lock on the cache (``<cache>/.locks/batches.lock``) from its first write to its end. A
second batch on the same outputs waits (``--wait``) or exits with one line naming the holder;
batches on other outputs share the cache (an entry is computed under its own lock,
:meth:`wemem.cache.Cache.lock`). ``cache gc`` takes the cache lock exclusively and refuses while a
batch holds it. The locks are ``flock`` locks: the kernel releases them when their holder dies,
so a lock left by a killed batch is simply taken over (its owner line is rewritten).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from wemem.errors import WememError
from wemem.io import machine_locks

log = logging.getLogger(__name__)

CACHE_LOCK = Path(".locks") / "batches.lock"


def outputs_lock(outputs_root: Path) -> Path:
    """The lock file of an outputs folder (one per resolved path on this machine)."""
    key = hashlib.sha256(str(Path(outputs_root).resolve()).encode()).hexdigest()[:16]
    return machine_locks() / f"outputs-{key}.lock"


def _flock(f, mode: int, *, wait: bool) -> bool:
    """Take ``mode`` on the open file ``f``; ``False`` when it is held and ``wait`` is false."""
    import fcntl

    try:
        fcntl.flock(f.fileno(), mode | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        if not wait:
            return False
        fcntl.flock(f.fileno(), mode)
        return True


def _owner(path: Path) -> str:
    text = path.read_text(encoding="utf-8", errors="replace").strip() if path.exists() else ""
    return text or "another process"


@contextlib.contextmanager
def _held(path: Path, *, exclusive: bool, wait: bool, busy: str) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # no flock (Windows): nothing is locked
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as f:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        if not _flock(f, mode, wait=False):
            if not wait:
                raise WememError(busy.format(owner=_owner(path)))
            log.warning("%s; waiting for it", busy.format(owner=_owner(path)))
            _flock(f, mode, wait=True)
        if exclusive:  # who holds it, for the next one's message
            f.seek(0)
            f.truncate()
            f.write(f"pid {os.getpid()} since {dt.datetime.now().isoformat(timespec='seconds')}")
            f.flush()
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def batch(outputs_root: Path, cache_root: Path, *, wait: bool = False) -> Iterator[None]:
    """Hold the outputs folder (exclusive) and the cache (shared) for one batch.

    Raises:
        WememError: another batch holds ``outputs_root`` (or ``cache gc`` the cache) and
            ``wait`` is false; the message names the holder and ``--wait``.
    """
    outputs = outputs_lock(outputs_root)
    cache = Path(cache_root) / CACHE_LOCK
    with _held(
        outputs,
        exclusive=True,
        wait=wait,
        busy=f"outputs folder {outputs_root} is in use by {{owner}}; wait for it to end, "
        "pass --wait to wait, or choose other --outputs",
    ), _held(
        cache,
        exclusive=False,
        wait=wait,
        busy=f"cache {cache_root} is being collected ({{owner}}: cache gc); pass --wait to wait",
    ):  # fmt: skip
        yield


@contextlib.contextmanager
def collecting(cache_root: Path) -> Iterator[None]:
    """Hold the cache exclusively for ``cache gc``.

    Raises:
        WememError: a batch is running on this cache (it would lose the entries it writes).
    """
    with _held(
        Path(cache_root) / CACHE_LOCK,
        exclusive=True,
        wait=False,
        busy=f"cache {cache_root} is in use by a running batch; `cache gc` would delete entries it "
        "is writing: run it when no batch runs",
    ):
        yield
