"""Checks made before any notebook runs, so that bad input fails fast and writes nothing.

The runner has already checked that every key of a params file is a parameter of its notebook;
here the values are validated (:func:`wemem.params.validate`) and the datasets the runs need are
looked for on disk and their format checked (:func:`wemem.data.checks.check_format`), so a
missing or malformed paper dataset is one clear line, not a traceback from a kernel.
"""

from __future__ import annotations

from wemem.data.checks import check_format
from wemem.data.registry import dataset_info, require_files
from wemem.errors import DatasetMissingError, ParamsError
from wemem.params import FIELDS, validate


def check_runs(runs) -> None:
    """Validate every run's params, then check the datasets the batch needs.

    Raises :class:`ParamsError` for the first bad run; :class:`DatasetMissingError` listing every
    missing dataset; :class:`DataFormatError` naming the first malformed file.
    """
    datasets: list[str] = []
    for spec in runs:
        where = spec.params_file or spec.notebook
        values = {k: v for k, v in spec.params.items() if k in FIELDS}
        try:
            settings = validate(values)
        except ParamsError as e:
            raise ParamsError(f"{where}: {e}") from None
        name = settings.dataset
        if "dataset" in spec.params and not dataset_info(name).offline and name not in datasets:
            datasets.append(name)
    check_datasets(datasets)


def check_datasets(names: list[str]) -> None:
    """Every dataset in ``names`` is on disk (one error lists all missing ones) and well-formed."""
    missing = []
    for name in names:
        try:
            require_files(name, suffixes=("", ".txt"))
        except DatasetMissingError as e:
            missing.append(str(e))
    if len(missing) == 1:
        raise DatasetMissingError(missing[0])
    if missing:
        listed = " ".join(f"({k}) {m}" for k, m in enumerate(missing, 1))
        raise DatasetMissingError(f"{len(missing)} datasets are missing. {listed}")
    for name in names:
        check_format(name)
