import numpy as np

from wemem.experiment import keys
from wemem.experiment.replicate import Experiment, split_table
from wemem.studies import motivation


def test_victim_and_shadows_are_cached_and_reused(tiny_settings, monkeypatch):
    exp = Experiment(tiny_settings, seed=0)
    m1, summ1, out1 = exp.dense("victim")
    run1 = exp.pruned("victim")

    import wemem.experiment.stages as S

    def boom(*a, **k):
        raise AssertionError("retrained although cached")

    monkeypatch.setattr(S, "fit", boom)
    monkeypatch.setattr(S, "prune_and_finetune", boom)
    exp2 = Experiment(tiny_settings, seed=0)
    m2, summ2, out2 = exp2.dense("victim")
    run2 = exp2.pruned("victim")
    assert summ1 == summ2
    np.testing.assert_array_equal(out1.probs_in, out2.probs_in)
    np.testing.assert_array_equal(run1.final.probs_out, run2.final.probs_out)


def test_outputs_cover_members_and_nonmembers(tiny_settings):
    exp = Experiment(tiny_settings, seed=0)
    _, _, out = exp.dense("shadow0")
    sp = exp.split("shadow0")
    assert out.probs_in.shape == (len(sp.train), exp.pool.num_classes)
    assert out.probs_out.shape == (len(sp.test), exp.pool.num_classes)
    np.testing.assert_allclose(out.probs_in.sum(1), 1.0, atol=1e-5)
    assert out.flipped_in.any()  # label noise reaches the members
    run = exp.pruned("shadow0")
    assert len(run.per_round) == tiny_settings.pruning_rounds
    assert {"seconds", "output_seconds", "checkpoint_seconds"} <= set(run.summary)
    assert exp.pruned_spec("shadow0")["revision"] == keys.PRUNED_REVISION  # what seconds means
    assert abs(run.summary["target_sparsity"] - 0.6) < 1e-9
    assert len(split_table(exp)) == 1 + tiny_settings.n_shadows


def test_pruned_key_depends_on_defense_settings(tiny_settings):
    exp = Experiment(tiny_settings, seed=0)
    a = exp.pruned("victim", one_shot=True)
    b = exp.pruned("victim", one_shot=True, rate=0.5)
    assert a.summary["target_sparsity"] == 0.6 and b.summary["target_sparsity"] == 0.5


def test_motivation_is_deterministic_on_cpu(tiny_settings, tmp_path):
    from dataclasses import replace

    r1 = motivation.run(tiny_settings, progress=False)
    r2 = motivation.run(replace(tiny_settings, cache_dir=str(tmp_path / "other")), progress=False)
    cols = ["balanced_accuracy", "auc", "tpr_at_1fpr"]
    np.testing.assert_array_equal(r1["attacks"][cols].to_numpy(), r2["attacks"][cols].to_numpy())
    np.testing.assert_array_equal(r1["models"].test_acc, r2["models"].test_acc)
    checks = motivation.checks(r1, tiny_settings)
    assert all(checks.values()), checks
    c = motivation.claims(r1["attacks"])
    assert set(c["mean_auc"]) == {"dense", "one-shot", "iterative"}
