"""The ``batch`` fixture of the runner tests: a ``tiny`` profile of the fixture notebooks with
``papermill.execute_notebook`` replaced by a fake (no kernel) that records the calls."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nbformat
import papermill
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "notebooks"


def _fake_execute(calls: list):
    def execute(input_path, output_path, *, parameters, cwd, **kwargs):
        calls.append(Path(input_path).stem)
        nb = nbformat.read(input_path, as_version=4)
        nbformat.write(nb, output_path)
        Path(os.environ["WEMEM_RUN_DIR"], "metrics.json").write_text('{"n": 1}\n')
        log = os.environ["WEMEM_CACHE_LOG"]  # what a notebook's cache accesses append
        Path(log).write_text("dense/" + "a" * 64 + "\n" + "dense/" + "a" * 64 + "\n")
        assert os.environ["WEMEM_EXECUTOR"] == "local"

    return execute


@pytest.fixture
def batch(tmp_path, monkeypatch):
    nbs = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, nbs)
    (nbs / "01_fail.ipynb").unlink()
    params = tmp_path / "params" / "tiny"
    params.mkdir(parents=True)
    (params / "00_hello.yaml").write_text("n: 1\n")
    calls: list = []
    monkeypatch.setattr(papermill, "execute_notebook", _fake_execute(calls))
    kw = {"outputs_root": tmp_path / "out", "notebooks_dir": nbs, "params_dir": tmp_path / "params"}
    return kw, calls, nbs, params
