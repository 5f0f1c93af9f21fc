"""Skipping unchanged runs (fingerprints), ``--force``, resources, dry-run plans and the CLI's
``cache verify`` / ``cache gc``. Uses a fake ``papermill.execute_notebook`` (no kernel)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import papermill
import pytest

from wemem import cache as wcache
from wemem import cli
from wemem.batch import discovery, fingerprint, runner
from wemem.errors import ParamsError

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "tests" / "fixtures" / "notebooks"


def test_unchanged_run_is_skipped_and_force_reruns(batch):
    kw, calls, nbs, params = batch
    runner.reproduce("tiny", **kw)
    assert calls == ["00_hello"]
    record = json.loads((kw["outputs_root"] / "00_hello" / "tiny" / "run.json").read_text())
    assert len(record["fingerprint"]) == 64
    assert record["cache_entries"] == ["dense/" + "a" * 64]  # deduplicated
    assert not (kw["outputs_root"] / "00_hello" / "tiny" / ".cache-access.log").exists()

    full = (kw["outputs_root"] / "reproduce-tiny.json").read_text()
    results = runner.reproduce("tiny", **kw)
    assert calls == ["00_hello"] and results[0]["skipped"]
    assert (kw["outputs_root"] / "reproduce-tiny.json").read_text() == full  # measured total kept
    assert json.loads((kw["outputs_root"] / "reproduce-tiny.partial.json").read_text())["runs"][0][
        "skipped"
    ]
    assert [r["action"] for r in runner.plan("tiny", **kw)] == ["skip (unchanged)"]

    runner.reproduce("tiny", force=True, **kw)
    assert calls == ["00_hello"] * 2

    (params / "00_hello.yaml").write_text("n: 2\n")  # params changed: runs again
    runner.reproduce("tiny", **kw)
    assert calls == ["00_hello"] * 3

    nb = nbformat.read(nbs / "00_hello.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell("one more sentence"))
    nbformat.write(nb, nbs / "00_hello.ipynb")  # notebook changed: runs again
    runner.reproduce("tiny", **kw)
    assert calls == ["00_hello"] * 4
    (kw["outputs_root"] / "00_hello" / "tiny" / "metrics.json").unlink()  # output lost: reruns
    assert [r["action"] for r in runner.plan("tiny", **kw)] == ["run"]


def test_fingerprint_follows_the_library_code_a_notebook_imports(tmp_path):
    mods = fingerprint.notebook_modules(REPO / "notebooks" / "00_overview.ipynb")
    assert {"wemem.studies.overview", "wemem.report.run_folder", "wemem"} <= mods
    assert (
        "wemem.training.loop" not in mods
    )  # 00 trains nothing: a training change does not rerun it
    deep = fingerprint.notebook_modules(REPO / "notebooks" / "03_defense_rsw.ipynb")
    # reached only through imports inside functions and packages' __init__
    assert {"wemem.training.loop", "wemem.memorization.memscores", "wemem.defenses.methods"} <= deep


def test_resources_key_is_the_runners_and_checked(tmp_path):
    params = tmp_path / "params" / "tiny"
    params.mkdir(parents=True)
    (params / "00_hello.yaml").write_text("n: 1\nresources: {num_cpus: 2, num_gpus: 0.5}\n")
    spec = discovery.discover_runs("tiny", only="00_*", notebooks_dir=NOTEBOOKS,
                                   params_dir=tmp_path / "params")[0]  # fmt: skip
    assert spec.params == {"n": 1} and spec.resources == {"num_cpus": 2, "num_gpus": 0.5}
    (params / "00_hello.yaml").write_text("resources: {gpus: 1}\n")
    with pytest.raises(ParamsError, match="resources"):
        discovery.discover_runs("tiny", only="00_*", notebooks_dir=NOTEBOOKS,
                                params_dir=tmp_path / "params")  # fmt: skip


def test_bad_executor_is_refused(batch):
    kw, calls, _, _ = batch
    with pytest.raises(ParamsError, match="executor = 'dask'"):
        runner.reproduce("tiny", executor="dask", **kw)
    assert calls == []


# ----------------------------------------------------------------------------- cache commands


def _entry(c: wcache.Cache, kind: str, n: int) -> str:
    key = c.key(kind, {"n": n})
    c.save(kind, key, {"value": n}, {"n": n})
    return f"{kind}/{key}"


def test_cache_verify_finds_truncated_and_incomplete_entries(tmp_path, capsys):
    c = wcache.Cache(tmp_path / "cache")
    good, truncated, orphan = (_entry(c, "dense", i) for i in range(3))
    payload = tmp_path / "cache" / "dense" / truncated[6:8] / f"{truncated[6:]}.pt"
    payload.write_bytes(payload.read_bytes()[:-10])
    (tmp_path / "cache" / "dense" / orphan[6:8] / f"{orphan[6:]}.json").unlink()
    (tmp_path / "cache" / "dense" / "ab").mkdir()
    (tmp_path / "cache" / "dense" / "ab" / ".x.pt.123.tmp").write_bytes(b"partial")
    report = wcache.verify(tmp_path / "cache")
    assert report["ok"] == [good] and report["corrupted"] == [truncated]
    assert report["incomplete"] == [orphan] and len(report["stray"]) == 1

    assert cli.main(["cache", "verify", "--dir", str(tmp_path / "cache")]) == 1
    assert "corrupted (found): 1" in capsys.readouterr().out
    assert cli.main(["cache", "verify", "--dir", str(tmp_path / "cache"), "--fix"]) == 0
    assert wcache.verify(tmp_path / "cache") == {
        "ok": [good], "corrupted": [], "incomplete": [], "stray": []}  # fmt: skip
    assert c.load("dense", good[6:]) == {"value": 0}


def test_cache_gc_keeps_what_recorded_runs_use(tmp_path, capsys):
    root = tmp_path / "cache"
    c = wcache.Cache(root)
    used, unused, resume = _entry(c, "dense", 1), _entry(c, "pruned", 2), _entry(c, "round", 3)
    args = ["cache", "gc", "--dir", str(root), "--outputs", str(tmp_path / "out")]
    assert cli.main(args) == 2  # no recorded run: refuses to empty the cache
    assert "pass --all" in capsys.readouterr().err
    run = tmp_path / "out" / "02_x" / "cpu"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"cache_entries": [used]}))
    assert cli.main([*args, "--dry-run"]) == 0
    assert set(wcache.entries(root)) == {used, unused, resume}
    assert cli.main(args) == 0
    assert set(wcache.entries(root)) == {used, resume}  # resume points kept by default
    assert cli.main([*args, "--drop-resume-points"]) == 0
    assert set(wcache.entries(root)) == {used}


def test_dry_run_prints_a_cost_table_for_the_paper_profile(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(REPO)
    before = sorted(p.name for p in (REPO / "outputs").iterdir())
    args = ["reproduce", "--profile", "paper", "--only", "04_*", "--dry-run",
            "--outputs", str(tmp_path / "out")]  # fmt: skip
    assert cli.main(["-v", *args]) == 0
    out = capsys.readouterr().out
    assert "victim+5 shadows dense" in out  # the per-run trainings (-v)
    assert "12 of 12 runs would execute" in out
    for device_class in ("cpu-2core", "gpu-h100-class"):
        assert device_class in out
    assert "total:" in out and not (tmp_path / "out").exists()  # nothing written
    assert sorted(p.name for p in (REPO / "outputs").iterdir()) == before


def test_a_corrupted_cache_entry_a_run_recomputes_is_in_its_run_json(batch, tmp_path, monkeypatch):
    kw, calls, nbs, params = batch
    store = wcache.Cache(tmp_path / "cache")
    key = store.key("dense", {"n": 1})
    store.save("dense", key, {"w": 1}, {"n": 1})
    payload, _ = store._paths("dense", key)
    payload.write_bytes(payload.read_bytes()[:-3])  # truncated
    fake = papermill.execute_notebook  # the batch fixture's fake (tests/batch/conftest.py)

    def execute(*args, **kwargs):
        fake(*args, **kwargs)
        assert store.get_or_compute("dense", {"n": 1}, lambda: {"w": 1}) == ({"w": 1}, False)

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    runner.reproduce("tiny", **kw)
    run = kw["outputs_root"] / "00_hello" / "tiny"
    (line,) = json.loads((run / "run.json").read_text())["cache_corrupted"]
    assert line.startswith(f"dense/{key} ") and "sha256" in line
    assert not (run / ".cache-events.log").exists()
