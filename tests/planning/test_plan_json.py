"""``wemem reproduce --dry-run --json``: the resolved plan as JSON, built without data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from wemem import names
from wemem.batch import runner
from wemem.defenses.catalog import BASELINES, WEMEM_DEFENSES
from wemem.params import validate
from wemem.planning.entries import ramp
from wemem.planning.plan_json import config_norm, dumps, plain, plan_document, tau_and_rule

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ("tiny", "cpu", "paper")
RUN_KEYS = {
    "notebook",
    "run",
    "action",
    "dataset",
    "arch",
    "attacks",
    "paper_mean_attacks",
    "configs",
}
CONFIG_KEYS = {"defense", "setting", "norm", "settings", "tau_rule"}


def _no_constant(name):
    raise AssertionError(f"not plain JSON: {name}")


@pytest.fixture(scope="module")
def plans(tmp_path_factory):
    """Per profile: the runner's plan rows and the JSON document, parsed back (NaN refused)."""
    out = tmp_path_factory.mktemp("outputs")
    made = {}
    for profile in PROFILES:
        rows = runner.plan(
            profile,
            outputs_root=out,
            notebooks_dir=ROOT / "notebooks",
            params_dir=ROOT / "params",
        )
        text = dumps(plan_document(rows, profile=profile))
        made[profile] = rows, json.loads(text, parse_constant=_no_constant)
    return made


def _configs(doc):
    return [(r, c) for r in doc["runs"] for c in r["configs"]]


def _run(plans, profile, params_file):
    """The JSON run of ``params/<profile>/<params_file>`` and its parameters (the file's over the
    notebook's defaults)."""
    rows, doc = plans[profile]
    for row, run in zip(rows, doc["runs"], strict=True):
        path = row["spec"].params_file
        if path is not None and path.name == params_file:
            return run, {**row["params"], **yaml.safe_load(path.read_text())}
    raise AssertionError(f"no run reads {params_file}")


@pytest.mark.parametrize("profile", PROFILES)
def test_every_run_of_the_batch_appears_in_order(plans, profile):
    rows, doc = plans[profile]
    assert doc["profile"] == profile
    assert [(r["notebook"], r["run"], r["action"]) for r in doc["runs"]] == [
        (row["stem"], row["run_name"], row["action"]) for row in rows
    ]
    for run in doc["runs"]:
        assert set(run) == RUN_KEYS
        for c in run["configs"]:
            assert set(c) == CONFIG_KEYS
        shown = [json.dumps(c, sort_keys=True) for c in run["configs"]]
        assert len(shown) == len(set(shown)), f"{run['run']}: a config listed twice"


@pytest.mark.parametrize("profile", PROFILES)
def test_defenses_attacks_and_norms(plans, profile):
    _, doc = plans[profile]
    catalog = set(WEMEM_DEFENSES) | set(BASELINES)
    for run in doc["runs"]:
        paper = run["paper_mean_attacks"]
        assert set(paper) <= set(run["attacks"]) and set(paper) <= set(names.PAPER_ATTACKS)
        assert paper == [a for a in names.PAPER_ATTACKS if a in paper]  # PAPER_ATTACKS' order
        for c in run["configs"]:
            assert c["defense"] in names.DEFENSES and c["defense"] in catalog
            assert isinstance(c["setting"], str) and c["setting"]
            assert c["norm"] == "none" if run["arch"] == "fc" else c["norm"] in ("batch", "group")


def test_every_paper_tau_has_its_rule(plans):
    taus = [(r, c) for r, c in _configs(plans["paper"][1]) if "tau" in c["settings"]]
    assert taus
    for run, c in taus:
        rule = c["tau_rule"]
        assert rule is not None, f"{run['run']} {c['setting']}: τ without a rule"
        if rule["kind"] == "quantile":
            assert c["settings"]["tau"] is None and 0 < rule["share"] < 1
        else:
            assert rule["kind"] == "raw" and c["settings"]["tau"] == rule["value"]
    assert all(
        c["tau_rule"] is None for _, c in _configs(plans["paper"][1]) if "tau" not in c["settings"]
    )


