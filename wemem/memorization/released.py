"""The paper's released mem-score files (spec §3.2): file names, loading and saving.

One CSV per (dataset, arch), ``memscore_<dataset>_<arch>.csv`` in the official names, header ``,0``
and rows ``index,score`` with the score of pool row ``index``, min–max normalized per file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from wemem.errors import DataFormatError, DatasetMissingError, ParamsError
from wemem.io import atomic_path
from wemem.memorization.arrays import as_scores, check_int
from wemem.names import ARCHITECTURES

# wemem dataset name -> the name in the released file names (memscore_<dataset>_<arch>.csv).
_OFFICIAL_DATASET = dict(
    zip(
        ("cifar10", "cifar100", "cinic10", "location30", "texas100", "purchase100"),
        ("cifar10", "cifar100", "cinic", "location", "texas", "purchase"),
        strict=True,
    )
)


def released_filename(dataset: str, arch: str) -> str:
    """``memscore_<dataset>_<arch>.csv`` in the official names (cinic10 → cinic, fc → columnfc)."""
    if dataset not in _OFFICIAL_DATASET:
        raise ParamsError(f"dataset must be one of {sorted(_OFFICIAL_DATASET)}; got {dataset!r}")
    if arch not in ARCHITECTURES:
        raise ParamsError(f"arch must be one of {sorted(ARCHITECTURES)}; got {arch!r}")
    return f"memscore_{_OFFICIAL_DATASET[dataset]}_{ARCHITECTURES[arch].official}.csv"


def load_released(path: str | os.PathLike, *, n: int) -> NDArray[np.float64]:
    """``(n,)`` float64 scores from a file in the released format (spec §3.2).

    The file has the header ``,0`` and rows ``index,score``; row ``i`` must carry index ``i`` (the
    score of pool row ``i``), for exactly ``n`` rows, and every score must be a finite number.
    """
    n = check_int(n, "n", 1)
    path = Path(path)
    if not path.is_file():
        raise DatasetMissingError(f"mem-score file {path} not found (expected {n} rows)")
    try:
        df = pd.read_csv(path, header=0)
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataFormatError(f"{path}: not a CSV in the released format ({exc})") from exc
    if df.shape[1] != 2:
        raise DataFormatError(f"{path}: expected 2 columns (',0' header); found {list(df.columns)}")
    if len(df) != n:
        raise DataFormatError(f"{path}: expected {n} rows (pool size); found {len(df)}")
    idx = df.iloc[:, 0].to_numpy()
    bad = np.flatnonzero(idx != np.arange(n))
    if bad.size:
        r = int(bad[0])
        n_dup = int(n - np.unique(idx).size)
        n_missing = int(np.setdiff1d(np.arange(n), idx).size)
        raise DataFormatError(
            f"{path}: index must be 0..{n - 1} in order; row {r} has index {idx[r]} "
            f"({n_missing} missing, {n_dup} duplicated, otherwise out of order)"
        )
    score = pd.to_numeric(df.iloc[:, 1], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(score))
    if bad.size:
        r = int(bad[0])
        raise DataFormatError(
            f"{path}: score in row {r} is {df.iloc[r, 1]!r}; must be a finite number"
        )
    return score


def save_released(path: str | os.PathLike, scores: ArrayLike) -> Path:
    """Write ``(n,)`` finite scores in the released format (header ``,0``), atomically.

    The file is written to a temporary file in the same folder and moved into place with
    ``os.replace``, so a reader never sees a half-written file. Returns the path.
    """
    s = as_scores(scores, "scores")
    if np.isnan(s).any():
        raise ParamsError("scores contains NaN; the released format holds finite scores only")
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        pd.DataFrame({"0": s}).to_csv(fh, float_format="%.17g")
    return path
