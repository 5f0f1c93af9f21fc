"""Where a record was made: the time, the code (wemem version, git commit) and the machine.

Written into each run's ``run.json`` (:mod:`wemem.batch.execution`) and each batch summary
``reproduce-<profile>.json`` (:mod:`wemem.batch.runner`).
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from wemem import __version__

__all__ = ["environment", "utc_now"]


def utc_now() -> dt.datetime:
    """Now, in UTC, to the second."""
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


def environment(cwd: Path) -> dict[str, Any]:
    """wemem's version, the git commit of ``cwd`` (and whether tracked files differ from it), the
    versions of Python, torch, numpy and papermill, the platform and its CPU count."""
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
