"""Content-addressed cache of trained models and per-sample outputs (STYLE.md, principle 4).

An entry's key is the sha256 of a canonical JSON of exactly the settings it depends on (plus a
per-kind code version, bumped when the computation changes). Entries are written atomically (temp
file + ``os.replace``) with a sidecar ``.json`` holding the key's settings and the sha256 of the
payload, so a truncated or corrupted entry is detected on load and recomputed.

Location: ``settings.cache_dir``, else ``$WEMEM_CACHE``, else ``.wemem_cache/`` at the repository
root (the folder holding ``pyproject.toml``), else ``~/.cache/wemem/cache``.

Kinds: ``dense`` (trained dense models), ``pruned`` (a whole pruning run: final model, per-round
outputs, summary), ``round`` (the resume point of an unfinished pruning run, dropped once it
finishes), ``memscores``, ``sensitivity``.

Reachability: when ``$WEMEM_CACHE_LOG`` names a file, every entry loaded or saved is appended to it
as ``<kind>/<key>``; the runner sets it per run and records the list in the run's ``run.json``, so
:func:`gc` can remove what no recorded run uses. :func:`verify` re-hashes every payload.
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

from wemem.io import atomic_write_bytes as _atomic_write
from wemem.io import digest, file_sha256

log = logging.getLogger(__name__)

#: Bump an entry kind's version when the code that computes it changes meaning.
VERSIONS = {"dense": 1, "pruned": 1, "round": 1, "outputs": 1}


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
        _log_access(kind, key)
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)

    def contains(self, kind: str, key: str) -> bool:
        """Whether payload and sidecar exist (not verified: :meth:`load` checks the digest)."""
        return all(p.exists() for p in self._paths(kind, key))

    def drop(self, kind: str, key: str) -> None:
        """Remove an entry if present."""
        for path in self._paths(kind, key):
            path.unlink(missing_ok=True)

    def save(self, kind: str, key: str, obj: Any, spec: dict) -> None:
        payload, meta = self._paths(kind, key)
        buf = io.BytesIO()
        torch.save(obj, buf)
        data = buf.getvalue()
        _atomic_write(payload, data)
        info = {"kind": kind, "key": key, "spec": spec, "sha256": hashlib.sha256(data).hexdigest()}
        _atomic_write(meta, json.dumps(info, sort_keys=True, indent=1, default=str).encode())
        _log_access(kind, key)

    def get_or_compute(self, kind: str, spec: dict, compute: Callable[[], Any]) -> tuple[Any, bool]:
        """Return ``(object, hit)``; on a miss run ``compute()`` and store its result."""
        key = self.key(kind, spec)
        obj = self.load(kind, key)
        if obj is not None:
            return obj, True
        obj = compute()
        self.save(kind, key, obj, spec)
        return obj, False


def _log_access(kind: str, key: str) -> None:
    path = os.environ.get("WEMEM_CACHE_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:  # one short line: atomic with O_APPEND
            f.write(f"{kind}/{key}\n")


def read_access_log(path: Path) -> list[str]:
    """The distinct ``<kind>/<key>`` entries recorded in an access log, sorted."""
    if not Path(path).exists():
        return []
    return sorted({line.strip() for line in Path(path).read_text().splitlines() if line.strip()})


def entries(root: Path) -> dict[str, dict[str, Path | None]]:
    """Every ``<kind>/<key>`` under ``root`` → its ``payload`` and ``meta`` paths (``None``: missing);
    stray files (temp files of an interrupted write) under ``"stray"``."""
    found: dict[str, dict[str, Path | None]] = {}
    root = Path(root)
    if not root.is_dir():
        return found
    for path in sorted(root.glob("*/*/*")):
        kind = path.parent.parent.name
        if path.suffix in (".pt", ".json") and len(path.stem) == 64 and "." not in path.stem:
            slot = found.setdefault(f"{kind}/{path.stem}", {"payload": None, "meta": None})
            slot["payload" if path.suffix == ".pt" else "meta"] = path
        else:
            found.setdefault("stray", {})[str(path)] = path
    return found


def verify(root: Path, *, fix: bool = False) -> dict[str, list[str]]:
    """Re-hash every payload against its sidecar.

    Returns ``{"ok": [...], "corrupted": [...], "incomplete": [...], "stray": [...]}`` of entry
    names (``corrupted``: digest mismatch, e.g. a truncated file; ``incomplete``: payload or sidecar
    missing; ``stray``: leftover temp files). ``fix=True`` deletes everything not ``ok`` (the next
    run recomputes it).
    """
    report: dict[str, list[str]] = {"ok": [], "corrupted": [], "incomplete": [], "stray": []}
    for name, paths in entries(root).items():
        if name == "stray":
            report["stray"] += sorted(paths)
            bad = list(paths.values())
        elif paths["payload"] is None or paths["meta"] is None:
            report["incomplete"].append(name)
            bad = [p for p in paths.values() if p is not None]
        else:
            try:
                want = json.loads(paths["meta"].read_text())["sha256"]
            except (ValueError, KeyError):
                want = None
            ok = file_sha256(paths["payload"]) == want
            report["ok" if ok else "corrupted"].append(name)
            bad = [] if ok else list(paths.values())
        if fix:
            for p in bad:
                p.unlink(missing_ok=True)
    return report


def gc(root: Path, reachable: set[str], *, dry_run: bool = False) -> tuple[list[str], int]:
    """Remove entries not in ``reachable`` (``<kind>/<key>`` names) and stray files.

    Returns the removed names and the bytes freed (what would be, with ``dry_run``).
    """
    removed, freed = [], 0
    for name, paths in entries(root).items():
        if name != "stray" and name in reachable:
            continue
        for p in paths.values():
            if p is None:
                continue
            freed += p.stat().st_size
            if not dry_run:
                p.unlink(missing_ok=True)
        removed.append(name if name != "stray" else f"stray ({len(paths)} files)")
    return removed, freed
