"""Tabular loaders: Texas100, Location30, Purchase100 (spec §5.1) and the offline synthetic set.

Features are binary and used raw (0/1 as float32, no scaling). Labels are stored 1-based and
shifted to 0-based. The training/test pools come from a seeded 80/20 ``train_test_split``; the
official code called it without a seed (only ``location.pkl`` was shipped), so we seed it with
``pool_seed`` to make every run reproducible. The sizes match spec §5.1 exactly.

Parsing Texas/Purchase text takes tens of seconds, so the parsed uint8 arrays are cached in
``.wemem_cache_<digest>.npz`` next to the raw files, keyed on their size and mtime. A raw file is
checked against ``SHA256SUMS`` (when present) every time it is parsed.
"""

from __future__ import annotations

import logging
import math
import numbers
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from wemem.data.files import prune_caches, stat_key, verify_sums
from wemem.data.registry import DATASETS, RawPool, check_labels, require_files, resolve_file
from wemem.data.splits import shuffle_split
from wemem.errors import DataFormatError, ParamsError
from wemem.io import atomic_path
from wemem.io import digest as digest_of

log = logging.getLogger(__name__)

POOL_TEST_SIZE = 0.2
_CACHE_VERSION = 1
TEXAS_SUFFIXES = ("", ".txt")
#: Lines of a text file that the format checks (``check_texas``, ``check_purchase``) read.
HEAD_ROWS = 5


def split_pool(n: int, *, seed: int) -> tuple[np.ndarray, int]:
    """Seeded 80/20 split of rows ``0..n-1`` into the training pool P and the test pool T.

    Returns ``(order, n_train)``: (n,) int64, P's rows then T's rows, each in
    ``train_test_split`` order; ``order[:n_train]`` is P.
    """
    # train_test_split's test size for a float share: ceil(share * n), in float arithmetic
    tr, te = shuffle_split(np.arange(n), math.ceil(POOL_TEST_SIZE * n), seed)
    return np.concatenate([tr, te]).astype(np.int64), len(tr)


def _pool(x: np.ndarray, y: np.ndarray, *, pool_seed: int) -> RawPool:
    order, n_train = split_pool(len(y), seed=pool_seed)
    xt = torch.from_numpy(np.ascontiguousarray(x[order])).to(torch.float32)
    return RawPool(x=xt, y=y[order], n_train=n_train)


def _check_features(x: np.ndarray, *, width: int, n_rows: int, source: object) -> None:
    if x.ndim != 2 or x.shape[1] != width:
        raise DataFormatError(f"{source}: features have shape {x.shape}; expected (N, {width})")
    if x.shape[0] != n_rows:
        raise DataFormatError(f"{source}: {x.shape[0]} feature rows but {n_rows} labels")
    binary = x.max() <= 1 if x.dtype == np.uint8 else np.all((x == 0) | (x == 1))
    if not binary:
        raise DataFormatError(f"{source}: features must be binary 0/1")


def _read_csv(path: Path, dtype: type) -> np.ndarray:
    try:
        return pd.read_csv(path, header=None, dtype=dtype).to_numpy()
    except (ValueError, OverflowError, pd.errors.EmptyDataError) as exc:
        raise DataFormatError(
            f"{path}: not comma-separated {np.dtype(dtype).name} values ({exc})"
        ) from exc


def _cached(folder: Path, paths: list[Path], parse) -> tuple[np.ndarray, np.ndarray]:
    """(x uint8, y int64 0-based) from the cache, or from ``parse()`` and then cached."""
    key = digest_of({"version": _CACHE_VERSION, "files": stat_key(paths)})
    cache = folder / f".wemem_cache_{key}.npz"
    if cache.exists():
        with np.load(cache, allow_pickle=False) as f:
            return f["x"], f["y"]
    verify_sums(folder, [str(p.relative_to(folder)) for p in paths])
    log.info("%s: parsing %s (cached afterwards)", folder.name, ", ".join(p.name for p in paths))
    x, y = parse()
    with atomic_path(cache) as tmp, open(tmp, "wb") as f:
        np.savez(f, x=x, y=y)
    prune_caches(folder, keep=cache)
    return x, y


