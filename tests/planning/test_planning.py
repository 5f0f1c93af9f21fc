"""The planner calls the science code: its cache entries are the ones a real run uses.

The session's tiny batch (every notebook, tests/conftest.py) logs every cache entry each run loads
or saves; the plan of each run must list exactly those entries (specs compared with the data
digests replaced by placeholders). Notebook 06 covers Base, PPB, RelaxLoss, ADV, DP and the WeMem
methods at the headline window and a quantile τ.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from wemem.defenses.config import headline_window, window_grid
from wemem.experiment import keys
from wemem.memorization.tau import TauRule
from wemem.planning import entries as E
from wemem.planning import verify
from wemem.planning.entries import canonical, dense_entry, tau_placeholder
from wemem.planning.geometry import make_ctx
from wemem.planning.replicate import PlanReplicate
from wemem.planning.workload import notebook_defaults, planned_entries
from wemem.studies import sweeps

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS, PARAMS = ROOT / "notebooks", ROOT / "params"


def _tiny(stem: str) -> dict:
    return yaml.safe_load((PARAMS / "tiny" / f"{stem}.yaml").read_text()) or {}


@pytest.fixture(scope="module")
def tiny_06(tiny_batch):
    """Notebook 06's run of the session's tiny batch, and the batch's cache."""
    out, _ = tiny_batch
    return out / "06_baselines" / "tiny", out.parent / "cache"


def test_every_run_of_the_tiny_batch_used_exactly_its_plan(tiny_batch):
    out, _ = tiny_batch
    runs = verify.run_dirs(out, "tiny")
    assert len(runs) == 13
    for run_dir in runs:
        result = verify.compare_run(
            run_dir, cache_root=out.parent / "cache", notebooks_dir=NOTEBOOKS
        )
        if result.stem not in verify.APPROXIMATE:
            assert result.equal, "\n".join(result.lines())


def test_the_plan_lists_exactly_the_entries_the_run_used(tiny_06):
    run_dir, cache = tiny_06
    result = verify.compare_run(run_dir, cache_root=cache, notebooks_dir=NOTEBOOKS)
    assert result.equal, "\n".join(result.lines())
    kinds = {text.split()[0] for text in result.planned}
    assert kinds == {"dense", "memscores", "pruned"}
    # 3 dense, 1 mem-scores, (Base, PPB, RelaxLoss, ADV (official), then DP, RSW, RMR, SWMR and
    # ADV (Nasr) beside) x 3 models; the strongest attacks' 4 online-LiRA references: dense, and
    # pruned with each of the 8 paper bars
    assert sum(result.planned.values()) == 3 + 1 + 9 * 3 + 4 + 8 * 4


def test_a_plan_of_other_settings_differs_from_the_run(tiny_06):
    run_dir, cache = tiny_06
    record = json.loads((run_dir / "run.json").read_text())
    logged, unreadable = verify.logged_specs(record["cache_entries"], cache)
    assert not unreadable
    other = planned_entries("06_baselines", {**_tiny("06_baselines"), "adv_attack_every": 4})
    planned, used = verify.compare(other.values(), logged)
    missing, unplanned = planned - used, used - planned
    assert len(missing) == len(unplanned) == 3  # ADV every 4th step planned, every 8th ran
    assert all('"attack_every":4' in t for t in missing)
    assert all('"attack_every":8' in t for t in unplanned)


def test_two_runs_training_the_same_model_share_its_key():
    rsw = planned_entries("03_defense_rsw", _tiny("03_defense_rsw"))
    rmr = planned_entries("04_defense_rmr", _tiny("04_defense_rmr"))
    shared = set(rsw) & set(rmr)
    kinds = sorted(rsw[k].kind for k in shared)
    assert kinds == ["dense"] * 3 + ["memscores"] + ["pruned"] * 3  # dense, mem-scores, Base


