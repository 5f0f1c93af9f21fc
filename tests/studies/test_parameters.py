"""Every notebook parameter outside Settings has one rule (wemem.studies.parameters): the notebooks'
defaults and every params file pass, bad values fail with one line naming the parameter, and a new
parameter without a rule fails here. Nothing trains or loads data."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
import yaml

from wemem.batch.parameters_cell import read_parameters_cell
from wemem.errors import ParamsError
from wemem.params import FIELDS, Settings
from wemem.studies.parameters import CROSS, RULES, check_notebook_params, check_value

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PARAMS_FILES = sorted(
    p for profile in ("tiny", "cpu", "paper") for p in (ROOT / "params" / profile).glob("*.yaml")
)


@cache
def defaults(stem: str) -> dict:
    cell = read_parameters_cell(ROOT / "notebooks" / f"{stem}.ipynb")
    assert cell is not None, stem
    return dict(cell.defaults)


def _declared() -> dict[str, set[str]]:
    """Every name a notebook's parameters cell declares outside FIELDS → the notebooks."""
    out: dict[str, set[str]] = {}
    for nb in NOTEBOOKS:
        for name in read_parameters_cell(nb).names - set(FIELDS):
            out.setdefault(name, set()).add(nb.stem)
    return out


def test_there_are_notebooks_and_params_files():
    assert len(NOTEBOOKS) >= 13 and len(PARAMS_FILES) >= 100


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebooks_defaults_pass(notebook):
    check_notebook_params(notebook.stem, defaults(notebook.stem))


