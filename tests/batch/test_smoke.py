"""Smoke scale (``wemem reproduce --smoke``): only the sizes of params/smoke.yaml change, only in
notebooks that declare them; smoke runs write under <outputs>/smoke/, say so in run.json and in
their report's title."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from wemem.batch import smoke
from wemem.batch.discovery import discover_runs, notebook_parameters
from wemem.batch.runner import plan, reproduce
from wemem.errors import ParamsError

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"


def test_paper_runs_change_only_declared_sizes():
    scale = smoke.load(REPO / "params")
    runs = discover_runs("paper", notebooks_dir=REPO / "notebooks", params_dir=REPO / "params")
    assert len(runs) == 94
    sizes = set(scale.sizes) | set(scale.caps) | {k for v in scale.by_notebook.values() for k in v}
    for spec in runs:
        small = scale.apply(spec)
        declared = notebook_parameters(spec.notebook)
        assert set(small.smoke) <= (sizes | {"data_options"}) & declared, spec.run_id
        for key, value in spec.params.items():  # everything else exactly as in the params file
            if key not in small.smoke:
                assert small.params[key] == value, (spec.run_id, key)
        assert small.params.get("data_options", {}) == spec.params.get("data_options", {})
        if "n_shadows" in declared:
            assert small.params["n_shadows"] == (3 if spec.stem == "11_autotune" else 2)
    sixes = [scale.apply(r) for r in runs if r.run_id == "06_baselines.cifar10_resnet18"]
    assert sixes[0].params["rsw_window"] == [500, 50]  # the authors' best window, unshrunk
    assert sixes[0].params["adv_modes"] == ["official", "nasr"]
    # a capped size keeps its shape: the official 100 DP passes per epoch become 2, one pass stays
    assert sixes[0].params["dp_passes_per_epoch"] == [2.0, 1.0]
    assert sixes[0].smoke["dp_passes_per_epoch"] == [2.0, 1.0]


def test_caps_lower_only_numbers_above_them():
    assert smoke._capped([100.0, 1.0, 2], 2) == [2.0, 1.0, 2]
    assert smoke._capped(7, 3) == 3 and smoke._capped(True, 0) is True


def test_offline_data_is_shrunk_through_data_options():
    scale = smoke.load(REPO / "params")
    (spec,) = discover_runs("cpu", only="03_*", notebooks_dir=REPO / "notebooks")
    small = scale.apply(spec)
    assert small.params["data_options"]["n_samples"] == 1500
    assert small.params["data_options"]["n_classes"] == 30  # the notebook's: only the size changes


def test_bad_smoke_file_is_one_clear_error(tmp_path):
    with pytest.raises(ParamsError, match="smoke.yaml not found"):
        smoke.load(tmp_path)
    (tmp_path / "smoke.yaml").write_text("sizes: [1, 2]\n")
    with pytest.raises(ParamsError, match="'sizes' must be a mapping"):
        smoke.load(tmp_path)
    (tmp_path / "smoke.yaml").write_text("caps: {dp_passes_per_epoch: many}\n")
    with pytest.raises(ParamsError, match="caps.dp_passes_per_epoch must be a number"):
        smoke.load(tmp_path)
    (tmp_path / "smoke.yaml").write_text("size: {n: 1}\n")
    with pytest.raises(ParamsError, match="expected a mapping with keys"):
        smoke.load(tmp_path)


def test_smoke_batch_writes_its_own_folder_and_says_so(tmp_path, monkeypatch):
    params = tmp_path / "params"
    shutil.copytree(FIXTURES / "params", params)
    (params / "smoke.yaml").write_text("sizes: {n: 2, width: 0.5}\n")  # 00_hello has no width
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    )
    out = tmp_path / "outputs"
    kw = dict(outputs_root=out, notebooks_dir=FIXTURES / "notebooks", params_dir=params)
    rows = plan("tiny", only="00_*", smoke=True, **kw)
    assert rows[0]["params"]["n"] == 2 and rows[0]["action"] == "run"
    (result,) = reproduce("tiny", only="00_*", smoke=True, **kw)
    run_dir = out / "smoke" / "00_hello" / "tiny"
    assert result["out_dir"] == run_dir and not (out / "00_hello").exists()
    record = json.loads((run_dir / "run.json").read_text())
    assert record["smoke"] == {"n": 2} and record["parameters"]["n"] == 2
    assert json.loads((run_dir / "metrics.json").read_text())["hello"]["n"] == 2
    page = (out / "smoke" / "reports" / "00_hello-tiny.html").read_text()
    assert "<title>00 · Hello (smoke scale: sizes shrunk, not results)</title>" in page
    assert "Smoke scale" in page
    # the same batch without --smoke is a different run (its own folder, full size)
    assert plan("tiny", only="00_*", **kw)[0]["params"]["n"] == 4
