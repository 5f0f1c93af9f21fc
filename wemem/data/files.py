"""File helpers for the data package: SHA256SUMS records and stale raw-file caches (atomic writes
and content keys come from :mod:`wemem.io`, re-exported here for the loaders).

A dataset folder may hold ``SHA256SUMS`` (``<hex>  <relative path>`` per line, as written by
``sha256sum``). :func:`wemem.data.fetch` (module ``download``) records it at the first fetch of
a tabular set; later fetches and every parse of a raw file verify against it, so a silently
replaced or truncated file is caught.

A folder written by ``wemem data fixtures`` (:mod:`wemem.data.fixtures`) carries
``WEMEM_FIXTURE.json``: a synthetic stand-in, not the real dataset. :func:`read_fixture_marker`
reads it (the CIFAR loader takes its md5 sums) and :func:`fixture_digest` keys pools on it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path

from wemem.errors import DataFormatError
from wemem.io import atomic_path
from wemem.io import file_sha256 as sha256_file

log = logging.getLogger(__name__)

SUMS_NAME = "SHA256SUMS"
#: Marker file of a fixture folder: generator, seed, sizes and {relative path: md5} of its files.
FIXTURE_MARKER = "WEMEM_FIXTURE.json"
_CHUNK = 1 << 20


def prune_caches(folder: Path, keep: Path) -> None:
    """Delete the ``.wemem_cache_*`` files in ``folder`` other than ``keep`` (stale raw files)."""
    for old in folder.glob(".wemem_cache_*"):
        if old != keep:
            log.info("removing stale cache %s", old)
            old.unlink(missing_ok=True)


def stat_key(paths: Iterable[Path]) -> list[tuple[str, int, int]]:
    """(name, size, mtime_ns) of each file: cheap identity for cache keys of large raw files."""
    return [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in paths]


def read_sums(folder: Path) -> dict[str, str]:
    """The records of ``folder/SHA256SUMS`` as {relative path: hex}; {} when it does not exist."""
    path = folder / SUMS_NAME
    if not path.exists():
        return {}
    sums: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64:
            raise DataFormatError(
                f"{path}: line {lineno} is {line!r}; expected '<64 hex digits>  <relative path>'"
            )
        sums[parts[1].strip().lstrip("*")] = parts[0].lower()
    return sums


def verify_sums(folder: Path, rels: Iterable[str]) -> None:
    """Check each file in ``rels`` that has a SHA256SUMS record against it.

    Raises DataFormatError naming the file, the recorded and the actual digest, and the fix.
    """
    sums = read_sums(folder)
    for rel in rels:
        if rel not in sums:
            continue
        actual = sha256_file(folder / rel)
        if actual != sums[rel]:
            raise DataFormatError(
                f"{folder / rel}: sha256 {actual} differs from {sums[rel]} recorded in "
                f"{folder / SUMS_NAME} at first fetch. Delete the file and run `wemem data fetch "
                f"{folder.name}` again, or delete {SUMS_NAME} if you replaced it on purpose."
            )


def record_sums(folder: Path, rels: Iterable[str]) -> None:
    """Add a SHA256SUMS record for each file in ``rels`` that has none yet (atomic rewrite)."""
    sums = read_sums(folder)
    new = {rel: sha256_file(folder / rel) for rel in rels if rel not in sums}
    if not new:
        return
    sums.update(new)
    with atomic_path(folder / SUMS_NAME) as tmp:
        tmp.write_text("".join(f"{h}  {rel}\n" for rel, h in sorted(sums.items())))
    log.info("recorded sha256 of %s in %s", ", ".join(sorted(new)), folder / SUMS_NAME)


def read_fixture_marker(folder: Path) -> dict | None:
    """The content of ``folder/WEMEM_FIXTURE.json``, or None when the folder is no fixture.

    Raises DataFormatError when the marker is not a JSON object with an ``md5`` mapping.
    """
    path = Path(folder) / FIXTURE_MARKER
    if not path.is_file():
        return None
    try:
        marker = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataFormatError(f"{path}: not a JSON fixture marker ({exc})") from exc
    if not isinstance(marker, dict) or not isinstance(marker.get("md5"), dict):
        raise DataFormatError(f"{path}: expected a JSON object with an 'md5' mapping")
    return marker


def fixture_digest(folder: Path) -> str | None:
    """sha256 of ``folder/WEMEM_FIXTURE.json`` (it lists every file's md5); None without one."""
    path = Path(folder) / FIXTURE_MARKER
    return sha256_file(path) if path.is_file() else None
