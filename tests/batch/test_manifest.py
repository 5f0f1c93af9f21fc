"""params/manifest.yaml agrees with notebooks/ and params/; the README's map and the notebooks'
navigation lines are generated from it."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from wemem import cli
from wemem.batch import discovery, manifest, manifest_sync, navigation
from wemem.errors import ParamsError

REPO = Path(__file__).resolve().parents[2]


def test_manifest_lists_every_run_of_every_profile_in_order():
    m = manifest.load(REPO / "params")
    assert manifest_sync.check(m, REPO / "notebooks", REPO / "params") == []
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
    problems = manifest_sync.check(manifest.load(params), nbs, params)
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
    from wemem.params import FIELDS

    keys = ("memscore_method", "memscore_models", "memscore_ratio", "memscore_epochs")
    runs = discovery.discover_runs(
        "paper", notebooks_dir=REPO / "notebooks", params_dir=REPO / "params"
    )
    defaults = discovery.notebook_defaults
    effective = {r.run_id: {**defaults(r.notebook), **r.params} for r in runs if r.variant}
    for run_id, params in effective.items():
        stem, _, variant = run_id.partition(".")
        ref = effective.get(f"01_memorization_scores.{variant}")
        if stem == "01_memorization_scores" or ref is None or "memscore_models" not in params:
            continue
        for k in keys:
            want, got = ref.get(k, FIELDS[k].default), params.get(k, FIELDS[k].default)
            assert got == want, (run_id, k, got, want)


def test_planning_reads_the_parameters_cell_the_runner_reads():
    from wemem.planning import workload

    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        assert workload.notebook_defaults(path.stem) == discovery.notebook_defaults(path)


# ----------------------------------------------------------------------------- navigation


def test_notebooks_navigation_follows_the_manifest():
    m = manifest.load(REPO / "params")
    problems = navigation.navigation_problems(m, REPO / "notebooks")
    assert problems == [], "run: wemem manifest --write-navigation\n" + "\n".join(problems)


def test_navigation_links_keep_the_notebooks_style():
    """Every link written today (``[← 03 RSW](…)``, ``[Overview](…)``, ``[07 DP-SGD →](…)``) is
    one the generator writes too."""
    m = manifest.load(REPO / "params")
    link = r"\[[^\]]*\]\(\w+\.ipynb\)"
    generated = {x for line in navigation.expected_lines(m, REPO / "notebooks").values()
                 for x in re.findall(link, line)}  # fmt: skip
    for stem in m.notebooks:
        line = navigation.navigation_line(REPO / "notebooks" / f"{stem}.ipynb") or ""
        assert set(re.findall(link, line)) <= generated, stem


@pytest.mark.parametrize(
    "title, topic",
    [
        ("Overview: WeMem in one page", "Overview"),
        ("Defense: RSW (ranking + sliding window)", "RSW"),
        ("Defense: baselines (PPB, ADV, RelaxLoss) and the comparison with WeMem", "Baselines"),
        ("Defense: DP-SGD with Opacus", "DP-SGD"),
        ("Time cost of the defenses", "Time cost"),
        ("Automatic settings", "Automatic settings"),
    ],
)
def test_topic_is_the_head_of_the_title(title, topic):
    assert navigation.topic(title) == topic


def test_write_navigation_rewrites_only_that_line(tmp_path, capsys):
    nbs = tmp_path / "notebooks"
    shutil.copytree(REPO / "notebooks", nbs)
    before = {p.name: p.read_text(encoding="utf-8") for p in nbs.glob("*.ipynb")}
    argv = ["manifest", "--write-navigation", "--notebooks", str(nbs), "--params"]
    assert cli.main([*argv, str(REPO / "params")]) == 0
    m = manifest.load(REPO / "params")
    assert navigation.navigation_problems(m, nbs) == []
    for name, text in before.items():
        after = (nbs / name).read_text(encoding="utf-8")
        old, new = text.splitlines(), after.splitlines()
        assert len(old) == len(new), name
        changed = [i for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b]
        assert len(changed) <= 1, (name, changed)
        nb = json.loads(after)
        assert after == json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
        if changed:  # that line is the navigation line of the first Markdown cell
            first = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
            assert json.loads(new[changed[0]].strip().rstrip(",")) in first["source"]
            assert navigation.navigation_line(nbs / name) in new[changed[0]]
    capsys.readouterr()
    assert cli.main([*argv, str(REPO / "params")]) == 0  # a second run changes nothing
    assert capsys.readouterr().out.startswith("0 of ")


def test_write_navigation_follows_the_order_and_adds_a_missing_line(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    titles = {"00_hub": "Overview: the hub", "01_b": "Defense: B (b)", "02_a": "A with extras"}
    lines = {"00_hub": "", "01_b": "\n\n[← 00 Overview](00_hub.ipynb)", "02_a": ""}
    for stem, title in titles.items():
        cell = nbformat.v4.new_markdown_cell(f"# {stem[:2]} · {title}\n\nIntro.{lines[stem]}")
        nbformat.write(nbformat.v4.new_notebook(cells=[cell]), nbs / f"{stem}.ipynb")
    entry = manifest.NotebookEntry  # order: hub, 02_a, 01_b (the manifest's, not the names')
    m = manifest.Manifest({s: entry(s, "x", (), ()) for s in ("00_hub", "02_a", "01_b")}, runs={})
    assert len(navigation.write_navigation(m, nbs)) == 3
    assert navigation.navigation_line(nbs / "00_hub.ipynb") == "Next: [02 A →](02_a.ipynb)"
    assert navigation.navigation_line(nbs / "02_a.ipynb") == (
        "[← 00 Overview](00_hub.ipynb) · [Overview](00_hub.ipynb) · [01 B →](01_b.ipynb)"
    )
    assert navigation.navigation_line(nbs / "01_b.ipynb") == (
        "[← 02 A](02_a.ipynb) · [Overview](00_hub.ipynb)"
    )
    source = nbformat.read(nbs / "02_a.ipynb", as_version=4).cells[0].source
    assert source.endswith("Intro.\n\n" + navigation.navigation_line(nbs / "02_a.ipynb"))
    assert navigation.write_navigation(m, nbs) == []