@pytest.mark.parametrize("path", PARAMS_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_params_file_passes_over_its_notebooks_defaults(path):
    stem = path.name.split(".")[0]
    overrides = yaml.safe_load(path.read_text(encoding="utf-8"))
    check_notebook_params(stem, {**defaults(stem), **overrides})


def test_every_declared_parameter_has_a_rule_and_every_rule_a_notebook():
    declared = _declared()
    assert len(declared) >= 35
    missing = sorted(set(declared) - set(RULES))
    assert not missing, f"parameters without a rule in wemem.studies.parameters.RULES: {missing}"
    stale = sorted(set(RULES) - set(declared))
    assert not stale, f"rules for parameters no notebook declares: {stale}"


def test_cross_rules_name_real_notebooks_and_parameters():
    stems = {nb.stem for nb in NOTEBOOKS}
    declared = _declared()
    for stem, rules in CROSS.items():
        assert stem in stems, stem
        for rule in rules:
            for name in rule.needs:
                assert stem in declared.get(name, set()), (stem, name)


#: (notebook, overrides, the parameter the message must name): each a value the notebook's code
#: would crash on, silently ignore, or turn into a vacuous table.
BAD = [
    ("01_memorization_scores", {"kfold_models": 1}, "kfold_models"),
    ("01_memorization_scores", {"kfold_models": True}, "kfold_models"),
    ("01_memorization_scores", {"convergence_ks": []}, "convergence_ks"),
    ("01_memorization_scores", {"convergence_ks": [2, 64]}, "convergence_ks"),
    ("01_memorization_scores", {"convergence_ks": [4, 4]}, "convergence_ks"),
    ("01_memorization_scores", {"convergence_ks": [1, 2]}, "convergence_ks"),
    ("02_motivation", {"reuse_epochs": [7]}, "reuse_epochs"),
    ("02_motivation", {"reuse_epochs": [0, 7]}, "reuse_epochs"),
    ("02_motivation", {"reuse_epochs": "1, 7"}, "reuse_epochs"),
    ("03_defense_rsw", {"attacks": []}, "attacks"),
    ("03_defense_rsw", {"attacks": ["conf", "bogus"]}, "attacks"),
    ("03_defense_rsw", {"attacks": ["conf", "conf"]}, "attacks"),
    ("03_defense_rsw", {"attacks": ["hconf", "lira"]}, "attacks"),
    ("03_defense_rsw", {"attack_epochs": 0}, "attack_epochs"),
    ("03_defense_rsw", {"attack_epochs": 2.5}, "attack_epochs"),
    ("03_defense_rsw", {"attack_train_max": 0}, "attack_train_max"),
    ("03_defense_rsw", {"orders": ["H2L", "random"]}, "orders"),
    ("03_defense_rsw", {"orders": []}, "orders"),
    ("03_defense_rsw", {"widths": [300, 100], "steps": []}, "steps"),
    ("03_defense_rsw", {"widths": [], "steps": [5]}, "widths"),
    ("03_defense_rsw", {"widths": [0], "steps": [5]}, "widths"),
    ("03_defense_rsw", {"widths": [300, 300], "steps": [5]}, "widths"),
    ("03_defense_rsw", {"window_mode": "global"}, "window_mode"),
    ("04_defense_rmr", {"lambdas": []}, "lambdas"),
    ("04_defense_rmr", {"lambdas": [0.0, 0.1]}, "lambdas"),
    ("04_defense_rmr", {"lambdas": [0.1, 0.1]}, "lambdas"),
    ("04_defense_rmr", {"tau_share": 0.0}, "tau_share"),
    ("04_defense_rmr", {"tau_share": 1.0}, "tau_share"),
    ("04_defense_rmr", {"tau_share": float("nan")}, "tau_share"),
    ("05_defense_swmr", {"lambda_r": -0.1}, "lambda_r"),
    ("05_defense_swmr", {"lambda_r": float("inf")}, "lambda_r"),
    ("06_baselines", {"betas": [-1.0]}, "betas"),
    ("06_baselines", {"alphas": [0.0]}, "alphas"),
    ("06_baselines", {"thetas": []}, "thetas"),
    ("06_baselines", {"rsw_window": [500]}, "rsw_window"),
    ("06_baselines", {"swmr_window": [500, 0]}, "swmr_window"),
    ("06_baselines", {"rsw_window": [True, 1]}, "rsw_window"),
    ("06_baselines", {"adv_modes": ["official", "madry"]}, "adv_modes"),
    ("06_baselines", {"adv_modes": []}, "adv_modes"),
    ("06_baselines", {"adv_attack_every": 0}, "adv_attack_every"),
    ("06_baselines", {"dp_passes_per_epoch": [0.0]}, "dp_passes_per_epoch"),
    ("07_dpsgd_opacus", {"sigmas": [-1.0]}, "sigmas"),
    ("07_dpsgd_opacus", {"sigmas": [0.1, 0.1]}, "sigmas"),
    ("07_dpsgd_opacus", {"sigmas": [], "target_epsilons": []}, "sigmas"),
    ("07_dpsgd_opacus", {"target_epsilons": [0.0]}, "target_epsilons"),
    ("07_dpsgd_opacus", {"target_epsilons": [float("inf")]}, "target_epsilons"),
    ("08_attacks", {"stages": ["dense", "pruned"]}, "stages"),
    ("08_attacks", {"stages": []}, "stages"),
    ("08_attacks", {"samia_epochs": 0}, "samia_epochs"),
    ("08_attacks", {"leakage_fpr": 0.0}, "leakage_fpr"),
    ("08_attacks", {"leakage_fpr": 1.5}, "leakage_fpr"),
    ("09_pruning_approaches", {"rates": [0.5, 1.0]}, "rates"),
    ("09_pruning_approaches", {"rates": []}, "rates"),
    ("09_pruning_approaches", {"approaches": ["l1_structured", "l3"]}, "approaches"),
    ("09_pruning_approaches", {"approaches": ["l1_structured"]}, "approaches"),
    ("09_pruning_approaches", {"approach_defenses": ["Base", "WeMem"]}, "approach_defenses"),
    ("09_pruning_approaches", {"approach_defenses": []}, "approach_defenses"),
    ("09_pruning_approaches", {"sections": []}, "sections"),
    ("09_pruning_approaches", {"sections": ["one_shot", "fig9"]}, "sections"),
    ("10_time_cost", {"time_repeats": 0}, "time_repeats"),
    ("10_time_cost", {"window_mode": None}, "window_mode"),
    ("11_autotune", {"rungs": [3, 2]}, "rungs"),
    ("11_autotune", {"rungs": [1, 2]}, "rungs"),
    ("11_autotune", {"rungs": [2, 3, 5]}, "rungs"),
    ("11_autotune", {"eta": 1}, "eta"),
    ("11_autotune", {"target_advantage": 1.5}, "target_advantage"),
    ("11_autotune", {"weight": -1.0}, "weight"),
    ("11_autotune", {"tau_shares": []}, "tau_shares"),
    ("11_autotune", {"tau_shares": [0.1, 1.2]}, "tau_shares"),
    ("11_autotune", {"rmr_lambdas": [0.0]}, "rmr_lambdas"),
    ("11_autotune", {"widths": [10], "steps": []}, "steps"),
    ("12_paper_tables", {"outputs_root": ""}, "outputs_root"),
    ("12_paper_tables", {"outputs_root": 3}, "outputs_root"),
]


def test_the_bad_table_covers_many_parameters():
    assert len(BAD) >= 30
    assert len({name for _, _, name in BAD}) >= 30


@pytest.mark.parametrize(
    ("stem", "overrides", "name"), BAD, ids=[f"{s[:2]}-{n}-{i}" for i, (s, _, n) in enumerate(BAD)]
)
def test_a_bad_value_fails_naming_the_parameter_and_its_value(stem, overrides, name):
    with pytest.raises(ParamsError) as info:
        check_notebook_params(stem, {**defaults(stem), **overrides})
    msg = str(info.value)
    assert msg.startswith(f"parameter '{name}' = "), msg
    assert "\n" not in msg
    if name in overrides:
        assert repr(overrides[name]) in msg


def test_the_message_says_what_is_allowed():
    with pytest.raises(ParamsError, match=r"finite numbers >= 0"):
        check_notebook_params("07_dpsgd_opacus", {**defaults("07_dpsgd_opacus"), "sigmas": [-1.0]})
    with pytest.raises(ParamsError, match=r"one of per_class, faithful"):
        check_value("window_mode", "global")


def test_legal_edge_values_pass():
    nb07 = defaults("07_dpsgd_opacus")
    check_notebook_params("07_dpsgd_opacus", {**nb07, "sigmas": [0.0]})  # σ = 0: ε = ∞
    check_notebook_params("07_dpsgd_opacus", {**nb07, "sigmas": []})  # target ε rows only
    check_value("attack_train_max", None)
    check_value("target_advantage", None)
    check_value("betas", [1, 2.5])  # integers are numbers
    check_value("rsw_window", [1, 1])  # a window may repeat a value
    nb09 = defaults("09_pruning_approaches")
    check_notebook_params("09_pruning_approaches", {**nb09, "sections": ["one_shot"], "rates": []})


def test_bools_are_not_integers_and_floats_not_integers():
    for value in (True, 3.0):
        with pytest.raises(ParamsError, match="'time_repeats'"):
            check_value("time_repeats", value)


def test_a_variant_stem_and_unknown_names_are_accepted():
    values = {**defaults("03_defense_rsw"), "something_else": object()}
    check_notebook_params("03_defense_rsw.cifar10_resnet18", values)


def test_cross_rules_read_the_given_settings():
    values = defaults("11_autotune")  # rungs [2, 3]
    check_notebook_params("11_autotune", values, Settings(n_shadows=3))
    with pytest.raises(ParamsError, match=r"'rungs'.*n_shadows = 2"):
        check_notebook_params("11_autotune", values, Settings(n_shadows=2))


def test_a_bad_shared_setting_fails_too_when_no_settings_are_given():
    with pytest.raises(ParamsError, match="'max_epochs'"):
        check_notebook_params("03_defense_rsw", {**defaults("03_defense_rsw"), "max_epochs": 0})


def test_cross_rules_skip_when_their_parameters_are_absent():
    check_notebook_params("07_dpsgd_opacus", {"attacks": ["conf"]})


def test_a_notebook_setup_cell_refuses_a_bad_parameter():
    """What a papermill user meets: the setup cell's ``settings_from`` checks every parameter of
    the notebook, one by one and across each other, before anything trains."""
    from wemem.studies.parameters import settings_from

    ns = {"profile": "cpu", "output_dir": "", "plt": object(), "pruning_rate": 0.5}
    with pytest.raises(ParamsError, match="'sigmas'"):
        settings_from({**ns, "sigmas": [-1.0], "target_epsilons": [8.0]}, "07_dpsgd_opacus")
    with pytest.raises(ParamsError, match="target_epsilons"):
        settings_from({**ns, "sigmas": [], "target_epsilons": []}, "07_dpsgd_opacus")
    with pytest.raises(ParamsError, match="'pruning_rate'"):
        settings_from({**ns, "pruning_rate": 0.0, "sigmas": [1.0]}, "07_dpsgd_opacus")
    settings = settings_from(
        {**ns, "sigmas": [0.0, 1.0], "target_epsilons": [8.0]}, "07_dpsgd_opacus"
    )
    assert settings.pruning_rate == 0.5
