"""Records that reproduce: custom profiles, no temporary or absolute path in ``metrics.json``,
``run.json`` or the reports, stale temp folders removed, failed runs' notebooks kept under
``<outputs>/failed/``. A fake ``papermill.execute_notebook`` stands for the kernel: it opens the
run folder as a notebook's setup cell does (no kernel is started)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nbformat
import papermill
import pytest

from wemem import params
from wemem.batch import execution, runner
from wemem.errors import ParamsError
from wemem.report.run_folder import open_run

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "tests" / "fixtures" / "notebooks"
TIMING = {"start", "end", "wall_seconds"}  # the fields of run.json two identical runs differ in


def _notebook_like(calls: list, fail: BaseException | None = None):
    """What a notebook does with its parameters: validate them, open its run folder, write
    metrics; the executed copy gets the injected parameters as papermill's would."""

    def execute(input_path, output_path, *, parameters, cwd, **kwargs):
        calls.append(dict(parameters))
        nb = nbformat.read(input_path, as_version=4)
        injected = "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
        cell = nbformat.v4.new_code_cell(injected, metadata={"tags": ["injected-parameters"]})
        nb.cells.insert(1, cell)
        nbformat.write(nb, output_path)
        settings = params.validate({"profile": parameters["profile"],
                                    "output_dir": parameters["output_dir"]})  # fmt: skip
        run = open_run(Path(input_path).stem, profile=settings.profile,
                       output_dir=settings.output_dir, settings=settings)  # fmt: skip
        run.update_metrics(hello={"n": parameters.get("n", 3)})
        if fail is not None:
            raise fail

    return execute


@pytest.fixture
def tree(tmp_path, monkeypatch):
    """notebooks/ (the fixtures), params/mine/ (a custom profile) and out/ side by side."""
    nbs = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, nbs)
    (tmp_path / "params" / "mine").mkdir(parents=True)
    (tmp_path / "params" / "mine" / "00_hello.yaml").write_text("n: 5\n")
    calls: list = []
    monkeypatch.setattr(papermill, "execute_notebook", _notebook_like(calls))
    kw = {"outputs_root": tmp_path / "out", "notebooks_dir": nbs, "params_dir": tmp_path / "params"}
    return kw, calls


# ----------------------------------------------------------------------------- custom profiles


def test_a_custom_profile_folder_runs_its_notebooks(tree):
    kw, calls = tree
    results = runner.reproduce("mine", **kw)
    assert [(r["stem"], r["run_name"]) for r in results] == [("00_hello", "mine")]  # 01: no file
    assert calls[0]["profile"] == "mine" and calls[0]["n"] == 5
    run = kw["outputs_root"] / "00_hello" / "mine"
    assert json.loads((run / "metrics.json").read_text())["settings"]["profile"] == "mine"
    assert json.loads((run / "run.json").read_text())["profile"] == "mine"


@pytest.mark.parametrize("name", ["mine", "paper_v2", "gpu-a100", "2024", "cpu", "tiny", "paper"])
def test_the_kernel_accepts_any_profile_name(name):
    assert params.validate({"profile": name}).profile == name
    ns = {"profile": name, "output_dir": "", "pruning_rate": 0.5, "plt": object()}
    settings = params.settings_from(ns)  # a notebook's setup cell
    assert settings.profile == name and settings.pruning_rate == 0.5
    assert settings.max_epochs == params.Settings().max_epochs  # the other settings: defaults


@pytest.mark.parametrize("name", ["", "../x", "a/b", "a b", "-x", ".hidden", "x\n", 3])
def test_the_kernel_refuses_a_profile_that_is_no_folder_name(name):
    with pytest.raises(ParamsError, match="'profile'"):
        params.validate({"profile": name})


# ----------------------------------------------------------------------------- reproducible records


def _paths_in(obj, found: list[str]) -> list[str]:
    if isinstance(obj, dict):
        for v in obj.values():
            _paths_in(v, found)
    elif isinstance(obj, list):
        for v in obj:
            _paths_in(v, found)
    elif isinstance(obj, str) and (os.path.isabs(obj) or ".tmp-" in obj):
        found.append(obj)
    return found


