"""Every notebook runs under papermill with the tiny profile and writes what it promises;
committed notebooks are clean; every params file validates against its notebook."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import nbformat
import pytest

from wemem import params
from wemem.batch import runner
from wemem.studies import paper_tables, verdicts

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PROFILES = sorted(p.name for p in (ROOT / "params").iterdir() if p.is_dir())

#: What each notebook promises to write (relative to its run folder), besides the executed copy.
PROMISES = {
    "00_overview": [
        "metrics.json",
        "tables/datasets.csv",
        "tables/datasets.tex",
        "tables/names.csv",
    ],
    "01_memorization_scores": [
        "metrics.json",
        "tables/memscores.csv",
        "tables/flip_recovery.csv",
        "tables/convergence.csv",
        "tables/tau.csv",
        "figures/memscore_distributions.png",
        "figures/memscore_convergence.png",
        "figures/memscore_grid.png",  # the tiny profile uses digits
    ],
    "02_motivation": [
        "metrics.json",
        "tables/attacks.csv",
        "tables/models.csv",
        "tables/summary.csv",
        "tables/splits.csv",
        "figures/leakage_per_round.png",
        "figures/leakage_per_round.pdf",
        "figures/stage_comparison.png",
        "figures/flipped_vs_clean.png",
    ],
    "03_defense_rsw": [
        "metrics.json",
        "tables/rsw.csv",
        "tables/rsw_settings.csv",
        "figures/rsw_accuracy.png",
        "figures/rsw_attacks.png",
    ],
    "04_defense_rmr": [
        "metrics.json",
        "tables/rmr.csv",
        "tables/rmr_settings.csv",
        "figures/rmr_lambda.png",
    ],
    "05_defense_swmr": [
        "metrics.json",
        "tables/swmr.csv",
        "tables/swmr_settings.csv",
        "figures/swmr_accuracy.png",
        "figures/swmr_attacks.png",
    ],
    "06_baselines": [
        "metrics.json",
        "tables/baselines.csv",
        "tables/comparison.csv",
        "figures/comparison.png",
        "tables/strongest.csv",
        "tables/strongest_deciles.csv",
        "figures/strongest_roc.png",
        "figures/strongest_deciles.png",
    ],
    "07_dpsgd_opacus": [
        "metrics.json",
        "tables/dp.csv",
        "tables/dp_settings.csv",
        "figures/privacy_utility.png",
    ],
    "09_pruning_approaches": [
        "metrics.json",
        "tables/pruning.csv",
        "tables/rates.csv",
        "tables/approaches.csv",
        "figures/pruning.png",
        "figures/approaches.png",
    ],
    "10_time_cost": ["metrics.json", "tables/time_cost.csv", "figures/time_cost.png"],
    "11_autotune": [
        "metrics.json",
        "tables/candidates.csv",
        "tables/search_trace.csv",
        "tables/victim.csv",
        "figures/search.png",
    ],
    "08_attacks": [
        "metrics.json",
        "tables/attacks.csv",
        "tables/side_by_side.csv",
        "tables/memscore_leakage.csv",
        "figures/roc_curves.png",
        "figures/memscore_leakage.png",
        "tables/strongest.csv",
        "figures/strongest_roc.png",
    ],
    "12_paper_tables": [
        "metrics.json",
        "tables/paper_vs_reproduced.csv",
        "tables/claims_summary.csv",
        "tables/statements.csv",
        "tables/artefacts.csv",
        "tables/runs.csv",
    ],
}


def test_every_notebook_has_promises():
    assert {p.stem for p in NOTEBOOKS} == set(PROMISES)


def test_tiny_profile_runs_every_notebook(tiny_batch):
    out, results = tiny_batch
    assert sorted(r["notebook"] for r in results) == [p.stem for p in NOTEBOOKS]
    for stem, files in PROMISES.items():
        run_dir = out / stem / "tiny"
        assert (run_dir / f"{stem}.ipynb").exists()
        for f in files:
            assert (run_dir / f).stat().st_size > 0, (stem, f)
        assert (out / "reports" / f"{stem}-tiny.html").exists()
    index = (out / "reports" / "index.html").read_text()
    assert all(f"{p.stem}-tiny.html" in index for p in NOTEBOOKS)
    assert json.loads((out / "reproduce-tiny.json").read_text())["total_seconds"] > 0


def test_memorization_checks_pass_and_prose_reads_metrics(tiny_batch):
    out, _ = tiny_batch
    m = json.loads((out / "01_memorization_scores" / "tiny" / "metrics.json").read_text())
    assert m["checks"]["flipped_labels_rank_on_top"] and all(m["checks"].values())
    nb = nbformat.read(out / "01_memorization_scores" / "tiny" / "01_memorization_scores.ipynb", 4)
    summary = nb.cells[-1].outputs[0]["data"]["text/markdown"]
    assert f"{m['fz_vs_kfold_spearman']:.3f}" in summary


def test_attacks_notebook_reports_every_attack(tiny_batch):
    out, _ = tiny_batch
    m = json.loads((out / "08_attacks" / "tiny" / "metrics.json").read_text())
    assert all(m["checks"].values())
    names = {r["attack"] for r in m["attacks"]}
    assert {"conf", "nn", "samia", "nn_sens", "shokri", "lira"} <= names
    row = next(r for r in m["attacks"] if r["attack"] == "nn")
    assert row["paper_metric_name"] == "accuracy" and row["paper_metric"] == row["accuracy"]


def test_defense_notebooks_compute_their_claims(tiny_batch):
    out, _ = tiny_batch
    for stem in ("03_defense_rsw", "05_defense_swmr"):
        m = json.loads((out / stem / "tiny" / "metrics.json").read_text())
        assert all(m["checks"].values())
        assert set(m["claims"]) >= {"smaller_width_lowers_test_acc", "lowest_attack_setting"}
    m = json.loads((out / "04_defense_rmr" / "tiny" / "metrics.json").read_text())
    assert set(m["claims"]["attack_by_lambda"]) == {"0.01", "0.1", "1"}


def test_autotune_searches_on_shadows_and_reports_the_victim(tiny_batch):
    out, _ = tiny_batch
    m = json.loads((out / "11_autotune" / "tiny" / "metrics.json").read_text())
    assert all(m["checks"].values())
    assert m["claims"]["chosen"] == m["chosen"] and m["claims"]["candidates"] > 10
    assert [r["share"] for r in m["tau"]] == [0.1] and abs(m["tau"][0]["selected"] - 0.1) <= 0.01
    assert verdicts.is_decision(m["claims"]["auto_below_base_auc"])


def test_dp_runs_report_epsilon_and_time_cost_has_every_defense(tiny_batch):
    out, _ = tiny_batch
    m = json.loads((out / "07_dpsgd_opacus" / "tiny" / "metrics.json").read_text())
    assert all(m["checks"].values())
    eps = [r["dp_epsilon"] for r in m["dp"] if r.get("method") == "DP"]
    assert eps and all(e > 0 for e in eps)
    t = json.loads((out / "10_time_cost" / "tiny" / "metrics.json").read_text())["time_cost"]
    assert {r["defense"] for r in t} == {
        "base",
        "ppb",
        "adv",
        "dp",
        "relaxloss",
        "rsw_l2h",
        "rmr",
        "swmr_h2l",
    }


def test_motivation_metrics_are_computed(tiny_batch):
    out, _ = tiny_batch
    m = json.loads((out / "02_motivation" / "tiny" / "metrics.json").read_text())
    assert all(m["checks"].values())
    assert set(m["claims"]["mean_auc"]) == {"dense", "one-shot", "iterative"}
    for claim in (m["claims"]["iterative_gt_dense"], m["scenarios"]["high_mem_leaks_more"]):
        assert verdicts.is_decision(claim) and claim["noise"] == "sampling SE (one seed)"
    nb = nbformat.read(out / "02_motivation" / "tiny" / "02_motivation.ipynb", as_version=4)
    summary = nb.cells[-1].outputs[0]["data"]["text/markdown"]
    assert f"{m['claims']['mean_auc']['iterative']:.3f}" in summary  # prose reads metrics.json


def test_paper_tables_read_the_runs_of_their_batch(tiny_batch):
    out, _ = tiny_batch
    m = json.loads((out / "12_paper_tables" / "tiny" / "metrics.json").read_text())
    assert all(m["checks"].values())
    assert {r["status"] for r in m["runs"]} == {"run"}  # 00-11 ran before 12, into the same root
    assert m["counts"]["not_run"] == 0 and m["counts"]["compared"] > 0
    # every claim key 12 reads (paper_values.yaml's tested_by) is in the runs' metrics
    assert paper_tables.claim_keys(paper_tables.collect(out, "tiny")) == []
    assert m["counts"]["not_in_metrics"] == 0
    decided = [c for c in m["claims_summary"] if c["notebook"] in ("02_motivation", "11_autotune")]
    assert decided and all(c["status"] in verdicts.STATUSES for c in decided)
    assert all(c["resolution"] is not None for c in decided)
    nb = nbformat.read(out / "12_paper_tables" / "tiny" / "12_paper_tables.ipynb", as_version=4)
    summary = nb.cells[-1].outputs[0]["data"]["text/markdown"]
    assert f"holds: {m['counts']['holds']}," in summary  # prose reads metrics.json


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_hygiene(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "outputs committed"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one parameters cell"
    names = runner.notebook_parameters(path)
    assert {"profile", "output_dir"} <= names
    number = path.stem.split("_")[0]
    assert re.match(rf"# {number} · ", nb.cells[0].source), "title must start with '# NN · '"
    for c in code:
        tree = ast.parse(c.source)
        assert not [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef)]
        if c not in tagged:  # the parameters cell is literals only; its length is the settings'
            assert len(c.source.splitlines()) <= 25, "keep code cells short; move logic to wemem"
    defaults = ast.literal_eval(
        "{"
        + ",".join(
            f"{t.targets[0].id!r}: {ast.unparse(t.value)}" for t in ast.parse(tagged[0].source).body
        )
        + "}"
    )
    params.validate({k: v for k, v in defaults.items() if k in params.FIELDS})
    assert defaults["profile"] == "cpu"


@pytest.mark.parametrize("profile", PROFILES)
def test_params_files_validate_against_their_notebooks(profile):
    runs = runner.discover_runs(
        profile, notebooks_dir=ROOT / "notebooks", params_dir=ROOT / "params"
    )
    assert runs
    runner.validate_runs(runs)
    for spec in runs:
        params.validate({k: v for k, v in spec.params.items() if k in params.FIELDS})


def test_paper_profile_covers_the_six_datasets():
    variants = {
        p.name.split(".")[1] for p in (ROOT / "params" / "paper").glob("02_motivation.*.yaml")
    }
    datasets = {v.split("_")[0] for v in variants}
    assert datasets == {"cifar10", "cifar100", "cinic10", "texas100", "location30", "purchase100"}


def test_the_strongest_attacks_are_reported_for_every_defense_and_stage(tiny_batch):
    """Issue 15: RMIA and LiRA, offline and online, with intervals, for each paper bar (06) and
    each stage (08), and the claims as verdicts."""
    import pandas as pd

    out, _ = tiny_batch
    attacks = {"RMIA (offline)", "LiRA (offline)", "LiRA (online)", "RMIA (online)"}
    for stem in ("06_baselines", "08_attacks"):
        t = pd.read_csv(out / stem / "tiny" / "tables" / "strongest.csv")
        for _, rows in t.groupby("setting"):
            assert set(rows.attack) == attacks
        for m in ("auc", "tpr@0.1%", "tpr@1%"):
            assert (t[f"{m}_lo"] <= t[f"{m}_hi"]).all() and t[m].between(0, 1).all()
    six = pd.read_csv(out / "06_baselines" / "tiny" / "tables" / "strongest.csv")
    assert set(six.setting) == {"Base", "PPB", "ADV", "DP", "RelaxLoss", "RSW", "RMR", "SWMR"}
    m6 = json.loads((out / "06_baselines" / "tiny" / "metrics.json").read_text())
    assert m6["strongest"]["status"] in ("holds", "does not hold", "unresolved")
    assert set(m6["strongest"]["by_method"]) == {"RSW", "RMR", "SWMR"}
    m8 = json.loads((out / "08_attacks" / "tiny" / "metrics.json").read_text())
    assert set(m8["strongest_stages"]) == attacks
