"""Small synthetic stand-ins for the six paper datasets, in their real on-disk formats.

``wemem data fixtures DIR`` (:func:`write_fixtures`) writes ``DIR/<name>/`` for cifar10, cifar100,
cinic10, texas100, location30 and purchase100 with exactly the files the real loaders read (CIFAR
python pickles, CINIC-10 PNG trees and its index file, the Texas/Purchase text files, the Location
``.npz``), the paper's class counts and input widths, but a few thousand rows at most. With
``WEMEM_DATA=DIR`` the paper profile then runs end to end on a CPU as a smoke test.

What the rows look like:

* Learnable class structure: images are a class colour plus a class pattern (8x8-pixel blocks),
  a per-image pattern and pixel noise; binary features follow per-class Bernoulli probabilities
  (shared background rates, raised on each class's characteristic features). 5 % of the rows are
  drawn from another class than their label (label noise), so members are not trivially separable.
* Coverage of the spec §5.2 splits: the labels are assigned so that, with the project's split
  settings (:data:`COVERAGE`: split seed 7, P/T seed 7 of the tabular sets, 90 % members, 34 % dev,
  up to 5 shadows), every class has at least ``min_rows`` rows in the members, dev and test parts
  of the victim and of every shadow. Other seeds give random splits, which usually but not surely
  cover every class.
* Determinism: every draw comes from ``np.random.default_rng([seed, <dataset number>])`` and no
  file carries a timestamp, so the same seed gives byte-identical files.

The per-format writers and the rows' class structure live in :mod:`wemem.data.fixture_formats`;
this module chooses the labels, writes each dataset folder atomically and adds its marker.

Each folder carries ``WEMEM_FIXTURE.json`` (:data:`~wemem.data.files.FIXTURE_MARKER`): the
generator, seed, sizes and the md5 of every file written. The CIFAR loader checks the batches
against those md5 sums instead of torchvision's, and the pool digest includes the marker's digest,
so cached models of a fixture never mix with those of the real dataset.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import zlib
from pathlib import Path

import numpy as np

from wemem.data.files import FIXTURE_MARKER, read_fixture_marker
from wemem.data.fixture_formats import (
    CIFAR10_CLASSES,
    CIFAR100_SUPERCLASSES,
    CINIC_SYNSETS,
    POOL_SEED,
    Labelled,
    file_hash,
    relative_files,
    write_cifar10,
    write_cifar100,
    write_cinic,
    write_tabular,
)
from wemem.data.registry import DATASETS
from wemem.data.splits import make_splits
from wemem.data.tabular import split_pool
from wemem.errors import ParamsError, WememError
from wemem.io import pid_alive

log = logging.getLogger(__name__)

GENERATOR = "wemem.data.fixtures"
FIXTURE_VERSION = 1
#: The paper datasets a fixture can stand in for, in the order they are written.
FIXTURE_NAMES = ("cifar10", "cifar100", "cinic10", "texas100", "location30", "purchase100")
#: Rows per class (P and T together) when ``per_class`` is not given: the smallest counts that
#: cover every part of :data:`COVERAGE` twice, plus some slack (tests/data/test_fixtures.py).
DEFAULT_PER_CLASS = {
    "cifar10": 60,
    "cifar100": 32,
    "cinic10": 60,
    "texas100": 28,
    "location30": 40,
    "purchase100": 28,
}
#: Share of the rows whose features come from another class than their label.
LABEL_NOISE = 0.05
#: The split settings whose parts every class covers: ``wemem.params.Settings``' split defaults
#: and ``load_pool``'s ``pool_seed``, with the most shadows a paper run uses.
COVERAGE = {
    "split_seed": 7,
    "pool_seed": POOL_SEED,
    "n_shadows": 5,
    "member_fraction": 0.9,
    "dev_fraction": 0.34,
    "min_rows": 2,
}


# --- labels: every class in every part of the §5.2 splits ---------------------------------------


def split_parts(n_train: int, n_test: int) -> np.ndarray:
    """(N, 3 * models) bool: row r lies in part p (members, dev, test of victim, shadow 0, ...).

    The parts are those of :func:`wemem.data.splits.make_splits` with the :data:`COVERAGE`
    settings, in pool-row space.
    """
    splits = make_splits(
        n_train,
        n_test,
        n_shadows=COVERAGE["n_shadows"],
        seed=COVERAGE["split_seed"],
        member_fraction=COVERAGE["member_fraction"],
        dev_fraction=COVERAGE["dev_fraction"],
    )
    parts = np.zeros((n_train + n_test, 3 * len(splits.models)), dtype=bool)
    for m, model in enumerate(splits.models):
        for k, rows in enumerate((model.train, model.dev, model.test)):
            parts[rows, 3 * m + k] = True
    return parts


def cover_labels(
    parts: np.ndarray, num_classes: int, per_class: int, rng: np.random.Generator
) -> tuple[np.ndarray, bool]:
    """Labels (N,) with ``per_class`` rows each that put every class into every part.

    Greedy set cover, one row per class in turn: each class takes the free row that lies in the
    most parts it still lacks (``COVERAGE['min_rows']`` rows each), until it lacks none or has
    ``per_class`` rows. The remaining rows get the remaining labels in random order. Returns the
    labels and whether the cover is complete (it is not when ``per_class`` is too small).
    """
    n_rows, n_parts = parts.shape
    if n_rows != num_classes * per_class:
        raise ValueError(f"{n_rows} rows for {num_classes} classes x {per_class}")
    weight = parts.astype(np.float64)
    tie_break = rng.random(n_rows) * 1e-3
    labels = np.full(n_rows, -1, dtype=np.int64)
    lacking = np.full((num_classes, n_parts), COVERAGE["min_rows"], dtype=np.int64)
    taken = np.zeros(num_classes, dtype=np.int64)
    open_ = np.ones(num_classes, dtype=bool)
    while open_.any():
        for c in np.flatnonzero(open_):
            gain = weight @ (lacking[c] > 0) + tie_break
            gain[labels >= 0] = -np.inf
            row = int(np.argmax(gain))
            if gain[row] < 1 or taken[c] >= per_class:
                open_[c] = False
                continue
            labels[row] = c
            taken[c] += 1
            lacking[c] = np.maximum(lacking[c] - parts[row], 0)
            open_[c] = bool(lacking[c].any())
    rest = np.repeat(np.arange(num_classes), per_class - taken)
    free = np.flatnonzero(labels < 0)
    labels[rng.permutation(free)] = rng.permutation(rest)
    return labels, not lacking.any()


def draw_labels(name: str, per_class: int, n_test: int, rng: np.random.Generator) -> Labelled:
    """Stored labels (pool order) covering every split part, and the classes that draw the rows."""
    num_classes = DATASETS[name].num_classes
    n_train = num_classes * per_class - n_test
    y, covered = cover_labels(split_parts(n_train, n_test), num_classes, per_class, rng)
    if not covered:
        log.warning(
            "%s fixture: per_class=%d is too small for every class to have %d rows in every part "
            "of the victim and %d shadow splits",
            name,
            per_class,
            COVERAGE["min_rows"],
            COVERAGE["n_shadows"],
        )
    noisy = rng.random(len(y)) < LABEL_NOISE
    source = np.where(noisy, (y + rng.integers(1, num_classes, len(y))) % num_classes, y)
    return Labelled(y=y, source=source, n_train=n_train, covered=covered)


# --- one dataset folder, written atomically ------------------------------------------------------


def _test_share(name: str) -> float:
    """|T| / (|P| + |T|): the real pools' share for images; the loaders' 20 % for tabular sets."""
    info = DATASETS[name]
    if info.kind == "tabular":
        return 0.2
    n_train, n_test = info.pool_sizes
    return n_test / (n_train + n_test)


def _generate(folder: Path, name: str, *, seed: int, per_class: int) -> dict[str, object]:
    """Write the data files of ``name`` into ``folder``; return the marker's content."""
    info = DATASETS[name]
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    n = info.num_classes * per_class
    if info.kind == "tabular":
        n_test = n - split_pool(n, seed=COVERAGE["pool_seed"])[1]
    else:
        n_test = round(n * _test_share(name))
    labelled = draw_labels(name, per_class, n_test, rng)
    if name == "cifar10":
        write_cifar10(folder, labelled, rng)
    elif name == "cifar100":
        write_cifar100(folder, labelled, rng)
    elif name == "cinic10":
        write_cinic(folder, labelled, rng)
    else:
        write_tabular(folder, name, labelled, rng)
    return {
        "generator": GENERATOR,
        "version": FIXTURE_VERSION,
        "note": "synthetic stand-in written by `wemem data fixtures`, not the real dataset",
        "dataset": name,
        "seed": seed,
        "per_class": per_class,
        "num_classes": info.num_classes,
        "input_shape": list(info.input_shape),
        "rows": {"train_pool": labelled.n_train, "test_pool": n_test},
        "label_noise": LABEL_NOISE,
        "coverage": {**COVERAGE, "complete": labelled.covered},
        "md5": {rel: file_hash(folder / rel, "md5") for rel in relative_files(folder)},
    }


