"""The notebook runner: discovery, validation, execution as records and the reports of runs.

Three real papermill executions in this file (the fixture notebooks take a few seconds each):
the reproduce batch shared by several tests, a re-run and a failing run. Other paths use a fake
``papermill.execute_notebook``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import nbformat
import papermill
import pytest

from wemem.batch.discovery import discover_runs, validate_runs
from wemem.batch.execution import run_notebook
from wemem.batch.runner import reproduce
from wemem.errors import ParamsError

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
NOTEBOOKS = FIXTURES / "notebooks"
PARAMS = FIXTURES / "params"


def _kernel_env(mp: pytest.MonkeyPatch) -> None:
    """Let the kernel import wemem before the package is installed (the kernel inherits env)."""
    mp.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    )


def _hidden_entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


@pytest.fixture(autouse=True)
def _private_tempdir(tmp_path, monkeypatch):
    """Keep what a test leaves in the system temp dir (kernel sockets) inside tmp_path."""
    (tmp_path / "systmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "systmp"))


@pytest.fixture(scope="module")
def hello(tmp_path_factory):
    """One real batch: ``reproduce('tiny', only='00_*')`` of the fixture notebooks."""
    root = tmp_path_factory.mktemp("hello") / "outputs"
    with pytest.MonkeyPatch.context() as mp:
        _kernel_env(mp)
        results = reproduce(
            "tiny", only="00_*", outputs_root=root, notebooks_dir=NOTEBOOKS, params_dir=PARAMS
        )
    return root, results


# ----------------------------------------------------------------------------- discovery


def _params(tmp_path: Path, files: dict[str, str]) -> Path:
    params = tmp_path / "params"
    for rel, text in files.items():
        (params / rel).parent.mkdir(parents=True, exist_ok=True)
        (params / rel).write_text(text)
    return params


def test_discover_variants_only_and_cpu_defaults(tmp_path):
    params = _params(
        tmp_path,
        {
            "tiny/00_hello.yaml": "n: 2\n",
            "tiny/00_hello.wide.yaml": "n: 9\n",
            "tiny/00_hello.long-run.yaml": "{}\n",
            "paper/01_fail.yaml": "{}\n",
        },
    )
    runs = discover_runs("tiny", notebooks_dir=NOTEBOOKS, params_dir=params)
    assert [(r.stem, r.variant, r.run_name, r.params) for r in runs] == [
        ("00_hello", None, "tiny", {"n": 2}),
        ("00_hello", "long-run", "tiny-long-run", {}),
        ("00_hello", "wide", "tiny-wide", {"n": 9}),
    ]  # 01_fail has no tiny file: skipped
    assert runs[2].params_file == params / "tiny" / "00_hello.wide.yaml"
    assert runs[0].notebook == NOTEBOOKS / "00_hello.ipynb"

    cpu = discover_runs("cpu", notebooks_dir=NOTEBOOKS, params_dir=params)
    assert [(r.stem, r.run_name, r.params, r.params_file) for r in cpu] == [
        ("00_hello", "cpu", {}, None),
        ("01_fail", "cpu", {}, None),
    ]
    only = discover_runs("cpu", only="01_*", notebooks_dir=NOTEBOOKS, params_dir=params)
    assert [r.stem for r in only] == ["01_fail"]
    assert [r.stem for r in discover_runs("paper", notebooks_dir=NOTEBOOKS, params_dir=params)] == [
        "01_fail"
    ]


@pytest.mark.parametrize(
    ("files", "profile", "only", "message"),
    [
        ({"tiny/00_hello.yaml": ""}, "papr", None, "profile 'papr' unknown.*allowed: cpu, tiny"),
        ({}, "cpu", "9*", r"only='9\*' matches no notebook.*stems: 00_hello, 01_fail"),
        ({"tiny/00_helo.yaml": ""}, "tiny", None, r"00_helo.yaml: names no notebook.*00_hello"),
        ({"tiny/00_hello.yml": ""}, "tiny", None, r"00_hello.yml: params files end in '.yaml'"),
        ({"tiny/00_hello.a.b.yaml": ""}, "tiny", None, r"variant 'a.b' not allowed"),
        ({"tiny/00_hello.yaml": "- 1\n- 2\n"}, "tiny", None, "expected a mapping.*got list"),
        ({"tiny/00_hello.yaml": "n: [1\n"}, "tiny", None, "00_hello.yaml: not valid YAML"),
        ({"tiny/00_hello.yaml": "1: 2\n"}, "tiny", None, "parameter names must be strings"),
    ],
)
def test_discover_rejects_bad_input(tmp_path, files, profile, only, message):
    params = _params(tmp_path, files)
    with pytest.raises(ParamsError, match=message):
        discover_runs(profile, only=only, notebooks_dir=NOTEBOOKS, params_dir=params)


# ----------------------------------------------------------------------------- validation


def test_unknown_key_is_refused_before_anything_runs(tmp_path, monkeypatch):
    params = _params(tmp_path, {"tiny/00_hello.yaml": "n: 2\nepoch: 3\n"})
    monkeypatch.setattr(papermill, "execute_notebook", pytest.fail)
    outputs = tmp_path / "outputs"
    with pytest.raises(ParamsError) as err:
        reproduce("tiny", outputs_root=outputs, notebooks_dir=NOTEBOOKS, params_dir=params)
    assert str(err.value) == (
        f"{params / 'tiny' / '00_hello.yaml'}: unknown parameter 'epoch' for notebook 00_hello; "
        "allowed: n"
    )
    assert not outputs.exists()


def test_validate_reports_every_problem(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    shutil.copy(NOTEBOOKS / "00_hello.ipynb", nbs)
    no_cell = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    nbformat.write(no_cell, nbs / "02_untagged.ipynb")
    for name, source in [
        ("03_lacks", 'profile = "cpu"'),
        ("04_bad_syntax", 'profile = "cpu"\noutput_dir = ('),
        # papermill.inspect_notebook skips lines with two "=": the runner must not
        (
            "05_tricky",
            'profile = "cpu"  # a=b\noutput_dir = ""\nd = dict(a=1)\nn: int = 3\nx, y = 1, 2',
        ),
    ]:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
        nb.cells[0].metadata["tags"] = ["parameters"]
        nbformat.write(nb, nbs / f"{name}.ipynb")
    params = _params(
        tmp_path,
        {
            "tiny/00_hello.yaml": "output_dir: /elsewhere\n",
            "tiny/02_untagged.yaml": "x: 2\n",
            "tiny/03_lacks.yaml": "{}\n",
            "tiny/04_bad_syntax.yaml": "{}\n",
            "tiny/05_tricky.yaml": "d: {a: 2}\nn: 4\ny: 0\n",
        },
    )
    runs = discover_runs("tiny", notebooks_dir=nbs, params_dir=params)
    with pytest.raises(ParamsError) as err:
        validate_runs(runs)
    lines = str(err.value).splitlines()
    assert len(lines) == 4
    assert "00_hello.yaml: parameter 'output_dir' is set by the runner" in lines[0]
    assert "02_untagged.ipynb: no cell tagged 'parameters'" in lines[1]
    assert "03_lacks.ipynb: parameters cell lacks output_dir" in lines[2]
    assert "04_bad_syntax.ipynb: parameters cell is not valid Python" in lines[3]
    validate_runs(discover_runs("tiny", notebooks_dir=NOTEBOOKS, params_dir=PARAMS))


# ----------------------------------------------------------------------------- real executions


def test_run_writes_everything_promised(hello):
    root, results = hello
    out = root / "00_hello" / "tiny"
    assert [(r["stem"], r["run_name"], r["out_dir"]) for r in results] == [
        ("00_hello", "tiny", out)
    ]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "00_hello.ipynb",
        "figures/squares.pdf",
        "figures/squares.png",
        "metrics.json",
        "run.json",
        "tables/squares.csv",
        "tables/squares.tex",
    ]
    assert _hidden_entries(root) == []  # no temp or old folders left

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == {
        "settings": {"n": 4},
        "hello": {"n": 4, "total": 14, "half": [0.0, 0.5, 1.0, 1.5]},
    }
    record = json.loads((out / "run.json").read_text())
    assert record["parameters"] == {"n": 4} and record["profile"] == "tiny"
    assert record["run_name"] == "tiny" and record["variant"] is None
    assert record["params_file"] == "tests/fixtures/params/tiny/00_hello.yaml"  # from the project
    assert record["source"] == "tests/fixtures/notebooks/00_hello.ipynb"
    assert record["output_dir"] == os.path.relpath(out, NOTEBOOKS)  # no temp, no absolute path
    assert record["wall_seconds"] > 0 and record["start"] <= record["end"]
    assert record["wemem_version"] and record["python"].startswith("3.")
    assert "git_commit" in record and "torch" in record

    nb = nbformat.read(out / "00_hello.ipynb", as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "n = 4" in injected[0].source
    assert 'profile = "tiny"' in injected[0].source
    assert f'output_dir = "{os.path.relpath(out, NOTEBOOKS)}"' in injected[0].source
    assert str(root) + "/00_hello/.tmp" not in (root / "reports" / "00_hello-tiny.html").read_text()

    summary = json.loads((root / "reproduce-tiny.partial.json").read_text())
    assert not (root / "reproduce-tiny.json").exists()  # a filtered batch keeps the full total
    assert summary["only"] == "00_*" and summary["total_seconds"] >= summary["runs"][0]["seconds"]
    assert summary["runs"][0]["out_dir"] == "00_hello/tiny"


def test_report_hides_tagged_inputs_and_index_links_it(hello):
    root, results = hello
    report = root / "reports" / "00_hello-tiny.html"
    assert results[0]["report"] == report
    page = report.read_text(encoding="utf-8")
    assert "<title>00 · Hello</title>" in page
    assert "data:image/png;base64," in page  # the figure is embedded
    assert "hidden-input-marker" in page  # the output of the hide-input cell
    assert "must not appear in the HTML report" not in page  # but not its source
    index = (root / "reports" / "index.html").read_text(encoding="utf-8")
    assert '<a href="00_hello-tiny.html">00 · Hello</a>' in index
    assert "<td>tiny</td>" in index and '<a href="../00_hello/tiny/">' in index
    assert not re.search(r"(src|href)=\"(https?:)?//", index)  # no external resources


def test_rerun_replaces_cleanly(hello, tmp_path, monkeypatch):
    root = tmp_path / "outputs"
    shutil.copytree(hello[0], root)
    out = root / "00_hello" / "tiny"
    (out / "stale.txt").write_text("from an older run")
    _kernel_env(monkeypatch)
    spec = discover_runs("tiny", only="00_*", notebooks_dir=NOTEBOOKS, params_dir=PARAMS)[0]
    spec = dataclasses.replace(spec, params={"n": 2})
    result = run_notebook(spec, outputs_root=root)
    assert result["out_dir"] == out
    assert not (out / "stale.txt").exists()
    assert json.loads((out / "metrics.json").read_text())["hello"]["n"] == 2
    assert json.loads((out / "run.json").read_text())["parameters"] == {"n": 2}
    assert _hidden_entries(root) == []
    # _static/ holds MathJax when jupyter-server-mathjax is installed (tests/test_reports.py)
    assert sorted(p.name for p in (root / "reports").iterdir() if p.name != "_static") == [
        "00_hello-tiny.html",
        "index.html",
    ]


def test_failing_notebook_leaves_nothing_but_its_kept_copy(tmp_path, monkeypatch):
    root = tmp_path / "outputs"
    _kernel_env(monkeypatch)
    nbs = tmp_path / "notebooks"  # 01_fail, leaving its partial file where open_run puts files
    shutil.copytree(NOTEBOOKS, nbs)
    nb = nbformat.read(NOTEBOOKS / "01_fail.ipynb", as_version=4)
    nb.cells[-1].source = (
        "from wemem.report.run_folder import open_run\n\n"
        'run = open_run("01_fail", profile=profile, output_dir=output_dir)\n'
        '(run.path / "partial.txt").write_text("half")  # as a crash would\n'
        'raise RuntimeError("fixture failure")'
    )
    nbformat.write(nb, nbs / "01_fail.ipynb")
    spec = discover_runs("tiny", only="01_*", notebooks_dir=nbs, params_dir=PARAMS)[0]
    with pytest.raises(papermill.PapermillExecutionError, match="fixture failure") as err:
        run_notebook(spec, outputs_root=root)
    assert not (root / "01_fail").exists()
    assert not (root / "reports").exists()
    kept = Path(err.value.__notes__[0].removeprefix("executed notebook kept at "))
    assert kept == root / "failed" / "01_fail-tiny.ipynb" and kept.is_file()
    assert not list((tmp_path / "systmp").glob("wemem-failed-*"))  # not in the system temp dir


# ----------------------------------------------------------------------------- fake executions


def _fake_execute(fail: bool = False):
    def execute(input_path, output_path, *, parameters, cwd, **kwargs):
        assert Path(cwd) == NOTEBOOKS and not Path(parameters["output_dir"]).is_absolute()
        assert os.environ["WEMEM_RUN_AS"] == parameters["output_dir"]  # open_run writes to:
        nb = nbformat.read(input_path, as_version=4)
        nb.metadata["papermill"] = {"duration": 0.5}
        nbformat.write(nb, output_path)
        Path(os.environ["WEMEM_RUN_DIR"], "metrics.json").write_text('{"n": 1}\n')
        if fail:
            raise RuntimeError("kernel died")

    return execute


def test_failure_keeps_the_previous_run_and_clears_stale_temp(tmp_path, monkeypatch):
    root = tmp_path / "outputs"
    previous = root / "01_fail" / "tiny"
    previous.mkdir(parents=True)
    (previous / "metrics.json").write_text('{"good": true}\n')
    stale = root / "01_fail" / ".tmp-tiny-999999999"  # left by a killed runner
    stale.mkdir()
    monkeypatch.setattr(papermill, "execute_notebook", _fake_execute(fail=True))
    spec = discover_runs("tiny", only="01_*", notebooks_dir=NOTEBOOKS, params_dir=PARAMS)[0]
    with pytest.raises(RuntimeError, match="kernel died"):
        run_notebook(spec, outputs_root=root)
    assert sorted(p.name for p in (root / "01_fail").iterdir()) == ["tiny"]
    assert [p.name for p in previous.iterdir()] == ["metrics.json"]
    assert json.loads((previous / "metrics.json").read_text()) == {"good": True}


def test_interrupted_swap_is_restored(tmp_path, monkeypatch):
    root = tmp_path / "outputs"
    old = root / "00_hello" / ".old-tiny-999999999"  # killed between the two renames
    old.mkdir(parents=True)
    (old / "metrics.json").write_text("{}\n")
    monkeypatch.setattr(papermill, "execute_notebook", _fake_execute(fail=True))
    spec = discover_runs("tiny", only="00_*", notebooks_dir=NOTEBOOKS, params_dir=PARAMS)[0]
    with pytest.raises(RuntimeError):
        run_notebook(spec, outputs_root=root)
    assert sorted(p.name for p in (root / "00_hello").iterdir()) == ["tiny"]


def test_reproduce_full_batch_writes_summary_with_variants(tmp_path, monkeypatch):
    params = _params(tmp_path, {"tiny/00_hello.yaml": "n: 1\n", "tiny/00_hello.wide.yaml": "{}\n"})
    monkeypatch.setattr(papermill, "execute_notebook", _fake_execute())
    root = tmp_path / "outputs"
    results = reproduce("tiny", outputs_root=root, notebooks_dir=NOTEBOOKS, params_dir=params)
    assert [r["run_name"] for r in results] == ["tiny", "tiny-wide"]
    assert (root / "00_hello" / "tiny-wide" / "run.json").is_file()
    summary = json.loads((root / "reproduce-tiny.json").read_text())
    assert [r["run_name"] for r in summary["runs"]] == ["tiny", "tiny-wide"]
    assert summary["total_seconds"] >= sum(r["seconds"] for r in summary["runs"])
    index = (root / "reports" / "index.html").read_text()
    assert index.index("00_hello-tiny.html") < index.index("00_hello-tiny-wide.html")
