import pytest

from wemem import params
from wemem.errors import ParamsError


def test_defaults_are_the_cpu_profile():
    s = params.Settings()
    assert s.profile == "cpu" and s.dataset == "synthetic" and s.arch == "fc"
    assert s.pruning_rate == 0.6 and s.pruning_rounds == 5 and s.finetune_epochs == 21


def test_validate_coerces_and_freezes():
    s = params.validate({"pruning_rate": 0.5, "seeds": [1, 2], "lr": 1})
    assert s.pruning_rate == 0.5 and s.seeds == (1, 2) and isinstance(s.lr, float)
    with pytest.raises(AttributeError):
        s.lr = 0.1  # frozen


@pytest.mark.parametrize(
    "bad, words",
    [
        ({"epochs": 3}, ["unknown parameter 'epochs'", "max_epochs"]),
        ({"dataset": "mnist"}, ["'dataset'", "'mnist'", "cifar10", "synthetic"]),
        ({"pruning_rate": 1.5}, ["'pruning_rate'", "1.5", "(0.0, 1.0)"]),
        ({"arch": 3}, ["'arch'", "expected a string"]),
        ({"n_shadows": 0}, ["'n_shadows'", "range"]),
        ({"seeds": []}, ["'seeds'", "non-empty list"]),
        ({"stem_maxpool": "yes"}, ["'stem_maxpool'", "true or false"]),
        ({"batch_size": 12.5}, ["'batch_size'", "integer"]),
        ({"member_fraction": 0.0}, ["'member_fraction'", "(0.0"]),
    ],
)
def test_bad_values_name_the_field_and_allowed(bad, words):
    with pytest.raises(ParamsError) as e:
        params.validate(bad)
    for w in words:
        assert w in str(e.value)


@pytest.mark.parametrize("rate", [0, 0.0, 1, 1.0, -0.1])
def test_pruning_rate_is_in_the_open_interval(rate):
    """0 prunes nothing and 1 removes every weight: both are refused before anything trains."""
    with pytest.raises(ParamsError) as e:
        params.validate({"pruning_rate": rate})
    assert str(e.value) == (
        f"parameter 'pruning_rate' = {float(rate)!r}: allowed range is (0.0, 1.0)"
    )


@pytest.mark.parametrize("rate", [0.5, 1e-6, 0.999])
def test_pruning_rate_inside_the_interval_is_accepted(rate):
    assert params.validate({"pruning_rate": rate}).pruning_rate == rate


@pytest.mark.parametrize(
    "key, interval",
    [
        ("pruning_rate", "(0.0, 1.0)"),
        ("lr", "(0.0, 10.0]"),
        ("weight_decay", "[0.0, 10.0]"),
        ("label_noise", "[0.0, 0.99]"),
        ("member_fraction", "(0.0, 1.0]"),
        ("width", "(0.0, 16.0]"),
        ("memscore_ratio", "(0.0, 0.99]"),
    ],
)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinity_are_refused_in_every_range(key, interval, value):
    with pytest.raises(ParamsError) as e:
        params.validate({key: value})
    assert str(e.value) == (f"parameter '{key}' = {value!r}: must be a finite number in {interval}")


def test_infinity_in_an_integer_field_is_not_an_integer():
    with pytest.raises(ParamsError, match="'max_epochs' = inf: expected an integer"):
        params.validate({"max_epochs": float("inf")})


def test_every_float_field_has_a_range():
    """The finite check lives in the range check: a float field without a range would take NaN."""
    floats = [k for k, t in params._TYPES.items() if t is float]
    assert floats and all("range" in params.FIELDS[k].metadata for k in floats)


def test_settings_from_namespace_ignores_other_names():
    ns = {"dataset": "digits", "arch": "resnet18", "In": [], "plt": object(), "profile": "tiny"}
    s = params.settings_from(ns)
    assert s.dataset == "digits" and s.arch == "resnet18" and s.profile == "tiny"


def test_load_params_file_rejects_non_mapping(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ParamsError, match="mapping"):
        params.load_params_file(p)


def test_settings_table_lists_every_field():
    t = params.settings_table(params.Settings())
    assert set(t.index) == set(params.FIELDS)


def test_cinic10_densenet121_dense_training_is_at_most_50_epochs():
    """Spec §4.1, §10: CINIC-DenseNet121 trains its dense models for at most 50 epochs (the
    file's value, else its notebook's default, where the notebook trains dense models)."""
    from pathlib import Path

    from wemem.planning.workload import notebook_defaults

    files = sorted((Path(__file__).resolve().parents[1] / "params" / "paper").glob("*.yaml"))
    checked = 0
    for path in files:
        data = params.load_params_file(path)
        if (data.get("dataset"), data.get("arch")) != ("cinic10", "densenet121"):
            continue
        merged = {**notebook_defaults(path.name.split(".")[0]), **data}
        if "max_epochs" in merged:
            assert merged["max_epochs"] <= 50, f"{path.name}: max_epochs = {merged['max_epochs']}"
            checked += 1
    assert checked >= 5