def _check_target(target: Path) -> None:
    """A fixture may replace an absent or empty folder or an older fixture, nothing else."""
    if not target.exists():
        return
    if not target.is_dir():
        raise WememError(f"fixtures: {target} exists and is not a folder")
    if any(target.iterdir()) and not (target / FIXTURE_MARKER).is_file():
        raise WememError(
            f"fixtures: {target} holds files but no {FIXTURE_MARKER}, so it may be the real "
            "dataset; refusing to replace it (choose another DIR, or delete that folder)"
        )


def _swap_in(staged: Path, target: Path) -> None:
    """Put ``staged`` at ``target`` by renames; a previous fixture there is removed after."""
    if not target.exists():
        staged.rename(target)
        return
    old = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
    target.rename(old)
    staged.rename(target)
    shutil.rmtree(old)


def _remove_stale(root: Path, name: str) -> None:
    """Remove staging folders ``.<name>.fixture-<pid>-*`` that an interrupted run left behind."""
    for stale in root.glob(f".{name}.fixture-*"):
        pid = stale.name.rsplit("-", 2)[-2]
        if stale.is_dir() and pid.isdigit() and not pid_alive(int(pid)):
            log.info("removing %s, left by an interrupted run", stale)
            shutil.rmtree(stale, ignore_errors=True)