def load_texas(root: str | Path | None = None, *, pool_seed: int) -> RawPool:
    """Texas100: ``texas/100/feats`` (N x 6169, 0/1) and ``labels`` (1..100), optional .txt."""
    info = DATASETS["texas100"]
    folder = require_files("texas100", root, suffixes=TEXAS_SUFFIXES)
    feats, labels = (resolve_file(folder, rel, suffixes=TEXAS_SUFFIXES) for rel in info.files)

    def parse() -> tuple[np.ndarray, np.ndarray]:
        y_raw = _read_csv(labels, np.int64)
        if y_raw.ndim != 2 or y_raw.shape[1] != 1:
            raise DataFormatError(f"{labels}: {y_raw.shape[1]} columns; expected one label a row")
        y = check_labels(y_raw[:, 0], num_classes=info.num_classes, offset=1, source=labels)
        x = _read_csv(feats, np.uint8)
        _check_features(x, width=info.input_shape[0], n_rows=len(y), source=feats)
        return x, y

    x, y = _cached(folder, [feats, labels], parse)
    return _pool(x, y, pool_seed=pool_seed)


def load_purchase(root: str | Path | None = None, *, pool_seed: int) -> RawPool:
    """Purchase100: ``purchase100.txt``, comma-separated, label (1..100) in column 0, 600 0/1."""
    info = DATASETS["purchase100"]
    folder = require_files("purchase100", root)
    path = folder / info.files[0]

    def parse() -> tuple[np.ndarray, np.ndarray]:
        raw = _read_csv(path, np.uint8)
        if raw.ndim != 2 or raw.shape[1] != info.input_shape[0] + 1:
            raise DataFormatError(
                f"{path}: rows have {raw.shape[1]} columns; expected 1 label + "
                f"{info.input_shape[0]} features"
            )
        y = check_labels(raw[:, 0], num_classes=info.num_classes, offset=1, source=path)
        x = np.ascontiguousarray(raw[:, 1:])
        _check_features(x, width=info.input_shape[0], n_rows=len(y), source=path)
        return x, y

    x, y = _cached(folder, [path], parse)
    return _pool(x, y, pool_seed=pool_seed)


def _check_head(path: Path, *, width: int, classes: int, what: str) -> None:
    """The first :data:`HEAD_ROWS` lines of a comma-separated file: ``width`` values each, 0/1,
    except a first one that is a label in 1..``classes`` when ``classes`` (0: no label column).

    Raises DataFormatError naming ``path`` and the line."""
    with open(path, "rb") as f:
        lines = [f.readline(4 * width + 64) for _ in range(HEAD_ROWS)]
    lines = [line for line in lines if line]
    if not lines:
        raise DataFormatError(f"{path}: empty; expected {what}")
    for lineno, line in enumerate(lines, 1):
        values = [v.strip() for v in line.split(b",")]
        if len(values) != width:
            raise DataFormatError(
                f"{path}: line {lineno} has {len(values)} values; expected {what}"
            )
        head = values[0].decode("ascii", "replace")
        if classes and not (head.isdigit() and 1 <= int(head) <= classes):
            raise DataFormatError(f"{path}: line {lineno} starts with {head!r}; expected {what}")
        bad = next((v for v in values[int(classes > 0) :] if v not in (b"0", b"1")), None)
        if bad is not None:
            raise DataFormatError(
                f"{path}: line {lineno} holds {bad.decode('ascii', 'replace')!r}; expected {what}"
            )


def check_texas(root: str | Path | None = None) -> None:
    """Cheap check of Texas100: the first lines of ``feats`` and ``labels`` (see _check_head)."""
    info = DATASETS["texas100"]
    folder = require_files("texas100", root, suffixes=TEXAS_SUFFIXES)
    feats, labels = (resolve_file(folder, rel, suffixes=TEXAS_SUFFIXES) for rel in info.files)
    _check_head(labels, width=1, classes=info.num_classes, what="one label in 1..100 a line")
    width = info.input_shape[0]
    _check_head(feats, width=width, classes=0, what=f"{width} comma-separated 0/1 a line")