def test_rsw_widths_and_steps_are_the_params_files(plans):
    run, params = _run(plans, "paper", "03_defense_rsw.cifar10_resnet18.yaml")
    rsw = [c for c in run["configs"] if c["defense"].startswith("rsw_")]
    settings = [c["settings"] for c in rsw]
    assert {s["width"] for s in settings} == set(params["widths"])
    assert {s["step"] for s in settings} == set(params["steps"])
    assert {s["order"] for s in settings} == set(params["orders"])
    grid = [c["settings"] for c in rsw if "per-class" not in c["setting"]]  # not the beside-row
    assert len(grid) == len(params["widths"]) * len(params["steps"]) * len(params["orders"])
    assert {s["window_mode"] for s in grid} == {params.get("window_mode", "per_class")}


def test_baselines_resolve_their_settings(plans):
    run, params = _run(plans, "paper", "06_baselines.cifar10_resnet18.yaml")
    by = {}
    for c in run["configs"]:
        by.setdefault(c["defense"], []).append(c["settings"])
    assert set(params["betas"]) <= {s["beta"] for s in by["ppb"]}
    assert set(params["alphas"]) <= {s["alpha"] for s in by["relaxloss"]}
    assert set(params["thetas"]) <= {s["theta"] for s in by["adv"]}
    assert all({"k_attack", "attack_every", "adv_mode"} <= set(s) for s in by["adv"])
    assert all(
        {"delta", "dp_passes_per_epoch", "sigma", "max_grad_norm"} <= set(s) for s in by["dp"]
    )
    assert all(isinstance(s["beta"], float) for s in by["ppb"])
    norm = params.get("norm", "batch")  # DP-SGD trains GroupNorm twins of BatchNorm models
    assert {c["norm"] for c in run["configs"] if c["defense"] != "dp"} == {norm}
    assert {c["norm"] for c in run["configs"] if c["defense"] == "dp"} == {"group"}


def test_rmr_and_swmr_tau_follow_the_params_files(plans):
    run, params = _run(plans, "paper", "04_defense_rmr.cifar10_resnet18.yaml")
    rmr = [c for c in run["configs"] if c["defense"] == "rmr"]
    assert {c["settings"]["lambda_r"] for c in rmr} == set(params["lambdas"])
    if params.get("tau") is not None:
        assert all(c["tau_rule"] == {"kind": "raw", "value": params["tau"]} for c in rmr)
    run, params = _run(plans, "paper", "05_defense_swmr.cifar10_resnet18.yaml")
    share = params.get("tau_share", params.get("tau_fraction"))
    swmr = [c for c in run["configs"] if c["defense"].startswith("swmr_")]
    assert swmr and all(c["tau_rule"] == {"kind": "quantile", "share": share} for c in swmr)
    assert {c["settings"]["lambda_r"] for c in swmr} == {params["lambda_r"]}


def test_tau_and_rule_reads_quantile_and_raw():
    s = validate({"dataset": "synthetic", "arch": "fc"})
    i = len(ramp()) - 17600  # the ramp's τ selecting a share of 0.176
    assert tau_and_rule(s, float(ramp()[i]), 0.176) == (None, {"kind": "quantile", "share": 0.176})
    assert tau_and_rule(s, "<tau quantile 0.1>", None) == (None, {"kind": "quantile", "share": 0.1})
    assert tau_and_rule(s, 0.5, 0.1) == (0.5, {"kind": "raw", "value": 0.5})


def test_plain_makes_plain_json():
    got = plain({"a": np.float32(0.5), "b": (np.int64(3), math.nan), "c": np.bool_(True)})
    assert got == {"a": 0.5, "b": [3, None], "c": True}
    assert type(got["b"][0]) is int and type(got["a"]) is float
    json.dumps(got, allow_nan=False)


def test_dp_on_a_batchnorm_cnn_trains_its_dp_norm_twin():
    s = validate({"dataset": "cifar10", "arch": "resnet18", "norm": "batch"})
    assert config_norm(s, "dp") == s.dp_norm == "group"
    assert config_norm(s, "rsw_l2h") == "batch"
    assert config_norm(validate({"dataset": "synthetic", "arch": "fc"}), "dp") == "none"
