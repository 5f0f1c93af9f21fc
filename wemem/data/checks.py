"""Cheap format checks of a dataset on disk, made before any run starts (``wemem reproduce``'s
preflight, :mod:`wemem.batch.preflight`).

:func:`check_format` finds what the loaders would reject in the files they read, without
loading the dataset: every CIFAR pickle opened and md5-checked, CINIC-10's class folders, index
file and one image per class, the first lines of the Texas/Purchase text files, Location's small
archive in full. A few seconds at most on the real datasets. The loaders raise the same
DataFormatError, naming the file, for whatever this check cannot see (e.g. a bad row deep in a
text file).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from wemem.data.images import check_cifar, check_cinic
from wemem.data.registry import dataset_info
from wemem.data.tabular import check_location, check_purchase, check_texas

_CHECKS: dict[str, Callable[[str | Path | None], object]] = {
    "cifar10": lambda root: check_cifar("cifar10", root),
    "cifar100": lambda root: check_cifar("cifar100", root),
    "cinic10": check_cinic,
    "texas100": check_texas,
    "location30": check_location,
    "purchase100": check_purchase,
}


def check_format(name: str, root: str | Path | None = None) -> None:
    """Check that dataset ``name``'s files under ``root`` (default: the data root) are there and
    have the format its loader reads; nothing for the offline sets.

    Raises:
        ParamsError: unknown name.
        DatasetMissingError: a file is missing.
        DataFormatError: a file is malformed; the message names it and what was expected.
    """
    if dataset_info(name).offline:
        return
    _CHECKS[name](root)
