"""What each dataset is, where wemem looks for it, and how to obtain it.

Every dataset lives in its own folder ``data_root() / <name>``. The paper's sets (spec §5.1) must
be fetched once (``wemem data fetch NAME``); ``digits`` and ``synthetic`` are offline and need no
files, so the default CPU profile runs anywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from wemem.data.files import FIXTURE_MARKER
from wemem.errors import DataFormatError, DatasetMissingError, ParamsError

#: Environment variable that overrides the default data root.
DATA_ENV = "WEMEM_DATA"
_DEFAULT_ROOT = Path("~/.cache/wemem/data")


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about one dataset.

    ``files`` are paths relative to the dataset folder that must exist before loading;
    ``pool_sizes`` is (|P|, |T|), the training and test pool sizes of spec §5.1 (CINIC-10: with the
    index file), or None for the offline sets.
    """

    name: str
    kind: str  # "image" | "tabular"
    num_classes: int
    input_shape: tuple[int, ...]
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    files: tuple[str, ...]
    obtain: str
    pool_sizes: tuple[int, int] | None
    offline: bool


_CIFAR10_FILES = tuple(f"cifar-10-batches-py/data_batch_{i}" for i in range(1, 6)) + (
    "cifar-10-batches-py/test_batch",
    "cifar-10-batches-py/batches.meta",
)
_CIFAR100_FILES = ("cifar-100-python/train", "cifar-100-python/test", "cifar-100-python/meta")
_NUS = "https://www.comp.nus.edu.sg/~reza/files/"

DATASETS: dict[str, DatasetInfo] = {
    "cifar10": DatasetInfo(
        name="cifar10",
        kind="image",
        num_classes=10,
        input_shape=(3, 32, 32),
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2023, 0.1994, 0.2010),
        files=_CIFAR10_FILES,
        obtain="run `wemem data fetch cifar10` (download of "
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz, md5-checked against torchvision's sums).",
        pool_sizes=(50_000, 10_000),
        offline=False,
    ),
    "cifar100": DatasetInfo(
        name="cifar100",
        kind="image",
        num_classes=100,
        input_shape=(3, 32, 32),
        mean=(0.5071, 0.4867, 0.4408),
        std=(0.2675, 0.2565, 0.2761),
        files=_CIFAR100_FILES,
        obtain="run `wemem data fetch cifar100` (download of "
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz, md5-checked against torchvision's sums).",
        pool_sizes=(50_000, 10_000),
        offline=False,
    ),
    "cinic10": DatasetInfo(
        name="cinic10",
        kind="image",
        num_classes=10,
        input_shape=(3, 32, 32),
        mean=(0.47889522, 0.47227842, 0.43047404),
        std=(0.24205776, 0.23828046, 0.25874835),
        files=("train", "test"),
        obtain="run `wemem data fetch cinic10` (extracts "
        "https://datashare.ed.ac.uk/bitstream/handle/10283/3192/CINIC-10.tar.gz), then copy the "
        "authors' data/datasets/cinic/train_test_idx.pkl into the folder for the paper's pools.",
        pool_sizes=(90_000, 31_499),
        offline=False,
    ),
    "texas100": DatasetInfo(
        name="texas100",
        kind="tabular",
        num_classes=100,
        input_shape=(6169,),
        mean=None,
        std=None,
        files=("texas/100/feats", "texas/100/labels"),
        obtain=f"run `wemem data fetch texas100` (extracts {_NUS}dataset_texas.tgz; "
        "a .txt suffix on feats/labels is accepted).",
        pool_sizes=(53_864, 13_466),
        offline=False,
    ),
    "location30": DatasetInfo(
        name="location30",
        kind="tabular",
        num_classes=30,
        input_shape=(446,),
        mean=None,
        std=None,
        files=("data_complete.npz",),
        obtain="run `wemem data fetch location30` (downloads "
        "https://github.com/jjy1994/MemGuard/raw/master/data/location/data_complete.npz).",
        pool_sizes=(4_008, 1_002),
        offline=False,
    ),
    "purchase100": DatasetInfo(
        name="purchase100",
        kind="tabular",
        num_classes=100,
        input_shape=(600,),
        mean=None,
        std=None,
        files=("purchase100.txt",),
        obtain=f"run `wemem data fetch purchase100` (extracts {_NUS}dataset_purchase.tgz and "
        "renames the data file to purchase100.txt).",
        pool_sizes=(157_859, 39_465),
        offline=False,
    ),
    "digits": DatasetInfo(
        name="digits",
        kind="image",
        num_classes=10,
        input_shape=(1, 8, 8),
        mean=None,
        std=None,
        files=(),
        obtain="nothing to fetch: sklearn.datasets.load_digits ships with scikit-learn.",
        pool_sizes=None,
        offline=True,
    ),
    "synthetic": DatasetInfo(
        name="synthetic",
        kind="tabular",
        num_classes=50,
        input_shape=(600,),
        mean=None,
        std=None,
        files=(),
        obtain="nothing to fetch: generated from a seed (options n_classes/n_features change "
        "num_classes/input_shape).",
        pool_sizes=None,
        offline=True,
    ),
}