def test_two_identical_runs_write_identical_records(tree):
    kw, calls = tree
    root = kw["outputs_root"]
    run = root / "00_hello" / "mine"
    runner.reproduce("mine", **kw)
    first = {name: (run / name).read_bytes() for name in ("metrics.json", "run.json")}
    runner.reproduce("mine", force=True, **kw)
    assert len(calls) == 2
    assert (run / "metrics.json").read_bytes() == first["metrics.json"]  # byte for byte
    records = [json.loads(first["run.json"]), json.loads((run / "run.json").read_text())]
    assert [{k: v for k, v in r.items() if k not in TIMING} for r in records] == [
        {k: v for k, v in records[1].items() if k not in TIMING}
    ] * 2

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["settings"]["output_dir"] == "../out/00_hello/mine"  # the final folder
    assert _paths_in(metrics, []) == []
    record = records[1]
    assert record["output_dir"] == "../out/00_hello/mine" and "executed_in" not in record
    assert record["source"] == "00_hello.ipynb"  # relative to the project (here: notebooks/)
    assert record["params_file"] == "../params/mine/00_hello.yaml"
    assert _paths_in(record, []) == []
    page = (root / "reports" / "00_hello-mine.html").read_text(encoding="utf-8")
    assert str(root.parent) not in page and ".tmp-" not in page
    assert "../out/00_hello/mine" in page  # the injected output_dir, as the notebook saw it


def test_stale_temp_folders_go_at_the_start_of_a_batch(tree):
    kw, _ = tree
    root = kw["outputs_root"]
    dead = [root / "00_hello" / ".tmp-mine-999999999", root / "07_other" / ".tmp-cpu-999999998"]
    alive = root / "07_other" / f".tmp-cpu-{os.getpid()}"  # a batch still running
    for folder in [*dead, alive]:
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text("{}\n")
    runner.reproduce("mine", **kw)
    assert not any(p.exists() for p in dead) and alive.is_dir()
    runner.plan("mine", **kw)  # a dry run removes nothing
    assert alive.is_dir()


# ----------------------------------------------------------------------------- failed runs


def test_a_failed_run_is_kept_under_outputs_failed_and_listed(tree, monkeypatch):
    kw, calls = tree
    root = kw["outputs_root"]
    runner.reproduce("mine", **kw)  # a report and the index
    monkeypatch.setattr(
        papermill, "execute_notebook", _notebook_like(calls, RuntimeError("kernel died"))
    )
    with pytest.raises(RuntimeError, match="kernel died") as err:
        runner.reproduce("mine", force=True, **kw)
    kept = root / "failed" / "00_hello-mine.ipynb"
    assert err.value.__notes__ == [f"executed notebook kept at {kept}"] and kept.is_file()
    assert sorted(p.name for p in (root / "00_hello").iterdir()) == ["mine"]  # no temp folder
    index = (root / "reports" / "index.html").read_text(encoding="utf-8")
    assert "Failed runs" in index and 'href="../failed/00_hello-mine.ipynb"' in index

    monkeypatch.setattr(papermill, "execute_notebook", _notebook_like(calls))
    runner.reproduce("mine", force=True, **kw)  # the run succeeds: its failed copy goes
    assert not kept.exists()
    assert "Failed runs" not in (root / "reports" / "index.html").read_text(encoding="utf-8")


def test_only_the_newest_failed_notebooks_are_kept(tree, monkeypatch):
    kw, calls = tree
    failed = kw["outputs_root"] / "failed"
    failed.mkdir(parents=True)
    for i in range(execution.KEEP_FAILED + 3):
        old = failed / f"{i:02d}_old-cpu.ipynb"
        old.write_text("{}")
        os.utime(old, (1_000_000 + i, 1_000_000 + i))
    monkeypatch.setattr(papermill, "execute_notebook", _notebook_like(calls, RuntimeError("x")))
    with pytest.raises(RuntimeError):
        runner.reproduce("mine", **kw)
    kept = sorted(p.name for p in failed.iterdir())
    assert len(kept) == execution.KEEP_FAILED and "00_hello-mine.ipynb" in kept
    assert "00_old-cpu.ipynb" not in kept and "22_old-cpu.ipynb" in kept  # the oldest went


def test_ctrl_c_keeps_no_copy_and_no_temp_folder(tree, monkeypatch):
    kw, calls = tree
    monkeypatch.setattr(papermill, "execute_notebook", _notebook_like(calls, KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        runner.reproduce("mine", **kw)
    assert not (kw["outputs_root"] / "00_hello").exists()
    assert not (kw["outputs_root"] / "failed").exists()