def check_purchase(root: str | Path | None = None) -> None:
    """Cheap check of Purchase100: the first lines of ``purchase100.txt`` (see _check_head)."""
    info = DATASETS["purchase100"]
    folder = require_files("purchase100", root)
    width = info.input_shape[0]
    what = f"a label in 1..100, then {width} comma-separated 0/1, a line"
    _check_head(folder / info.files[0], width=width + 1, classes=info.num_classes, what=what)


def _read_location(root: str | Path | None) -> tuple[np.ndarray, np.ndarray]:
    """Location30's checked features and 0-based labels."""
    info = DATASETS["location30"]
    folder = require_files("location30", root)
    path = folder / info.files[0]
    verify_sums(folder, info.files)
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = sorted(f.files)
            x, y_raw = (f[k] if k in keys else None for k in ("x", "y"))
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataFormatError(f"{path}: not a readable .npz archive ({exc})") from exc
    if x is None or y_raw is None:
        raise DataFormatError(f"{path}: keys {keys}; expected 'x' and 'y'")
    y = check_labels(y_raw.reshape(-1), num_classes=info.num_classes, offset=1, source=path)
    _check_features(x, width=info.input_shape[0], n_rows=len(y), source=path)
    return x, y


def check_location(root: str | Path | None = None) -> None:
    """Location30's whole check (its file is small): sha256, keys, shapes, labels."""
    _read_location(root)


def load_location(root: str | Path | None = None, *, pool_seed: int) -> RawPool:
    """Location30: ``data_complete.npz`` with keys ``x`` (N x 446, 0/1) and ``y`` (1..30)."""
    x, y = _read_location(root)
    return _pool(x, y, pool_seed=pool_seed)


SYNTHETIC_DEFAULTS: dict[str, int | float] = {
    "n_samples": 6000,
    "n_features": 600,
    "n_classes": 50,
    "density": 0.3,
    "bitflip": 0.30,
    "seed": 0,
}


def make_synthetic(
    *, n_samples: int, n_features: int, n_classes: int, density: float, bitflip: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A Purchase-like binary set (spec cpu_scouting §1), identical on every machine.

    Draws ``n_classes`` prototypes with P(bit = 1) = ``density``; each sample copies the prototype
    of a uniformly drawn class and flips every bit with probability ``bitflip``. All draws come from
    ``np.random.default_rng(seed)``.

    Returns:
        x: (n_samples, n_features) uint8 in {0, 1}; y: (n_samples,) int64 in 0..n_classes-1.
    """

    def is_int(v: object) -> bool:
        return isinstance(v, numbers.Integral) and not isinstance(v, bool)

    def is_real(v: object) -> bool:
        return isinstance(v, numbers.Real) and not isinstance(v, bool)

    checks = {
        "n_samples": (n_samples, is_int(n_samples) and n_samples >= 10, "an int >= 10"),
        "n_features": (n_features, is_int(n_features) and n_features >= 1, "an int >= 1"),
        "n_classes": (n_classes, is_int(n_classes) and n_classes >= 2, "an int >= 2"),
        "density": (density, is_real(density) and 0 < density < 1, "a number in (0, 1)"),
        "bitflip": (bitflip, is_real(bitflip) and 0 <= bitflip < 1, "a number in [0, 1)"),
        "seed": (seed, is_int(seed) and seed >= 0, "an int >= 0"),
    }
    for field, (value, ok, allowed) in checks.items():
        if not ok:
            raise ParamsError(
                f"synthetic option {field}: {value!r} is not allowed; must be {allowed}"
            )
    rng = np.random.default_rng(seed)
    prototypes = rng.random((n_classes, n_features)) < density
    y = rng.integers(0, n_classes, size=n_samples)
    flips = rng.random((n_samples, n_features)) < bitflip
    x = (prototypes[y] ^ flips).astype(np.uint8)
    return x, y.astype(np.int64)


def load_synthetic(*, pool_seed: int, **options: int | float) -> RawPool:
    """The synthetic set with ``options`` (see SYNTHETIC_DEFAULTS) and a seeded 80/20 P/T split."""
    x, y = make_synthetic(**options)
    return _pool(x, y, pool_seed=pool_seed)
