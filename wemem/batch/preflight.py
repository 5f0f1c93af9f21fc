"""Checks made before any notebook runs, so that bad input fails fast and writes nothing.

The runner has already checked that every key of a params file is a parameter of its notebook;
here the values are validated (:func:`wemem.params.validate`) and the datasets the runs need are
looked for on disk, so a missing paper dataset is one clear line, not a traceback from a kernel.
"""

from __future__ import annotations

from wemem.data.registry import dataset_info, require_files
from wemem.errors import ParamsError
from wemem.params import FIELDS, validate


def check_runs(runs) -> None:
    """Raise :class:`ParamsError` or :class:`DatasetMissingError` for the first bad run."""
    for spec in runs:
        where = spec.params_file or spec.notebook
        values = {k: v for k, v in spec.params.items() if k in FIELDS}
        try:
            settings = validate(values)
        except ParamsError as e:
            raise ParamsError(f"{where}: {e}") from None
        if "dataset" in spec.params and not dataset_info(settings.dataset).offline:
            require_files(settings.dataset, suffixes=("", ".txt"))
