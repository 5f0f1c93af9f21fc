"""Content-addressed cache of trained models and per-sample outputs (STYLE.md, principle 4).

An entry's key is the sha256 of a canonical JSON of exactly the settings it depends on, a per-kind
code version and the cache :data:`FORMAT`. Entries are written atomically with a sidecar ``.json``
(the key's settings, the format, the payload's sha256), so a truncated or corrupted entry is
detected on load and recomputed; a miss is computed under the entry's inter-process lock.

Payloads execute nothing when loaded: plain data read with ``torch.load(..., weights_only=True)``.
:func:`encode` turns numpy arrays, numpy scalars and the dataclasses registered with
:func:`payload_type` into plain data; :func:`decode` undoes it, building only registered classes.
An entry of another format (an old pickle) is stale and recomputed, never unpickled.

Location: ``settings.cache_dir``, else ``$WEMEM_CACHE``, else ``.wemem_cache/`` at the repository
root, else ``~/.cache/wemem/cache``. Kinds: ``dense``, ``pruned`` (a pruning run: final model,
per-round outputs, summary), ``round`` (its resume point), ``memscores``, ``sensitivity``,
``alias`` (a pruning run with the same window schedule: :func:`wemem.experiment.stages.prune`),
``attack`` (one attack model's scores, keyed on its inputs: ``experiment.attack_cache``).

Reachability: with ``$WEMEM_CACHE_LOG`` set, every entry loaded or saved is appended to that file
as ``<kind>/<key>``; the runner records the list in ``run.json``, so :func:`gc` removes what no
recorded run uses. :func:`verify` re-hashes every payload. A load that finds an entry corrupted
(digest mismatch, not plain data, malformed sidecar) warns, removes it (it is recomputed) and
records it: :func:`corrupted_entries` lists those of this process; with ``$WEMEM_CACHE_EVENTS``
set, a line ``corrupted <kind>/<key> <reason>`` is also appended to that file.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from wemem.errors import WememError
from wemem.io import atomic_write_bytes as _atomic_write
from wemem.io import digest, file_lock, file_sha256

log = logging.getLogger(__name__)
_CORRUPTED: list[tuple[str, str]] = []  # what loads found corrupted: see corrupted_entries()

#: Bump an entry kind's version when the code that computes it changes meaning.
VERSIONS = {"dense": 1, "pruned": 1, "round": 1, "outputs": 1, "attack": 1}
#: How payloads are stored: 1 = pickles (before weights-only loading), 2 = :func:`encode`d plain
#: data. Part of every key and sidecar; an entry of another format is stale.
FORMAT = 2

# ----------------------------------------------------------------------------- payload encoding

#: The key of a tagged dict (a numpy array, a registered dataclass, or a dict holding this key).
TAG = "__wemem_payload__"
_PLAIN = (int, float, bool, str, bytes, complex, type(None))
_TYPES: dict[str, type] = {}  # registered name -> dataclass
_NAMES: dict[type, str] = {}  # dataclass -> registered name

T = TypeVar("T", bound=type)


def payload_type(cls: T | None = None, *, name: str | None = None) -> Any:
    """Class decorator: let instances of dataclass ``cls`` be cache payloads.

    They are stored as their fields under ``name`` (default: the class's ``__qualname__``) and
    rebuilt by calling ``cls(**fields)`` (fields with ``init=False`` are set afterwards). Decoding
    only ever builds a class registered here. Usable as ``@payload_type``,
    ``@payload_type(name=...)`` or ``payload_type(SomeClass)``.
    """

    def register(c: T) -> T:
        if not (isinstance(c, type) and dataclasses.is_dataclass(c)):
            raise TypeError(f"payload_type: {c!r} is not a dataclass")
        n = name or c.__qualname__
        other = _TYPES.get(n, c)
        if (other.__module__, other.__qualname__) != (c.__module__, c.__qualname__):
            raise ValueError(
                f"payload_type: name {n!r} is taken by {other.__module__}.{other.__qualname__}"
            )
        _TYPES[n], _NAMES[c] = c, n
        return c

    return register if cls is None else register(cls)


def encode(obj: Any) -> Any:
    """``obj`` as plain data that ``torch.load(..., weights_only=True)`` reads back.

    Tensors, ``int``/``float``/``bool``/``str``/``bytes``/``complex``/``None`` stay; lists, tuples
    and dicts are encoded item by item; numpy arrays become ``{TAG: "ndarray", "dtype", "shape",
    "data"}`` (``data`` a 1-d tensor of the C-ordered values in native byte order); numpy scalars
    become Python scalars; registered dataclasses become ``{TAG: "dataclass", "name", "fields"}``.

    Raises:
        TypeError: anything else (an unregistered dataclass, an object array, ...).
    """
    if isinstance(obj, torch.Tensor) or type(obj) in _PLAIN:
        return obj
    if isinstance(obj, np.ndarray):
        return _encode_array(obj)
    if isinstance(obj, np.generic):
        return _encode_scalar(obj)
    if type(obj) in (list, tuple):
        return type(obj)(encode(v) for v in obj)
    if type(obj) in (dict, collections.OrderedDict):
        if TAG in obj:
            return {TAG: "dict", "items": [[_encode_key(k), encode(v)] for k, v in obj.items()]}
        return type(obj)((_encode_key(k), encode(v)) for k, v in obj.items())
    if type(obj) in _NAMES:
        fields = {f.name: encode(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        return {TAG: "dataclass", "name": _NAMES[type(obj)], "fields": fields}
    if dataclasses.is_dataclass(obj):
        raise TypeError(
            f"cache payload: dataclass {type(obj).__qualname__} is not registered; decorate it "
            "with @wemem.cache.payload_type"
        )
    raise TypeError(f"cache payload: cannot store {type(obj).__module__}.{type(obj).__qualname__}")


def _encode_array(a: np.ndarray) -> dict:
    native = a.astype(a.dtype.newbyteorder("="), copy=False)
    flat = np.ascontiguousarray(native).reshape(-1)
    if not flat.flags.writeable:  # torch wants writable memory (it only reads it here)
        flat = flat.copy()
    try:
        data = torch.from_numpy(flat)
    except TypeError:
        raise TypeError(f"cache payload: numpy dtype {a.dtype} has no tensor equivalent") from None
    return {TAG: "ndarray", "dtype": a.dtype.str, "shape": list(a.shape), "data": data}


def _encode_scalar(x: np.generic) -> Any:
    if isinstance(x, np.bool_ | np.number | np.str_ | np.bytes_):
        return x.item()
    raise TypeError(f"cache payload: cannot store a numpy {type(x).__name__}")


def _encode_key(k: Any) -> Any:
    if isinstance(k, np.generic):
        return _encode_scalar(k)
    if type(k) in _PLAIN:
        return k
    if type(k) is tuple:
        return tuple(_encode_key(v) for v in k)
    raise TypeError(f"cache payload: cannot store a dict key of type {type(k).__qualname__}")


def decode(obj: Any) -> Any:
    """The inverse of :func:`encode`: identical numpy arrays (dtype, shape, values) and instances of
    the registered dataclasses.

    Raises:
        ValueError: a tagged dict of an unknown kind, or naming a dataclass no module registered.
    """
    if type(obj) in (list, tuple):
        return type(obj)(decode(v) for v in obj)
    if not isinstance(obj, dict):
        return obj
    tag = obj.get(TAG)
    if tag is None:
        return type(obj)((k, decode(v)) for k, v in obj.items())
    if tag == "ndarray":
        values = obj["data"].numpy().astype(np.dtype(obj["dtype"]), copy=False)
        return values.reshape(obj["shape"])
    if tag == "dict":
        return {k: decode(v) for k, v in obj["items"]}
    if tag == "dataclass":
        cls = _TYPES.get(obj["name"])
        if cls is None:
            raise ValueError(
                f"cache payload names dataclass {obj['name']!r}, which no imported module "
                "registered with @wemem.cache.payload_type"
            )
        fields = {k: decode(v) for k, v in obj["fields"].items()}
        init = {f.name for f in dataclasses.fields(cls) if f.init}
        out = cls(**{k: v for k, v in fields.items() if k in init})
        for k in fields.keys() - init:
            object.__setattr__(out, k, fields[k])
        return out
    raise ValueError(f"cache payload: unknown tag {tag!r}")


# ----------------------------------------------------------------------------- the cache folder


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


def _sidecar(meta: Path, kind: str, key: str) -> tuple[dict | None, str]:
    """``(content, "")`` of the sidecar of ``<kind>/<key>``, or ``(None, why)`` when it is not a
    readable JSON object of the fields below (``format``: absent in format 1) or names another."""
    try:
        info = json.loads(meta.read_text())
    except (OSError, ValueError, RecursionError) as e:
        return None, f"has an unreadable sidecar ({type(e).__name__})"
    if not isinstance(info, dict):
        return None, f"has a sidecar that is a JSON {type(info).__name__}, not an object"
    info.setdefault("format", 1)
    for field, typ in {"kind": str, "key": str, "spec": dict, "sha256": str, "format": int}.items():
        if not isinstance(info.get(field), typ):
            return None, f"has a sidecar whose {field!r} is missing or not of type {typ.__name__}"
    if (info["kind"], info["key"]) != (kind, key):
        return None, f"has the sidecar of {info['kind']}/{info['key'][:12]}"
    return info, ""


class Cache:
    """A folder of ``<kind>/<key>.pt`` payloads with ``<key>.json`` sidecars."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def key(self, kind: str, spec: dict) -> str:
        version = VERSIONS.get(kind, 1)
        return digest({"kind": kind, "version": version, "format": FORMAT, "spec": spec})

    def _paths(self, kind: str, key: str) -> tuple[Path, Path]:
        d = self.root / kind / key[:2]
        return d / f"{key}.pt", d / f"{key}.json"

    def load(self, kind: str, key: str) -> Any | None:
        """The stored object, or ``None`` when absent, stale (another :data:`FORMAT`; left for the
        next save to replace) or corrupted (removed: a digest mismatch, or a payload that is not
        plain data)."""
        payload, meta = self._paths(kind, key)
        if not (payload.exists() and meta.exists()):
            return None
        info, why = _sidecar(meta, kind, key)
        if info is None:
            return self._refuse(kind, key, why)
        if info["format"] != FORMAT:
            why = f"written in cache format {info['format']}, this code reads {FORMAT}"
            log.warning("cache entry %s/%s is stale (%s): recomputed", kind, key[:12], why)
            return None
        data = payload.read_bytes()
        if hashlib.sha256(data).hexdigest() != info["sha256"]:
            return self._refuse(kind, key, "is corrupted (its payload's sha256 differs)")
        try:
            obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - whatever the unpickler refuses, the entry is bad
            return self._refuse(kind, key, f"is not plain data ({type(e).__name__}: {e})")
        _append("WEMEM_CACHE_LOG", f"{kind}/{key}")
        return decode(obj)

    def _refuse(self, kind: str, key: str, why: str) -> None:
        log.warning("cache entry %s/%s %s; removing it and recomputing", kind, key[:12], why)
        self.drop(kind, key)
        _CORRUPTED.append((f"{kind}/{key}", " ".join(why.split())))
        _append("WEMEM_CACHE_EVENTS", f"corrupted {' '.join(_CORRUPTED[-1])}")
        return None

    def contains(self, kind: str, key: str) -> bool:
        """Whether payload and sidecar of the current :data:`FORMAT` exist (the payload is not
        verified: :meth:`load` checks its digest)."""
        payload, meta = self._paths(kind, key)
        if not (payload.exists() and meta.exists()):
            return False
        info, _ = _sidecar(meta, kind, key)
        return info is None or info["format"] == FORMAT

    def drop(self, kind: str, key: str) -> None:
        """Remove an entry if present."""
        for path in self._paths(kind, key):
            path.unlink(missing_ok=True)

    def save(self, kind: str, key: str, obj: Any, spec: dict) -> None:
        """Store ``obj`` (see :func:`encode` for what it may hold) under ``<kind>/<key>``."""
        payload, meta = self._paths(kind, key)
        buf = io.BytesIO()
        torch.save(encode(obj), buf)
        data = buf.getvalue()
        _atomic_write(payload, data)
        sha = hashlib.sha256(data).hexdigest()
        info = {"kind": kind, "key": key, "format": FORMAT, "spec": spec, "sha256": sha}
        _atomic_write(meta, json.dumps(info, sort_keys=True, indent=1, default=str).encode())
        _append("WEMEM_CACHE_LOG", f"{kind}/{key}")

    def get_or_compute(self, kind: str, spec: dict, compute: Callable[[], Any]) -> tuple[Any, bool]:
        """Return ``(object, hit)``; on a miss run ``compute()`` under the entry's :meth:`lock` (a
        process missing it meanwhile waits, then reads it) and store its result."""
        key = self.key(kind, spec)
        obj = self.load(kind, key)
        if obj is not None:
            return obj, True
        with self.lock(kind, key):
            obj = self.load(kind, key)  # written while this process waited for the lock
            if obj is not None:
                return obj, True
            obj = compute()
            self.save(kind, key, obj, spec)
        return obj, False

    def lock(self, kind: str, key: str) -> contextlib.AbstractContextManager:
        """The inter-process lock of ``<kind>/<key>`` (:func:`wemem.io.file_lock` on
        ``.locks/<kind>-<key>.lock``)."""
        return file_lock(self.root / ".locks" / f"{kind}-{key}.lock", what=f"{kind}/{key[:12]}")


def _append(env: str, line: str) -> None:
    """Append ``line`` to the file named by ``$<env>``, if set."""
    path = os.environ.get(env)
    if path:
        with open(path, "a", encoding="utf-8") as f:  # one short line: atomic with O_APPEND
            f.write(line + "\n")


def corrupted_entries() -> list[tuple[str, str]]:
    """``(<kind>/<key>, reason)`` of each corrupted entry a load in this process found and removed."""
    return list(_CORRUPTED)


def read_access_log(path: Path) -> list[str]:
    """The distinct ``<kind>/<key>`` entries recorded in an access log, sorted."""
    lines = Path(path).read_text().splitlines() if Path(path).exists() else []
    return sorted({line.strip() for line in lines if line.strip()})


def entries(root: Path) -> dict[str, dict[str, Path | None]]:
    """Every ``<kind>/<key>`` under ``root`` → its ``payload`` and ``meta`` paths (``None``: missing);
    stray files (temp files of an interrupted write) under ``"stray"``."""
    found: dict[str, dict[str, Path | None]] = {}
    for path in sorted(Path(root).glob("*/*/*")):
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
    run recomputes it). A ``root`` that is not a folder raises :class:`WememError`.
    """
    if not Path(root).is_dir():
        raise WememError(f"cache verify: {root} is not a folder (no cache there to verify)")
    report: dict[str, list[str]] = {"ok": [], "corrupted": [], "incomplete": [], "stray": []}
    for name, paths in entries(root).items():
        if name == "stray":
            report["stray"] += sorted(paths)
            bad = list(paths.values())
        elif paths["payload"] is None or paths["meta"] is None:
            report["incomplete"].append(name)
            bad = [p for p in paths.values() if p is not None]
        else:
            info, _ = _sidecar(paths["meta"], *name.split("/"))
            ok = info is not None and file_sha256(paths["payload"]) == info["sha256"]
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
        for p in filter(None, paths.values()):
            freed += p.stat().st_size
            if not dry_run:
                p.unlink(missing_ok=True)
        removed.append(name if name != "stray" else f"stray ({len(paths)} files)")
    return removed, freed
