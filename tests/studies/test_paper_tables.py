"""Paper values from the YAML data file, and the paper-vs-reproduced tables on fabricated runs."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from wemem.studies import paper_tables as pt
from wemem.studies import paper_values

# The values wemem/paper_values.py held as literals before they moved to paper_values.yaml.
OLD_T_RMR = [
    ("cifar10", "densenet121", "base", 80.01, [63.91, 62.05, 63.96, 64.33, 78.10, 75.85, 76.08, 78.44]),
    ("cifar10", "densenet121", "0.01", 78.96, [60.69, 58.43, 60.67, 60.78, 76.19, 73.50, 73.41, 76.22]),
    ("cifar10", "densenet121", "0.1", 77.81, [54.60, 53.06, 54.78, 54.84, 73.07, 72.89, 73.17, 73.13]),
    ("cifar10", "densenet121", "1", 69.83, [52.14, 50.97, 51.99, 51.93, 72.79, 73.27, 72.04, 73.03]),
    ("cifar100", "densenet121", "base", 42.44, [91.91, 91.02, 92.10, 92.09, 94.39, 93.98, 94.84, 94.36]),
    ("cifar100", "densenet121", "0.01", 41.03, [90.03, 88.68, 90.18, 90.24, 93.17, 92.78, 93.02, None]),
    ("cifar100", "densenet121", "0.1", 37.46, [60.12, 54.69, 60.07, 59.93, 73.30, 73.29, 72.45, 72.91]),
    ("cifar100", "densenet121", "1", 10.13, [50.88, 50.07, 50.88, 51.21, 71.32, 72.05, 71.67, 72.37]),
]  # fmt: skip
OLD_T_TIME = {
    ("cifar10", "vgg16bn"): {"base": 630, "rsw": 269, "rmr": 468, "swmr": 332, "ppb": 571, "adv": 275, "relaxloss": 434, "dp": 7 * 3600},
    ("cifar100", "resnet18"): {"base": 458, "rsw": 174, "rmr": 611, "swmr": 259, "ppb": 643, "adv": 226, "relaxloss": 532, "dp": 9 * 3600},
    ("cinic10", "densenet121"): {"base": 1616, "rsw": 463, "rmr": 2404, "swmr": 1498, "ppb": 1759, "adv": 495, "relaxloss": 1696, "dp": 50 * 3600},
    ("location30", "fc"): {"base": 93, "rsw": 68, "rmr": 98, "swmr": 95, "ppb": 99, "adv": 195, "relaxloss": 88, "dp": 231},
}  # fmt: skip


def test_yaml_values_equal_the_old_module():
    assert paper_values.T_RMR == OLD_T_RMR
    assert paper_values.T_TIME == OLD_T_TIME
    base = paper_values.base_attack_accuracy("cifar10", "densenet121")
    assert base["conf"] == pytest.approx(0.6391) and len(base) == 8
    assert paper_values.base_attack_accuracy("synthetic", "fc") is None
    t = paper_values.time_table()
    row = t[(t.dataset == "location30") & (t.defense == "adv")].iloc[0]
    assert row.paper_seconds == 195 and row.paper_ratio == pytest.approx(195 / 93)
    assert len(paper_values.rmr_table()) == 64


def test_every_block_names_its_source():
    data = paper_values.load()
    for key in ("t_setup", "t_settings", "t_rmr", "t_time"):
        assert "slides" in data[key]["source"], key
    assert all(c["source"] and c["tested_by"] for c in data["claims"])
    assert list(paper_values.settings_table().tau) == [0.5, 0.6, 0.7, 0.65, 0.6, 0.6, 0.75]


def test_slide_times_parse_with_their_unit():
    assert paper_values._seconds("7h") == 7 * 3600
    assert paper_values._seconds("630s") == 630
    with pytest.raises(ValueError, match="no unit"):
        paper_values._seconds("630")


def _write(root, stem, run, metrics, files=()):
    folder = root / stem / run
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    for f in files:
        (folder / f).parent.mkdir(parents=True, exist_ok=True)
        (folder / f).write_text("x")


RMR = {
    "settings": {"dataset": "cifar10", "arch": "densenet121", "attacks": ["conf", "nn"]},
    "settings_results": [
        {"method": "Base", "lambda_r": None, "test_acc": 0.80, "attack": 0.70},
        {"method": "RMR", "lambda_r": 0.1, "test_acc": 0.75, "attack": 0.60},
    ],
}


def test_collect_keeps_the_profile_and_reports_missing_notebooks(tmp_path):
    _write(tmp_path, "04_defense_rmr", "cpu", RMR)
    _write(tmp_path, "04_defense_rmr", "cpu-interactive", RMR)
    _write(tmp_path, "04_defense_rmr", "tiny", RMR)
    _write(tmp_path, "10_time_cost", "cpu-variant", {})
    runs = pt.collect(tmp_path, "cpu")
    assert set(runs) == set(pt.NOTEBOOKS) and len(pt.NOTEBOOKS) == 12
    assert list(runs["04_defense_rmr"]) == ["cpu"] and list(runs["10_time_cost"]) == ["cpu-variant"]
    assert runs["02_motivation"] == {}
    table = pt.runs_table(runs, "cpu")
    assert (table.set_index("notebook").status["02_motivation"]) == "not run"
    assert pt.collect(tmp_path / "nothing", "cpu") == {s: {} for s in pt.NOTEBOOKS}


def test_delta_is_reproduced_minus_paper(tmp_path):
    _write(tmp_path, "04_defense_rmr", "cpu", RMR)
    table = pt.paper_vs_reproduced(pt.collect(tmp_path, "cpu"), "cpu")
    rmr = table[
        (table.artefact == "T-RMR") & (table["paper data & model"] == "cifar10/densenet121")
    ]
    rows = rmr.set_index(["quantity", "setting"])
    base_attack = rows.loc[("mean attack accuracy", "Base")]
    assert base_attack.paper == pytest.approx((63.91 + 75.85) / 2 / 100)  # the run's attacks only
    assert base_attack.delta == pytest.approx(0.70 - (63.91 + 75.85) / 200)
    assert base_attack.notes == "same data & model as the paper"
    acc = rows.loc[("test accuracy − Base", "λr=0.1")]
    assert acc.paper == pytest.approx(-0.022) and acc.reproduced == pytest.approx(-0.05)
    assert acc.delta == pytest.approx(-0.028)
    assert pd.isna(rows.loc[("test accuracy", "λr=0.01")].reproduced)  # the run has no λr=0.01
    other = table[
        (table.artefact == "T-RMR") & (table["paper data & model"] != "cifar10/densenet121")
    ]
    assert other.notes.str.startswith("different data & model").all()


def test_time_ratios_and_not_run_rows(tmp_path):
    costs = [
        {"defense": "base", "ratio_to_base": 1.0},
        {"defense": "rsw_l2h", "ratio_to_base": 0.5},
    ]
    metrics = {"settings": {"dataset": "synthetic", "arch": "fc"}, "time_cost": costs}
    _write(tmp_path, "10_time_cost", "cpu", metrics)
    table = pt.paper_vs_reproduced(pt.collect(tmp_path, "cpu"), "cpu")
    t = table[table.artefact == "T-time"].set_index(["paper data & model", "setting"])
    row = t.loc[("cifar10/vgg16bn", "RSW(L→H)")]
    assert row.paper == pytest.approx(269 / 630) and row.delta == pytest.approx(0.5 - 269 / 630)
    assert pd.isna(t.loc[("cifar10/vgg16bn", "DP")].delta)  # no DP run: no delta
    rmr = table[table.artefact == "T-RMR"]
    assert rmr.run.isna().all() and rmr.reproduced.isna().all() and (rmr.notes == "not run").all()


def test_paper_profile_compares_only_the_same_data_and_model(tmp_path):
    _write(tmp_path, "04_defense_rmr", "paper-cifar10_densenet121", RMR)
    table = pt.paper_vs_reproduced(pt.collect(tmp_path, "paper"), "paper")
    rmr = table[table.artefact == "T-RMR"].set_index("paper data & model")
    assert (rmr.loc["cifar10/densenet121"].run == "04_defense_rmr/paper-cifar10_densenet121").all()
    assert (rmr.loc["cifar100/densenet121"].notes == "no run on cifar100/densenet121").all()


CLAIMS_03 = {
    "claims": {"smaller_width_lowers_test_acc": True, "extra": False},
    "checks": {"every_window_ran": True},
    "settings": {"stem_maxpool": True},
}


def test_claims_summary_statuses(tmp_path):
    _write(tmp_path, "03_defense_rsw", "cpu", CLAIMS_03)
    slower = {"status": "does not hold", "difference": -1.0, "resolution": 0.1}
    slower |= {"direction": "greater"}
    _write(tmp_path, "10_time_cost", "cpu", {"claims": {"rsw_faster_than_base": slower}})
    claims = pt.claims_summary(pt.collect(tmp_path, "cpu"), "cpu")
    status = claims.set_index(["notebook", "key"]).status
    assert status["03_defense_rsw", "claims.smaller_width_lowers_test_acc"] == "holds"
    assert status["10_time_cost", "claims.rsw_faster_than_base"] == "does not hold"
    missing = status["03_defense_rsw", "claims.lowest_attack_is_small_width_small_step"]
    assert missing == "not in metrics"
    assert status["05_defense_swmr", "claims.smaller_width_lowers_test_acc"] == "not run"
    own = claims[claims.source == "this project (03_defense_rsw)"]
    assert list(own.key) == ["claims.extra"] and list(own.status) == ["does not hold"]
    verdict = pt.by_statement(claims).set_index("claim").verdict
    assert verdict["narrow_window_costs_accuracy"] == "holds"  # 05 not run, 03 holds
    assert verdict["window_is_faster"] == "does not hold"
    assert verdict["data_reuse"] == "not run"


def test_variant_without_the_claim_is_skipped_when_another_run_has_it(tmp_path):
    _write(tmp_path, "03_defense_rsw", "cpu", CLAIMS_03)
    _write(tmp_path, "03_defense_rsw", "cpu-other", {"claims": {}})
    claims = pt.claims_summary(pt.collect(tmp_path, "cpu"), "cpu")
    rows = claims[
        (claims.key == "claims.smaller_width_lowers_test_acc")
        & (claims.notebook == "03_defense_rsw")
    ]
    assert list(rows.run) == ["cpu"]  # not a "not in metrics" row for cpu-other


def test_nothing_run_is_reported_not_raised(tmp_path):
    runs = pt.collect(tmp_path, "tiny")
    table, claims = pt.paper_vs_reproduced(runs, "tiny"), pt.claims_summary(runs, "tiny")
    assert table.reproduced.isna().all() and table.delta.isna().all()
    assert set(claims.status) == {"not run"}
    assert all(pt.checks(runs).values())
    metrics = {
        "settings": {"profile": "tiny"},
        "runs": pt.runs_table(runs, "tiny").to_dict("records"),
        "counts": pt.counts(table, claims),
        "statements": pt.by_statement(claims).to_dict("records"),
    }
    text = pt.summary_text(metrics)
    assert "runs found for 0 of 12 notebooks" in text and f"not run: {len(claims)}." in text
    artefacts = pt.artefact_map(runs, tmp_path, "tiny")
    assert set(artefacts.status) == {"not run"}


def test_artefact_map_says_which_files_were_written(tmp_path):
    _write(tmp_path, "10_time_cost", "cpu", {}, files=["tables/time_cost.csv"])
    a = pt.artefact_map(pt.collect(tmp_path, "cpu"), tmp_path, "cpu").set_index("file").status
    assert a["tables/time_cost.csv"] == "written" and a["figures/time_cost.png"] == "missing"


def test_outputs_root_is_the_batch_root_under_the_runner(tmp_path):
    inside = tmp_path / "out" / "12_paper_tables" / ".tmp-tiny-123"
    assert pt.locate_outputs_root("../outputs", inside) == (tmp_path / "out").resolve()
    assert pt.locate_outputs_root("../outputs", tmp_path / "elsewhere") == pt.Path("../outputs")
    assert pt.locate_outputs_root("../outputs", "") == pt.Path("../outputs")


def _decided(status, d, r):
    return {
        "status": status,
        "difference": d,
        "resolution": r,
        "direction": "greater",
        "noise": "x",
    }


def test_decided_claims_keep_their_three_valued_status_and_figures(tmp_path):
    claims_02 = {
        "iterative_gt_dense": _decided("unresolved", 0.01, 0.02),
        "iterative_gt_one_shot": _decided("holds", 0.05, 0.02),
    }
    scen = {
        "reuse_increases_leakage": _decided("unresolved", 0.0, 0.1),
        "gap_grows_with_pruning": _decided("unresolved", 0.0, 0.1),
        "high_mem_leaks_more": _decided("does not hold", -0.3, 0.1),
        "nested": {"extra": _decided("holds", 0.2, 0.1)},
    }
    checks = {"a": True, "b": "not applicable (tiny profile)"}
    _write(
        tmp_path, "02_motivation", "cpu", {"claims": claims_02, "scenarios": scen, "checks": checks}
    )
    runs = pt.collect(tmp_path, "cpu")
    claims = pt.claims_summary(runs, "cpu").set_index(["notebook", "key"])
    row = claims.loc[("02_motivation", "claims.iterative_gt_dense")]
    assert row.status == "unresolved" and row.value == 0.01 and row.resolution == 0.02
    assert row.noise == "x"
    extra = claims.loc[("02_motivation", "scenarios.nested.extra")]
    assert extra.status == "holds" and extra.source == "this project (02_motivation)"
    assert not claims.index.get_level_values("key").str.contains("extra.status").any()
    verdict = pt.by_statement(claims.reset_index()).set_index("claim")
    assert verdict.verdict["iterative_leaks_more"] == "mixed"  # unresolved + holds (+ 09 not run)
    assert verdict.verdict["data_reuse"] == "unresolved"
    assert verdict.verdict["inherent_memorability"] == "does not hold"
    assert verdict.loc["data_reuse", "unresolved"] == 2
    table = pt.runs_table(runs, "cpu").set_index("notebook")
    assert table.loc["02_motivation", "checks passed"] == "1/1 (1 n/a)"
    assert pt.checks(runs) == {"every_claim_key_found": True, "every_run_passed_its_checks": True}


def test_checks_fail_on_a_missing_claim_key_and_a_failed_run_check(tmp_path):
    _write(tmp_path, "02_motivation", "cpu", {"claims": {}, "checks": {"a": False}})
    runs = pt.collect(tmp_path, "cpu")
    missing = pt.claim_keys(runs)
    assert ("02_motivation", "cpu", "claims.iterative_gt_dense") in missing
    assert pt.checks(runs) == {"every_claim_key_found": False, "every_run_passed_its_checks": False}


def test_settings_of_a_variant_only_profile_and_the_unreproduced_numbers(tmp_path):
    # the paper profile has no plain run of 02/04/08/09: its settings rows read a variant's
    _write(tmp_path, "02_motivation", "paper-texas100_fc", {"settings": {"pruning_rate": 0.6}})
    _write(tmp_path, "04_defense_rmr", "paper-cifar10_densenet121", RMR)
    runs = pt.collect(tmp_path, "paper")
    table = pt.paper_vs_reproduced(runs, "paper")
    rate = table[table.quantity == "main pruning rate"].iloc[0]
    assert rate.reproduced == 0.6 and rate.run == "02_motivation/paper-texas100_fc"
    assert rate.notes == pt.SETTING
    missing = pt.unreproduced(table)
    assert set(missing.columns) >= {"artefact", "quantity", "run", "why"}
    why = missing.set_index(["quantity", "setting", "paper data & model"]).why
    assert why[("pruning iterations", "", "all")] == "the run has no value for it"
    assert why[("test accuracy", "λr=0.01", "cifar10/densenet121")] == "the run has no value for it"
    assert (
        why[("test accuracy", "Base", "cifar100/densenet121")] == "no run on cifar100/densenet121"
    )
    assert (missing.why == "not run").any()  # 08, 09, 10 did not run
    assert not pt.checks(runs, table)["every_covered_paper_number_reproduced"]
    # every covered number present: the check holds, whatever did not run
    covered = table.notes.isin([pt.SAME, pt.SETTING])
    full = table.assign(reproduced=table.reproduced.where(~covered, 0.5))
    assert pt.checks(runs, full)["every_covered_paper_number_reproduced"]
    assert pt.counts(full, pt.claims_summary(runs, "paper"))["unreproduced"] == len(
        pt.unreproduced(full)
    )