def write_dataset(root: Path, name: str, *, seed: int, per_class: int) -> Path:
    """Write ``root/<name>`` (files and marker) into a hidden staging folder next to it, then
    rename it into place, so an interrupted run leaves no half-written dataset folder."""
    target = root / name
    _check_target(target)
    _remove_stale(root, name)
    staged = root / f".{name}.fixture-{os.getpid()}-{secrets.token_hex(4)}"
    staged.mkdir()
    try:
        marker = _generate(staged, name, seed=seed, per_class=per_class)
        text = json.dumps(marker, indent=1, sort_keys=True) + "\n"
        (staged / FIXTURE_MARKER).write_text(text)
        _swap_in(staged, target)
    finally:
        if staged.exists():
            shutil.rmtree(staged, ignore_errors=True)
    log.info("%s: fixture written to %s", name, target)
    return target


def _check_args(seed: object, per_class: object, only: object) -> tuple[str, ...]:
    for field, value, low in (("seed", seed, 0), ("per_class", per_class, 1)):
        if value is None and field == "per_class":
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ParamsError(
                f"fixtures: {field} {value!r} is not allowed; must be an int >= {low}"
            )
    if only is None:
        return FIXTURE_NAMES
    names = [only] if isinstance(only, str) else list(only)
    unknown = [n for n in names if n not in FIXTURE_NAMES]
    if unknown or not names:
        raise ParamsError(
            f"fixtures: only={names!r} is not allowed; choose from {', '.join(FIXTURE_NAMES)}"
        )
    return tuple(n for n in FIXTURE_NAMES if n in names)


def write_fixtures(
    root: str | os.PathLike,
    *,
    seed: int = 0,
    per_class: int | None = None,
    only: str | list[str] | tuple[str, ...] | None = None,
) -> dict[str, Path]:
    """Write the fixtures of the six paper datasets (or those in ``only``) under ``root``.

    Args:
        root: the data root to fill; ``root/<name>/`` is what ``WEMEM_DATA=root`` makes the
            loaders read. An existing fixture folder is replaced; a folder without the marker
            (possibly the real dataset) is refused.
        seed: the one seed of every draw; the same seed gives byte-identical files.
        per_class: rows per class in P and T together (default :data:`DEFAULT_PER_CLASS`).
            CINIC-10's unused test/ and valid/ images come on top.
        only: dataset names to write (default all six).

    Returns:
        {name: dataset folder}, in :data:`FIXTURE_NAMES` order.

    Raises:
        ParamsError: unknown name or bad seed/per_class.
        WememError: ``root`` is not a writable folder, or a target holds non-fixture files.
    """
    names = _check_args(seed, per_class, only)
    root = Path(root).expanduser()
    if root.exists() and not root.is_dir():
        raise WememError(f"fixtures: {root} is a file, not a folder")
    written: dict[str, Path] = {}
    try:
        root.mkdir(parents=True, exist_ok=True)
        for name in names:
            k = per_class if per_class is not None else DEFAULT_PER_CLASS[name]
            written[name] = write_dataset(root, name, seed=seed, per_class=k)
    except OSError as exc:
        raise WememError(f"fixtures: cannot write under {root}: {exc}") from exc
    return written


def describe(folder: Path) -> dict[str, object]:
    """The marker of a fixture folder (what ``wemem data fixtures`` prints); {} when absent."""
    return read_fixture_marker(folder) or {}


__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR100_SUPERCLASSES",
    "CINIC_SYNSETS",
    "COVERAGE",
    "DEFAULT_PER_CLASS",
    "FIXTURE_NAMES",
    "LABEL_NOISE",
    "Labelled",
    "cover_labels",
    "describe",
    "draw_labels",
    "split_parts",
    "write_dataset",
    "write_fixtures",
]
