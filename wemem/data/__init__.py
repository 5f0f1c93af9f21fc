"""Datasets as single tensors, label noise, and the paper's victim/shadow splits (spec §5).

Usage::

    pool = load_pool("synthetic", label_noise=0.1)  # offline, seconds on a CPU
    splits = make_splits(pool.n_train, pool.n_test)  # spec §5.2
    members = pool.x[splits.victim.train]  # (n_members, 600) rows of the training pool P
"""

from wemem.data.checks import check_format
from wemem.data.download import fetch
from wemem.data.fixtures import write_fixtures
from wemem.data.noise import apply_label_noise
from wemem.data.pool import Pool, load_pool
from wemem.data.registry import DATASETS, DatasetInfo, data_root, is_available, is_fixture
from wemem.data.splits import ModelSplit, Splits, make_splits, reference_keep, reference_split

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "ModelSplit",
    "Pool",
    "Splits",
    "apply_label_noise",
    "check_format",
    "data_root",
    "fetch",
    "is_available",
    "is_fixture",
    "load_pool",
    "make_splits",
    "reference_keep",
    "reference_split",
    "write_fixtures",
]
