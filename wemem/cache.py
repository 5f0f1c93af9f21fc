"""Content-addressed cache of trained models and per-sample outputs (STYLE.md, principle 4).

An entry's key is the sha256 of a canonical JSON of exactly the settings it depends on (plus a
per-kind code version, bumped when the computation changes). Entries are written atomically (temp
file + ``os.replace``) with a sidecar ``.json`` holding the key's settings and the sha256 of the
payload, so a truncated or corrupted entry is detected on load and recomputed.

Location: ``settings.cache_dir``, else ``$WEMEM_CACHE``, else ``.wemem_cache/`` at the repository
root (the folder holding ``pyproject.toml``), else ``~/.cache/wemem/cache``.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from wemem.reporting import atomic_write_bytes as _atomic_write

log = logging.getLogger(__name__)

#: Bump an entry kind's version when the code that computes it changes meaning.
VERSIONS = {"dense": 1, "pruned": 1, "outputs": 1}


def repo_root(start: Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: cwd) holding ``pyproject.toml``."""
    here = (start or Path.cwd()).resolve()
    for p in (here, *here.parents):
        if (p / "pyproject.toml").exists() and (p / "wemem").is_dir():
            return p
    return None


def default_cache_dir(configured: str = "") -> Path:
    if configured:
        return Path(configured).expanduser()
    if os.environ.get("WEMEM_CACHE"):
        return Path(os.environ["WEMEM_CACHE"]).expanduser()
    root = repo_root()
    if root is not None:
        return root / ".wemem_cache"
    return Path.home() / ".cache" / "wemem" / "cache"


def digest(obj: Any) -> str:
    """sha256 hex of the canonical JSON of ``obj`` (dict keys sorted)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


class Cache:
    """A folder of ``<kind>/<key>.pt`` payloads with ``<key>.json`` sidecars."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def key(self, kind: str, spec: dict) -> str:
        return digest({"kind": kind, "version": VERSIONS.get(kind, 1), "spec": spec})

    def _paths(self, kind: str, key: str) -> tuple[Path, Path]:
        d = self.root / kind / key[:2]
        return d / f"{key}.pt", d / f"{key}.json"

    def load(self, kind: str, key: str) -> Any | None:
        """The stored object, or ``None`` when absent or corrupted (a corrupted entry is removed)."""
        payload, meta = self._paths(kind, key)
        if not (payload.exists() and meta.exists()):
            return None
        data = payload.read_bytes()
        try:
            want = json.loads(meta.read_text())["sha256"]
        except (ValueError, KeyError):
            want = None
        if hashlib.sha256(data).hexdigest() != want:
            log.warning("cache entry %s/%s is corrupted; recomputing", kind, key[:12])
            payload.unlink(missing_ok=True)
            meta.unlink(missing_ok=True)
            return None
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)

    def save(self, kind: str, key: str, obj: Any, spec: dict) -> None:
        payload, meta = self._paths(kind, key)
        buf = io.BytesIO()
        torch.save(obj, buf)
        data = buf.getvalue()
        _atomic_write(payload, data)
        info = {"kind": kind, "key": key, "spec": spec, "sha256": hashlib.sha256(data).hexdigest()}
        _atomic_write(meta, json.dumps(info, sort_keys=True, indent=1, default=str).encode())

    def get_or_compute(self, kind: str, spec: dict, compute: Callable[[], Any]) -> tuple[Any, bool]:
        """Return ``(object, hit)``; on a miss run ``compute()`` and store its result."""
        key = self.key(kind, spec)
        obj = self.load(kind, key)
        if obj is not None:
            return obj, True
        obj = compute()
        self.save(kind, key, obj, spec)
        return obj, False
