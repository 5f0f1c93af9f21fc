"""Progress bars: on for people, off in batch runs (the runner sets ``WEMEM_PROGRESS=0`` so that
executed notebooks and HTML reports do not record hundreds of bar updates)."""

from __future__ import annotations

import os

from tqdm.auto import tqdm

__all__ = ["enabled", "tqdm"]


def enabled(requested: bool | None = None) -> bool:
    """``requested`` when given, else on unless ``WEMEM_PROGRESS=0``."""
    if requested is not None:
        return requested
    return os.environ.get("WEMEM_PROGRESS", "1") != "0"
