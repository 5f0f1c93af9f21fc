"""The paper's released mem-score files (spec §3.2): file names, loading, saving and alignment.

One CSV per (dataset, arch), ``memscore_<dataset>_<arch>.csv`` in the official names, header ``,0``
and rows ``index,score`` with the score of pool row ``index``, min–max normalized per file.

The index column only says that row i is *meant* for pool row i. :func:`check_alignment` tests
whether the scores really belong to this (dataset, arch) and this pool order: the file name, the
share with m ≥ τ (spec §2.4) and the dependence of the scores on the pool's labels.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from wemem.errors import DataFormatError, DatasetMissingError, ParamsError
from wemem.io import atomic_path
from wemem.memorization.arrays import as_scores, check_int
from wemem.memorization.tau import PAPER_TAU, fraction_selected, normalize_minmax
from wemem.names import ARCHITECTURES

log = logging.getLogger(__name__)

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


# ----------------------------------------------------------------------------- alignment

#: Label shuffles of the order check's permutation null, drawn with a fixed seed (same verdict on
#: every run).
N_PERMUTATIONS = 100
PERMUTATION_SEED = 0
#: The order check passes when the observed between-class share of rank variance lies at least
#: this many null standard deviations above the null mean. A misaligned (shuffled) file scores like
#: a draw of the null: z is a standardized χ²(C − 1) (Kruskal–Wallis), so z ≥ 10 has probability
#: < 1e-4 for C = 2 and < 1e-7 for C ≥ 10. A released file passes as soon as the classes explain
#: ≳ (C − 1 + 10·√(2(C − 1))) / n of the rank variance: 0.1 % on CIFAR-10 (n = 50,000), 0.5 % on
#: CIFAR-100, 2.6 % on Location (n = 4,008); Feldman–Zhang scores differ far more between classes.
MIN_Z = 10.0
#: Tolerance on the share with m ≥ τ: spec §2.4 rounds it to 0.1 %, and the closest two shares of
#: one dataset (CIFAR-10 ResNet18 17.6 %, DenseNet121 17.9 %) differ by 0.3 %.
SHARE_TOL = 0.001

_ORDER = {
    "cifar10": "the torchvision CIFAR-10 training split in file order (data_batch_1 … data_batch_5, "
    "50,000 rows)",
    "cifar100": "the torchvision CIFAR-100 training split in file order (cifar-100-python/train, "
    "50,000 rows)",
    "cinic10": "the CINIC-10 train folder in the order of train_idx from the authors' "
    "train_test_idx.pkl (90,000 rows; without that file the pool is in folder order, which no "
    "released file matches)",
    "location30": "the 80 % train part of the authors' location.pkl in its row order (4,008 rows)",
    "texas100": "this project's training pool in row order (the seeded 80/20 split of spec §5.1; the "
    "paper released no Texas file)",
    "purchase100": "this project's training pool in row order (the seeded 80/20 split of spec §5.1; "
    "the paper released no Purchase file)",
}


def expected_order(dataset: str) -> str:
    """The pool order a mem-score file for ``dataset`` must follow (spec §3.2, §5.1), in words."""
    return _ORDER.get(dataset, f"this project's {dataset} training pool in row order")


@dataclass(frozen=True)
class ClassDependence:
    """How much the scores depend on the labels, against a permutation null.

    ``observed`` is the between-class share of the variance of the score ranks (η² on ranks, the
    Kruskal–Wallis H divided by n − 1); ``null_mean`` and ``null_sd`` are its mean and standard
    deviation over ``permutations`` shuffles of the labels; ``z = (observed − null_mean) / null_sd``.
    """

    observed: float
    null_mean: float
    null_sd: float
    z: float
    permutations: int


def _ranks(s: NDArray[np.float64]) -> NDArray[np.float64]:
    """1-based ranks, ties get their average rank."""
    order = np.argsort(s, kind="stable")
    _, inverse, counts = np.unique(s[order], return_inverse=True, return_counts=True)
    average = np.cumsum(counts) - (counts - 1) / 2.0
    out = np.empty_like(s)
    out[order] = average[inverse]
    return out


def class_dependence(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    permutations: int = N_PERMUTATIONS,
    seed: int = PERMUTATION_SEED,
) -> ClassDependence:
    """Between-class share of rank variance of ``scores`` ``(n,)`` under ``labels`` ``(n,)`` int,
    against ``permutations`` label shuffles drawn with ``seed``.

    Released mem-scores are class-structured (classes differ in how much their samples are
    memorized; Feldman & Zhang, NeurIPS 2020), so scores aligned with the pool's labels lie far
    above the null, and scores in another row order look like a draw of it. Constant scores give
    ``observed = z = 0``.
    """
    s = as_scores(scores, "scores")
    y = np.asarray(labels)
    if y.shape != s.shape or y.dtype.kind not in "iu":
        raise ParamsError(f"labels must be (n,) integers like scores {s.shape}; got {y.shape}")
    if np.isnan(s).any():
        raise ParamsError("scores contains NaN; the order check needs a score for every row")
    permutations = check_int(permutations, "permutations", 2)
    classes, y = np.unique(y, return_inverse=True)
    if classes.size < 2:
        raise ParamsError(
            f"labels hold {classes.size} class(es); the order check needs two or more"
        )
    c = classes.size
    sizes = np.bincount(y, minlength=c).astype(np.float64)
    r = _ranks(s)
    r -= r.mean()
    total = float(r @ r)
    if total == 0:  # constant scores: nothing depends on anything
        return ClassDependence(0.0, 0.0, 0.0, 0.0, permutations)
    observed = float(np.sum(np.bincount(y, weights=r, minlength=c) ** 2 / sizes) / total)
    rng = np.random.default_rng(seed)
    null = np.empty(permutations)
    for i in range(permutations):  # one gather and one bincount each: ~10 ms at n = 270,000
        sums = np.bincount(y[rng.permutation(s.size)], weights=r, minlength=c)
        null[i] = np.sum(sums**2 / sizes) / total
    mean, sd = float(null.mean()), float(null.std(ddof=1))
    if sd > 0:
        z = (observed - mean) / sd
    else:
        z = float("inf") if observed > mean else 0.0
    return ClassDependence(observed, mean, sd, float(z), permutations)


@dataclass(frozen=True)
class Alignment:
    """What :func:`check_alignment` checked: the name rule (``name_checked``), the share with
    m ≥ τ (``share``, ``None`` where spec §2.4 has none) and the class dependence."""

    name_checked: bool
    share: float | None
    dependence: ClassDependence


def _check_share(s: NDArray[np.float64], path: Path, dataset: str, arch: str) -> float:
    tau, paper = PAPER_TAU[(dataset, arch)]
    m = normalize_minmax(s)
    share = fraction_selected(m, tau)
    if abs(share - paper) <= SHARE_TOL:
        return share
    like = [
        f"({d}, {a})"
        for (d, a), (t, f) in PAPER_TAU.items()
        if abs(fraction_selected(m, t) - f) <= SHARE_TOL
    ]
    hint = f"; it matches the share of {', '.join(like)}" if like else ""
    raise DataFormatError(
        f"{path}: {share:.2%} of the min–max scores have m ≥ τ = {tau:g}; the released "
        f"{released_filename(dataset, arch)} has {paper:.1%} (spec §2.4, tolerance "
        f"±{SHARE_TOL:.1%}), so this is not the released file of ({dataset}, {arch}){hint}"
    )


def check_alignment(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    path: str | os.PathLike,
    dataset: str,
    arch: str,
    require_official_name: bool = True,
) -> Alignment:
    """Check that a mem-score file belongs to the run's (dataset, arch) and its pool order.

    ``scores``: (n,) the file's scores, row i meant for pool row i; ``labels``: (n,) int, the pool's
    (clean) labels of rows 0..n−1. Raises :class:`DataFormatError` naming ``path`` when

    (a) ``require_official_name`` and the file name is not :func:`released_filename` of
        (dataset, arch). Skipped where the paper released no file (Texas, Purchase, synthetic);
    (b) the share of ``normalize_minmax(scores) ≥ τ`` differs from spec §2.4's share
        (:data:`~wemem.memorization.tau.PAPER_TAU`) by more than :data:`SHARE_TOL`. This identifies
        the (dataset, arch) file, not its order. Skipped where :data:`PAPER_TAU` has no entry
        (Texas, Purchase, synthetic);
    (c) the scores do not depend on the labels: :func:`class_dependence` below :data:`MIN_Z` null
        standard deviations. This is the order check: a file for another pool order (or another
        dataset of the same size) scores like a label shuffle. It cannot see a small misaligned
        part of an otherwise aligned file.
    """
    s = as_scores(scores, "scores")
    path = Path(path)
    released = (dataset, arch) in PAPER_TAU
    if released and require_official_name and path.name != released_filename(dataset, arch):
        raise DataFormatError(
            f"{path}: the released mem-scores of ({dataset}, {arch}) are "
            f"{released_filename(dataset, arch)} (spec §3.2), not {path.name}; rename the file if "
            "it is that one, or opt out explicitly (require_official_name=False; "
            "memscores.compute(..., check_released=False) skips all alignment checks)"
        )
    share = _check_share(s, path, dataset, arch) if released else None
    dep = class_dependence(s, labels)
    if not dep.z >= MIN_Z:
        raise DataFormatError(
            f"{path}: the scores are not aligned with the {dataset} training pool: their "
            f"dependence on the pool's labels (between-class share of rank variance "
            f"{dep.observed:.4f}) lies {dep.z:.1f} standard deviations above its mean under "
            f"{dep.permutations} label shuffles, where an aligned file lies at least {MIN_Z:g} above. "
            f"Row i must be the score of pool row i, i.e. {expected_order(dataset)}"
        )
    log.info("%s: aligned with the %s pool (class dependence z = %.1f)", path, dataset, dep.z)
    return Alignment(name_checked=released and require_official_name, share=share, dependence=dep)
