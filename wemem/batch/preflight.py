"""Checks made before any notebook runs, so that bad input fails fast and writes nothing.

The runner has already checked that every key of a params file is a parameter of its notebook;
here the values are validated (:func:`wemem.params.validate`) and the datasets the runs need are
looked for on disk and their format checked (:func:`wemem.data.checks.check_format`), so a
missing or malformed paper dataset is one clear line, not a traceback from a kernel. The outputs
folder (:func:`check_outputs`) and the Jupyter kernel (:func:`check_kernel`) are checked too.
"""

from __future__ import annotations

import os
from pathlib import Path

from wemem.errors import DatasetMissingError, ParamsError, WememError
from wemem.params import FIELDS, Settings, validate


def check_values(runs) -> list[Settings]:
    """Validate every run's parameters before anything runs; returns their settings.

    Each run's notebook defaults merged with its params (the values its kernel will see): the
    shared settings (:func:`wemem.params.validate`) and every other parameter the notebook declares,
    one by one and across each other (:func:`wemem.studies.parameters.check_notebook_params`).

    Raises :class:`ParamsError` for the first bad run, naming its params file."""
    from wemem.data.pool import check_options
    from wemem.planning.workload import notebook_defaults
    from wemem.studies.parameters import check_notebook_params

    out = []
    for spec in runs:
        where = spec.params_file or spec.notebook
        notebooks_dir = Path(spec.notebook).parent
        try:
            merged = {**notebook_defaults(spec.stem, notebooks_dir=notebooks_dir), **spec.params}
            settings = validate({k: v for k, v in merged.items() if k in FIELDS})
            check_notebook_params(spec.stem, merged, settings)
            check_options(settings.dataset, settings.data_options)
        except ParamsError as e:
            raise ParamsError(f"{where}: {e}") from None
        out.append(settings)
    return out


def check_runs(runs) -> None:
    """Validate every run's params (:func:`check_values`), then check the datasets the batch needs.

    Raises :class:`ParamsError` for the first bad run (a ``device`` this machine does not have,
    e.g. ``cuda`` without a GPU, among them: checked here, not in a dry run, which may plan for
    another machine); :class:`DatasetMissingError` listing every missing dataset;
    :class:`DataFormatError` naming the first malformed file.
    """
    from wemem.data.registry import dataset_info  # the datasets' registry: only when running
    from wemem.training.device import resolve_device

    datasets: list[str] = []
    for spec, settings in zip(runs, check_values(runs), strict=True):
        try:
            resolve_device(settings.device)
        except ParamsError as e:
            raise ParamsError(f"{spec.params_file or spec.notebook}: {e}") from None
        name = settings.dataset
        if "dataset" in spec.params and not dataset_info(name).offline and name not in datasets:
            datasets.append(name)
    check_datasets(datasets)


def check_outputs(outputs_root: Path, *, write: bool = True) -> None:
    """Raise :class:`WememError` unless ``outputs_root`` is a folder, or a path one can be made at,
    and (``write``) this process may write there: checked before a batch writes anything."""
    root = Path(outputs_root)
    if str(outputs_root).strip() == "":
        raise WememError("outputs folder '': empty; name a folder (default: outputs)")
    existing = next((p for p in (root, *root.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        where = "is" if existing == root else f"is under {existing}, which is"
        raise WememError(f"outputs folder {str(root)!r} {where} a file, not a folder")
    if write and existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        what = "is" if existing == root else f"would be made in {existing}, which is"
        raise WememError(
            f"outputs folder {str(root)!r} {what} not writable (read-only or another user's); "
            "choose another with --outputs"
        )


def check_kernel(kernel_name: str) -> None:
    """Raise :class:`WememError` unless a Jupyter kernel spec named ``kernel_name`` is installed
    (jupyter_client's ``KernelSpecManager``), naming the installed ones."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    manager = KernelSpecManager()
    try:
        manager.get_kernel_spec(kernel_name)
    except NoSuchKernel:
        installed = ", ".join(sorted(manager.find_kernel_specs())) or "(none)"
        raise WememError(
            f"kernel {kernel_name!r}: no such Jupyter kernel; installed: {installed} "
            "(`jupyter kernelspec list`)"
        ) from None


def check_datasets(names: list[str]) -> None:
    """Every dataset in ``names`` is on disk (one error lists all missing ones) and well-formed."""
    from wemem.data.checks import check_format
    from wemem.data.registry import require_files

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
