"""Atomic file writes, canonical JSON and the one content digest used across wemem.

Every result file (metrics, tables, figures, cache entries, data caches, released mem-score files,
``run.json``) is written through :func:`atomic_write_bytes` or :func:`atomic_path`: the bytes go to
a temporary file in the same folder, are flushed and synced, then renamed over the target, so a
reader sees the old file or the new one, never a part. Published files get the usual permissions
(``0o666`` less the umask), not ``mkstemp``'s owner-only ``0o600``.

:func:`digest` is the sha256 of the canonical JSON of an object (sorted keys, compact separators,
``str`` for anything JSON does not know); cache keys, data-cache keys and run fingerprints use it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import enum
import hashlib
import json
import logging
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "canonical_json",
    "digest",
    "file_sha256",
    "to_jsonable",
]


def _current_umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it; restore at once
    os.umask(mask)
    return mask


log = logging.getLogger(__name__)

FILE_MODE = 0o666 & ~_current_umask()
_CHUNK = 1 << 20


def machine_locks() -> Path:
    """The folder of this machine's lock files (batches' outputs locks, the pools' core slots):
    in the system's temp folder, shared by every process on the machine."""
    return Path(tempfile.gettempdir()) / "wemem-locks"


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, *, what: str = "") -> Iterator[None]:
    """Hold an exclusive advisory ``flock`` on ``path`` (created with its folder) inside the block;
    released on exit, also when the holder dies. Without ``fcntl`` (Windows) nothing is locked."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("%s is being computed elsewhere: waiting", what or path.name)
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (the owner of a stale temp folder)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``dest``; when the block ends without error, move it onto
    ``dest`` (``os.replace``). On error the temporary file is removed and ``dest`` is untouched."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, FILE_MODE)
        os.replace(tmp_path, dest)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (flushed and synced before the rename); parent
    folders are created. Returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return path


def atomic_write_text(path: str | os.PathLike, text: str, *, encoding: str = "utf-8") -> Path:
    """Text version of :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode(encoding))


def canonical_json(obj: Any) -> str:
    """The canonical JSON text of ``obj``: sorted keys, compact separators, ``str`` fallback."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def digest(obj: Any) -> str:
    """sha256 hex of :func:`canonical_json` of ``obj``."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 hex of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def to_jsonable(obj: Any) -> Any:
    """Convert ``obj`` into plain JSON types (dict, list, str, int, float, bool, None).

    Numpy scalars become Python scalars and arrays nested lists; dataclasses become dicts; paths,
    dates and enums become strings (enum: its value). Non-finite floats (nan, inf) become ``None``
    so that the file is strict JSON that any reader accepts.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=repr) if isinstance(obj, (set, frozenset)) else obj
        return [to_jsonable(v) for v in items]
    if isinstance(obj, enum.Enum):
        return to_jsonable(obj.value)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (dt.datetime, dt.date)):
        return obj.isoformat()
    if hasattr(obj, "tolist"):  # pandas Series/Index, torch tensors
        return to_jsonable(obj.tolist())
    raise TypeError(f"cannot store {type(obj).__name__} in metrics.json: {obj!r:.80}")
