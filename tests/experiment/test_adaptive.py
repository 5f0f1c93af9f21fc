import numpy as np
import pytest

from wemem.errors import ParamsError
from wemem.experiment import adaptive
from wemem.experiment.replicate import Experiment
from wemem.studies import attack_report


@pytest.fixture
def exp(tiny_settings):
    from dataclasses import replace

    return Experiment(replace(tiny_settings, n_shadows=2), seed=0)


def test_evaluate_runs_metric_classifier_and_lira_on_cached_models(exp, monkeypatch):
    frames = adaptive.evaluate_stages(
        exp,
        ["dense", "iterative"],
        ["conf", "hconf", "nn", "samia", "lira"],
        attack_epochs=2,
        attack_train_max=200,
    )
    table = attack_report.combined(frames)
    assert len(table) == 10 and set(table.stage) == {"dense", "iterative"}
    assert set(zip(table.stage, table.attack, strict=True)) == {
        (st, a) for st in ("dense", "iterative") for a in ("conf", "hconf", "nn", "samia", "lira")
    }
    checks = attack_report.checks(table, profile="tiny")
    assert checks["auc_finite_metrics_in_unit_interval"] and checks["tpr_rises_with_fpr"]
    v = frames["iterative"].attrs["victim"]
    s_in, s_out = frames["iterative"].attrs["scores"]["nn"]
    assert len(s_in) == len(v.rows_in) and len(s_out) == len(v.rows_out)

    # a second evaluation reuses models and sensitivities from the cache
    import wemem.attacks.sensitivity as S

    monkeypatch.setattr(S, "sensitivity", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
    again = adaptive.evaluate(
        exp, adaptive.stage(exp, "iterative"), ["samia"], attack_epochs=2, attack_train_max=200
    )
    assert again.attack.tolist() == ["samia"]


def test_sensitivity_of_picked_shadow_rows_is_the_whole_computations_there(exp):
    st = adaptive.stage(exp, "dense")
    whole = adaptive.add_sensitivity(exp, st)
    rng = np.random.default_rng(0)
    picks = {r: adaptive._picks(st.outputs[r], 20, rng) for r in st.roles[1:]}
    part = adaptive.add_sensitivity(exp, st, picks=picks)
    np.testing.assert_array_equal(part.victim.sens_in, whole.victim.sens_in)  # all of its rows
    for role, (i_in, i_out) in picks.items():
        got, want = part.outputs[role], whole.outputs[role]
        assert len(got.rows_in) == len(i_in) == 20 and len(got.rows_out) == len(i_out) == 20
        np.testing.assert_array_equal(got.rows_in, want.rows_in[i_in])
        np.testing.assert_array_equal(got.probs_out, want.probs_out[i_out])
        np.testing.assert_allclose(got.sens_in, want.sens_in[i_in], rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(got.sens_out, want.sens_out[i_out], rtol=1e-3, atol=1e-4)


def test_memscore_leakage_bins_every_member(exp):
    frames = adaptive.evaluate_stages(exp, ["iterative"], ["conf", "lira"])
    rng = np.random.default_rng(0)
    scores = rng.random(exp.pool.n_train)
    leak = adaptive.memscore_leakage(frames["iterative"], scores, fpr=0.1, bins=4)
    assert set(leak.attack) == {"conf", "lira"}
    n_members = len(frames["iterative"].attrs["victim"].rows_in)
    assert leak[leak.attack == "conf"].n.sum() == n_members
    assert leak[leak.attack == "lira"].member_accuracy.isna().all()


def test_unknown_stage_is_a_params_error(exp):
    with pytest.raises(ParamsError, match="stage"):
        adaptive.stage(exp, "half-pruned")