def data_root() -> Path:
    """The folder holding one sub-folder per dataset: ``$WEMEM_DATA`` or ``~/.cache/wemem/data``."""
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else _DEFAULT_ROOT.expanduser()


def dataset_info(name: str) -> DatasetInfo:
    """The registry entry for ``name``; ParamsError listing the known names otherwise."""
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise ParamsError(
            f"dataset: unknown name {name!r}; allowed: {', '.join(sorted(DATASETS))}"
        ) from None


def dataset_dir(name: str, root: str | Path | None = None) -> Path:
    """The folder of dataset ``name``: ``root / name`` (``root`` defaults to :func:`data_root`)."""
    dataset_info(name)
    return (Path(root).expanduser() if root is not None else data_root()) / name


def _where(root: str | Path | None) -> str:
    if root is not None:
        return f"root={str(root)!r}"
    env = os.environ.get(DATA_ENV)
    return f"{DATA_ENV}={env!r}" if env else f"default {str(_DEFAULT_ROOT)!r} ({DATA_ENV} unset)"


def resolve_file(folder: Path, rel: str, *, suffixes: tuple[str, ...] = ("",)) -> Path | None:
    """The first existing ``folder/rel + suffix`` for the given suffixes, or None."""
    for suffix in suffixes:
        path = folder / (rel + suffix)
        if path.exists():
            return path
    return None


def require_files(
    name: str, root: str | Path | None = None, *, suffixes: tuple[str, ...] = ("",)
) -> Path:
    """Check that every expected file of ``name`` exists and return the dataset folder.

    Raises DatasetMissingError naming the folder, where it came from, the expected and the missing
    files and how to obtain them.
    """
    info = dataset_info(name)
    folder = dataset_dir(name, root)
    missing = [rel for rel in info.files if resolve_file(folder, rel, suffixes=suffixes) is None]
    if missing:
        suffix_note = (
            f" (suffixes tried: {', '.join(repr(s) for s in suffixes)})"
            if suffixes != ("",)
            else ""
        )
        raise DatasetMissingError(
            f"dataset {name!r}: files missing in {folder} (looked there via {_where(root)}). "
            f"Expected: {', '.join(info.files)}{suffix_note}; missing: {', '.join(missing)}. "
            f"To obtain: {info.obtain} Or set {DATA_ENV}=<folder that contains {name}/>."
        )
    return folder


class RawPool(NamedTuple):
    """What a loader returns: x (N, *input_shape) float32, y (N,) int64, rows [0, n_train) are P."""

    x: torch.Tensor
    y: np.ndarray
    n_train: int


def check_labels(y: np.ndarray, *, num_classes: int, offset: int, source: object) -> np.ndarray:
    """Shift stored labels ``offset..offset+C-1`` to ``0..C-1`` (int64) after checking their range.

    Raises DataFormatError naming ``source`` (a file) when a label is not an integer in range.
    """
    y = np.asarray(y)
    lo, hi = offset, offset + num_classes - 1
    if y.ndim != 1:
        raise DataFormatError(f"{source}: labels have shape {y.shape}; expected one label per row")
    if y.size == 0:
        raise DataFormatError(f"{source}: no labels found")
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise DataFormatError(f"{source}: labels are not integers (dtype {y.dtype})")
    if y.min() < lo or y.max() > hi:
        raise DataFormatError(
            f"{source}: labels span {y.min()}..{y.max()}; allowed {lo}..{hi} "
            f"({num_classes} classes)"
        )
    return y.astype(np.int64) - offset


def is_available(name: str, root: str | Path | None = None) -> bool:
    """Whether ``name`` can be loaded without a download (offline sets always can)."""
    info = dataset_info(name)
    if info.offline:
        return True
    folder = dataset_dir(name, root)
    return all(resolve_file(folder, rel, suffixes=("", ".txt")) is not None for rel in info.files)


def is_fixture(name: str, root: str | Path | None = None) -> bool:
    """Whether ``name``'s folder holds a synthetic stand-in (``wemem data fixtures``), not the
    real dataset: it carries the marker file ``WEMEM_FIXTURE.json``."""
    info = dataset_info(name)
    return not info.offline and (dataset_dir(name, root) / FIXTURE_MARKER).is_file()
