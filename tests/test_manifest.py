"""params/manifest.yaml agrees with notebooks/ and params/, and the README's map is generated."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wemem import cli
from wemem.batch import manifest
from wemem.errors import ParamsError

REPO = Path(__file__).resolve().parents[1]


def test_manifest_lists_every_run_of_every_profile_in_order():
    m = manifest.load(REPO / "params")
    assert manifest.check(m, REPO / "notebooks", REPO / "params") == []
    assert set(m.runs) == {"tiny", "cpu", "paper"}
    assert all(r.hardware == "gpu" for r in m.runs["paper"])


def test_manifest_produces_what_the_notebook_tests_check():
    from test_notebooks import PROMISES  # the files each notebook's tiny run must write

    m = manifest.load(REPO / "params")
    for stem, entry in m.notebooks.items():
        produced = {re.sub(r" \(.*\)$", "", p) for p in entry.produces}
        assert produced <= set(PROMISES[stem]), (stem, produced - set(PROMISES[stem]))


def test_readme_map_is_generated_from_the_manifest():
    m = manifest.load(REPO / "params")
    block = manifest.readme_block(REPO / "README.md")
    assert block is not None, "README lacks the manifest-map markers"
    assert block == manifest.markdown_map(m), "run: wemem manifest --write-readme"


def test_cpu_minutes_are_measured_and_paper_minutes_estimated():
    m = manifest.load(REPO / "params")
    assert all(r.minutes is not None and r.minutes > 0 for r in m.runs["cpu"])
    assert all(r.minutes is not None and r.minutes > 0 for r in m.runs["paper"])


def test_check_reports_drift(tmp_path):
    params = tmp_path / "params"
    (params / "tiny").mkdir(parents=True)
    (params / "tiny" / "00_overview.yaml").write_text("{}\n")
    (params / "tiny" / "00_overview.extra.yaml").write_text("{}\n")
    (params / manifest.FILE).write_text(
        "notebooks:\n"
        "  00_overview: {reproduces: x, needs: [], produces: []}\n"
        "  01_memorization_scores: {reproduces: y, needs: [02_motivation], produces: []}\n"
        "profiles:\n"
        "  tiny: {hardware: cpu, runs: [{run: 00_overview, minutes: 1}, "
        "{run: 00_overview.gone, minutes: 1}]}\n"
    )
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    for stem in ("00_overview", "01_memorization_scores"):
        (nbs / f"{stem}.ipynb").write_text((REPO / "notebooks" / f"{stem}.ipynb").read_text())
    problems = manifest.check(manifest.load(params), nbs, params)
    text = "\n".join(problems)
    assert "01_memorization_scores needs 02_motivation" in text
    assert "run 00_overview.extra missing" in text
    assert "run 00_overview.gone listed but has no params file" in text
    assert "profile cpu: run 00_overview missing" in text


@pytest.mark.parametrize(
    "text, message",
    [
        ("notebooks: {}\n", "expected two mappings"),
        ("notebooks: {}\nprofiles: {tiny: {hardware: tpu}}\n", "hardware = 'tpu'"),
        (
            "notebooks: {a: {reproduces: x, needs: []}}\nprofiles: {}\n",
            "notebooks.a: expected keys",
        ),
        (
            "notebooks: {}\nprofiles: {tiny: {hardware: cpu, runs: [{run: a, minutes: soon}]}}\n",
            "minutes",
        ),
    ],
)
def test_bad_manifest_names_the_field(tmp_path, text, message):
    (tmp_path / manifest.FILE).write_text(text)
    with pytest.raises(ParamsError, match=re.escape(message)):
        manifest.load(tmp_path)


def test_cli_manifest_prints_totals(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert cli.main(["manifest"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"paper\s+\d+ runs", out) and "(gpu)" in out


def test_paper_runs_share_the_mem_scores_of_01():
    """Every paper run whose dataset/model pair has a 01 run asks for the same mem-scores (so the
    cache serves them instead of computing them again with other settings)."""
    from wemem.batch.runner import discover_runs, notebook_defaults
    from wemem.params import FIELDS

    keys = ("memscore_method", "memscore_models", "memscore_ratio", "memscore_epochs")
    runs = discover_runs("paper", notebooks_dir=REPO / "notebooks", params_dir=REPO / "params")
    effective = {r.run_id: {**notebook_defaults(r.notebook), **r.params} for r in runs if r.variant}
    for run_id, params in effective.items():
        stem, _, variant = run_id.partition(".")
        ref = effective.get(f"01_memorization_scores.{variant}")
        if stem == "01_memorization_scores" or ref is None or "memscore_models" not in params:
            continue
        for k in keys:
            want, got = ref.get(k, FIELDS[k].default), params.get(k, FIELDS[k].default)
            assert got == want, (run_id, k, got, want)