def test_group_norm_models_are_other_models_mem_scores_included():
    def paper(name: str) -> dict:
        return yaml.safe_load((PARAMS / "paper" / f"{name}.yaml").read_text())

    run = paper("06_baselines.cifar10_resnet18")
    group = planned_entries("06_baselines", {**run, "norm": "group"})  # a whole GroupNorm run
    batch = planned_entries(
        "01_memorization_scores", paper("01_memorization_scores.cifar10_resnet18")
    )
    scores = {k for k, e in group.items() if e.kind == "memscores"}
    assert len(scores) == 1 and not scores & set(batch)
    assert {group[k].spec.get("norm") for k in scores} == {"group"}
    (fz,) = [e for e in batch.values() if e.spec["method"] == "fz"]
    assert {**group[scores.pop()].spec, "norm": None} == {**fz.spec, "norm": None}
    # norm: batch (the paper file): 01's mem-scores; GroupNorm models under the DP rows only
    planned = planned_entries("06_baselines", {**run, "norm": "batch"})
    assert {k for k, e in planned.items() if e.kind == "memscores"} <= set(batch)
    group_dense = {e.key for e in planned.values() if e.kind == "dense" and "norm" in e.spec}
    dp_dense = {
        E.entry("dense", e.spec["dense"]).key
        for e in planned.values()
        if e.kind == "pruned" and e.spec["defense"] == "dp"
    }
    # the victim, its shadows and the strongest attacks' references, each with a GroupNorm twin
    assert group_dense == dp_dense
    assert len(group_dense) == 1 + run["n_shadows"] + run["lira_refs"]


def test_planned_specs_are_the_real_key_functions_with_placeholders():
    c = make_ctx({**notebook_defaults("03_defense_rsw"), **_tiny("03_defense_rsw")})
    e = dense_entry(c.s, "shadow1", 2, seed=0)
    assert e.spec == keys.dense_spec(
        c.s, pool_digest=e.spec["pool"], rows=e.spec["rows"], seed=0, role_index=2
    )
    assert e.spec["train"]["seed"] == keys.model_seed(0, 2) == 2
    assert canonical("dense", e.spec) == canonical("dense", {**e.spec, "pool": "ab", "rows": "cd"})
    assert canonical("dense", e.spec) != canonical("dense", {**e.spec, "width": 0.5})


def test_the_stand_in_replicate_gives_the_notebooks_grid_and_tau():
    c = make_ctx({**notebook_defaults("05_defense_swmr"), **_tiny("05_defense_swmr")})
    replicate = PlanReplicate(c)
    n_c = c.sizes["victim"][0] / c.num_classes
    assert sweeps.class_size(replicate) == n_c == 43.2
    grid = sweeps.window_grid_for(replicate)
    assert grid == window_grid(n_c)
    assert (headline_window(grid).width, headline_window(grid).step) == (10, 1)
    for f in (0.1, 0.176, 0.05, 0.5):
        rule = TauRule("quantile", share=f)
        assert tau_placeholder(sweeps.tau_for(replicate, rule)) == f"<tau quantile {f:g}>"
    raw = TauRule("raw", value=0.6)
    assert tau_placeholder(sweeps.tau_for(replicate, raw)) == 0.6  # a raw τ stays a value
    assert math.isclose(
        sweeps.tau_for(replicate, TauRule("quantile", share=0.1)), 0.9, abs_tol=1e-5
    )


def test_a_batchnorm_cnn_plans_groupnorm_models_for_its_dp_rows_only():
    cnn = {**_tiny("07_dpsgd_opacus"), "dataset": "cifar10", "data_options": {}, "arch": "resnet18"}
    entries = planned_entries("07_dpsgd_opacus", cnn).values()
    pruned = [e for e in entries if e.kind == "pruned"]
    dp = [e for e in pruned if e.spec["defense"] == "dp"]
    other = [e for e in pruned if e.spec["defense"] != "dp"]
    assert dp and other
    assert all(e.spec["dense"]["norm"] == "group" for e in dp)
    assert all("norm" not in e.spec["dense"] for e in other)
    dense = [e for e in entries if e.kind == "dense"]
    assert sorted(e.spec.get("norm", "batch") for e in dense) == ["batch"] * 3 + ["group"] * 3
    assert {e.spec["dense"]["train"]["seed"] for e in dp} == {0, 1, 2}  # the run's seeds
    (scores,) = [e for e in entries if e.kind == "memscores"]
    assert "norm" not in scores.spec  # the run's mem-scores, BatchNorm
    s = make_ctx({**notebook_defaults("07_dpsgd_opacus"), **cnn}).s
    e, twin = dense_entry(s, "victim", 0, seed=0), keys.defense_settings(s, "dp")
    assert e.spec == keys.dense_spec(
        s, pool_digest=e.spec["pool"], rows=e.spec["rows"], seed=0, role_index=0
    )
    assert dense_entry(twin, "victim", 0, seed=0).spec == {**e.spec, "norm": "group"}
    assert keys.defense_settings(s, "base") is s
