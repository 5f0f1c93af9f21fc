"""Online LiRA's reference models: keep matrix, splits, seeds and keys, cached training through the
executor's requests, and the online/offline scores (planted signal and a tiny trained run)."""

from __future__ import annotations

from dataclasses import replace
from statistics import NormalDist

import numpy as np
import pytest

import wemem.experiment.stages as S
from wemem import params
from wemem.attacks.lira import lira_offline, lira_online
from wemem.attacks.metrics import roc_auc
from wemem.data import reference_keep
from wemem.errors import ParamsError
from wemem.experiment import keys, references
from wemem.experiment.adaptive import stage
from wemem.experiment.executor import Request
from wemem.experiment.replicate import Experiment
from wemem.io import digest
from wemem.training import dropout, fastpath

_cdf = NormalDist().cdf
RSW = {"width": 20, "step": 5}  # a WeMem defense at tiny scale (tests/experiment/test_resume.py)


@pytest.fixture(scope="module")
def settings(tmp_path_factory, tiny_values) -> params.Settings:
    """The tiny setting with its own module-wide cache and cheap mem-scores (for RSW)."""
    cache = tmp_path_factory.mktemp("refs")
    s = {**tiny_values, "cache_dir": str(cache), "memscore_models": 4, "memscore_epochs": 2}
    return params.validate(s)


@pytest.fixture(scope="module")
def base_refs(settings):
    """The experiment and its 4 references pruned iteratively with Base (trained once)."""
    exp = Experiment(settings, seed=0)
    return exp, references.reference_stage(exp, n_refs=4)


# ---- keep matrix and roles -------------------------------------------------------------------
def test_keep_matrix_is_balanced_and_deterministic():
    keep = reference_keep(1001, 8, seed=5)
    assert keep.shape == (8, 1001) and keep.dtype == bool
    assert (keep.sum(axis=0) == 4).all()  # every row IN for exactly K/2 references
    assert abs(keep.sum(axis=1).mean() - 500.5) < 1e-9 and (keep.sum(axis=1) > 400).all()
    np.testing.assert_array_equal(keep, reference_keep(1001, 8, seed=5))
    assert (keep != reference_keep(1001, 8, seed=6)).any()
    assert (reference_keep(10, 2, seed=0).sum(axis=0) == 1).all()


@pytest.mark.parametrize("n_refs", [0, 1, 3, 7, -2, 4.0, True])
def test_keep_matrix_refuses_odd_or_small_n_refs(n_refs):
    with pytest.raises(ParamsError, match="n_refs"):
        reference_keep(100, n_refs, seed=0)


def test_reference_roles_parse_back_and_bad_strings_are_refused():
    assert keys.parse_reference_role(keys.reference_role(3, 8)) == (3, 8)
    assert keys.parse_reference_role("ref0of2") == (0, 2)
    for bad in ["ref8of8", "ref-1of4", "ref1of", "ref01of4", "ref1of04", "refaofb", "ref", "x"]:
        with pytest.raises(ValueError, match="reference role"):
            keys.parse_reference_role(bad)


# ---- splits ----------------------------------------------------------------------------------
def test_reference_splits_partition_p_and_victim_shadow_splits_are_unchanged(settings):
    exp = Experiment(replace(settings, n_shadows=2), seed=1)
    n_train, p_rows = exp.pool.n_train, np.arange(exp.pool.n_train)
    # regression: the §5.2 splits of this setting, as before references existed
    assert exp.splits.digest == "8d6ea2ecf0af7d9e6810285aa9f108256fb4e977476431f1ea9b1b1024b6e93c"
    assert (
        exp.split("victim") is exp.splits.victim and exp.split("shadow1") is exp.splits.shadows[1]
    )
    roles = references.reference_roles(exp, 4)
    assert roles == ["ref0of4", "ref1of4", "ref2of4", "ref3of4"]
    assert exp.roles == ["victim", "shadow0", "shadow1"]  # references are no loop's roles
    keep = exp.reference_keep(4)
    victim_dev = exp.split("victim").dev
    for k, role in enumerate(roles):
        sp = exp.split(role)
        np.testing.assert_array_equal(sp.train, np.flatnonzero(keep[k]))
        assert np.intersect1d(sp.train, sp.test).size == 0
        np.testing.assert_array_equal(np.sort(np.concatenate([sp.train, sp.test])), p_rows)
        assert (sp.dev >= n_train).all() and set(sp.dev) == set(victim_dev[victim_dev >= n_train])
        assert sp.seed == keys.keep_seed(settings.split_seed, 1)
    assert exp.split("ref0of4").dev.size > 0
    # the keep matrix is the replicate's: another replicate seed draws another one
    assert (Experiment(settings, seed=2).reference_keep(4) != exp.reference_keep(4)).any()
    with pytest.raises(ParamsError, match="n_refs"):
        exp.split("ref1of3")
    with pytest.raises(ValueError, match="reference role"):
        exp.split("ref4of4")


# ---- seeds and cache keys --------------------------------------------------------------------
def test_reference_seeds_never_collide_with_victim_or_shadow_seeds():
    ours = {keys.model_seed(s, i) for s in range(21) for i in range(11)}  # n_shadows <= 10
    refs = [
        keys.model_seed(s, keys.Reference(k, n, keep_seed=0))
        for s in range(21)
        for n in (2, 4, 8, 16, 64)
        for k in range(n)
    ]
    assert len(set(refs)) == len(refs) and not ours & set(refs)
    # the pruning rounds' seeds (seed * 1000 + round, wemem.pruning) neither
    rounds = range(100)
    assert not {o * 1000 + r for o in ours for r in rounds} & {
        f * 1000 + r for f in refs for r in rounds
    }
    assert max(refs) * 1000 + 99 < 2**63  # a valid torch seed


#: Digests (:func:`wemem.io.digest`) of victim/shadow specs computed before the reference roles
#: were added: every existing cache entry must still hit.
KEYS_BEFORE = {
    (0, 0): ("4dc6deadba467b487f546517118e4ec4c2a1675ec106a9715326046468f43c0f",
             "da136a41fb8823b6a43bb796e8f738026664289e2a66567f044a32ac52ba9c66"),
    (3, 2): ("2a0a8bf8d895eec355803b1348dadff1e0f49dc436427c296c450813bccb525c",
             "96f5280e4a1be1c31dfba5e593d123697df2f72f6c7cd719bb13cdb4ad07f9e0"),
}  # fmt: skip
EXP_BEFORE = {
    "victim": ("dda0872f714dd24a80fc4bd993db27226e112c7169264da35258762093271190",
               "32bab78de642035d5d60ff441172887ddeebfe14e3cb66cf676eeb6329933a25",
               "91a443b23a09da341b2844a36c0742c5cc822c55b578456024abd1c708c4ad53"),
    "shadow1": ("69aa01568818d3da21cf8ab9124b3195df0bfa0e718836c03e17a7872b108c41",
                "1fd485af10a7b11f05ffb1eeec67783bf6d0dad71875acc34fb0fd766ea6c02b",
                "7714a69c12c894c64319dfb4805eb4707a0afe3dfee5e399d0be3440506d25e0"),
}  # fmt: skip


#: Parts the keys gained on purpose since :data:`KEYS_BEFORE` (new masks, new optimizer kernel: new
#: models): the dropout masks (:mod:`wemem.training.dropout`) of architectures with dropout, and the
#: optimizer kernel (:data:`wemem.training.fastpath.KERNEL`) of every model.
_GAINED = ("dropout", "optimizer")


def _without_masks(spec: dict) -> dict:
    """``spec`` (and its dense model's spec) without the :data:`_GAINED` parts."""
    out = {k: v for k, v in spec.items() if k not in _GAINED}
    if "dense" in out:
        out["dense"] = _without_masks(out["dense"])
    return out


def test_victim_and_shadow_specs_are_unchanged_but_for_the_masks_and_the_kernel(tiny_values):
    s = params.validate({**tiny_values, "n_shadows": 2})  # the cache folder is no part of a spec
    assert s.arch == "fc"
    for (seed, ri), (dense, pruned) in KEYS_BEFORE.items():
        d = keys.dense_spec(s, pool_digest="p" * 64, rows="r" * 64, seed=seed, role_index=ri)
        p = keys.pruned_spec(
            s, dense=d, eval_rows="e" * 64, seed=seed, role_index=ri,
            defense="rmr", defense_spec={"tau": 0.5},
        )  # fmt: skip
        assert d["dropout"] == p["dense"]["dropout"] == dropout.MASKS
        assert d["optimizer"] == p["dense"]["optimizer"] == fastpath.KERNEL == "fused"
        assert (digest(_without_masks(d)), digest(_without_masks(p))) == (dense, pruned)
    exp = Experiment(s, seed=1)
    for role, expected in EXP_BEFORE.items():
        specs = (exp.dense_spec(role), exp.pruned_spec(role), exp.pruned_spec(role, True))
        assert tuple(digest(_without_masks(x)) for x in specs) == expected, role


def test_only_architectures_with_dropout_name_the_masks(tiny_values):
    for arch, has in [("fc", True), ("vgg16bn", True), ("resnet18", False), ("densenet121", False)]:
        s = params.validate({**tiny_values, "arch": arch})
        d = keys.dense_spec(s, pool_digest="p" * 64, rows="r" * 64, seed=0, role_index=0)
        assert ("dropout" in d) is has, arch
        assert d["optimizer"] == fastpath.KERNEL, arch


def test_reference_specs_carry_their_identity(settings):
    exp = Experiment(settings, seed=0)
    spec = exp.dense_spec("ref1of4")
    assert spec["reference"] == {
        "k": 1,
        "n_refs": 4,
        "keep_seed": keys.keep_seed(settings.split_seed, 0),
    }
    assert spec["train"]["seed"] >= keys.REFERENCE_SEED_BASE
    assert exp.pruned_spec("ref1of4")["dense"] == spec
    assert spec["rows"] == keys.rows_digest(exp.split("ref1of4").train, exp.split("ref1of4").dev)
    specs = [digest(exp.dense_spec(r)) for r in [*exp.roles, "ref0of4", "ref1of4", "ref1of6"]]
    assert len(set(specs)) == len(specs)


def test_a_fresh_experiment_resolves_reference_requests_alike(settings):
    parent = Experiment(settings, seed=0)
    requests = [
        Request("dense", "ref2of4"),
        Request("pruned", "ref2of4", one_shot=True),
        Request("defended", "ref3of4", "rmr", settings={"tau": 0.5, "lambda_r": 0.1}),
    ]
    for r in requests:
        kind, spec, _ = parent.resolve(r)
        worker = Experiment(settings, seed=0)  # what an executor's worker builds
        assert worker.resolve(r)[:2] == (kind, spec)


def test_dp_references_on_a_batchnorm_cnn_resolve_to_the_groupnorm_twin(tmp_path):
    s = params.validate({"dataset": "digits", "arch": "resnet18", "width": 0.0625,
                         "n_shadows": 1, "cache_dir": str(tmp_path)})  # fmt: skip
    exp = Experiment(s, seed=0)
    twin = exp.for_defense("dp")
    _, spec, _ = exp.resolve(Request("defended", "ref1of4", "dp", settings={"noise_multiplier": 1}))
    assert spec["dense"]["norm"] == "group" and spec["dense"]["reference"]["k"] == 1
    np.testing.assert_array_equal(twin.split("ref1of4").train, exp.split("ref1of4").train)


# ---- training through the cache -------------------------------------------------------------
def test_reference_stage_trains_once_and_prunes_with_the_victims_defense(
    base_refs, settings, monkeypatch
):
    exp, st = base_refs
    assert st.roles == references.reference_roles(exp, 4) and st.name == "iterative"
    for role in st.roles:
        out, sp = st.outputs[role], exp.split(role)
        np.testing.assert_array_equal(out.rows_in, sp.train)
        np.testing.assert_array_equal(out.rows_out, sp.test)
        assert exp.is_cached(Request("dense", role)) and exp.is_cached(Request("pruned", role))
        assert st.summaries[role]["target_sparsity"] > 0
    rsw = references.reference_stage(exp, "rsw_h2l", n_refs=4, **RSW)
    for role in rsw.roles:
        assert exp.is_cached(Request("defended", role, "rsw_h2l", settings=RSW))
        assert (
            exp.pruned_spec(role)
            != exp.resolve(Request("defended", role, "rsw_h2l", settings=RSW))[1]
        )
    assert rsw.defense == "rsw_h2l" and rsw.settings == RSW
    assert not np.array_equal(rsw.outputs["ref0of4"].probs_in, st.outputs["ref0of4"].probs_in)

    def boom(*a, **k):
        raise AssertionError("retrained although cached")

    monkeypatch.setattr(S, "fit", boom)
    monkeypatch.setattr(S, "prune_and_finetune", boom)
    again = references.reference_stage(Experiment(settings, seed=0), n_refs=4)
    dense = references.reference_stage(exp, n_refs=4, stage="dense")
    for role in st.roles:
        np.testing.assert_array_equal(again.outputs[role].probs_out, st.outputs[role].probs_out)
        assert dense.summaries[role] != st.summaries[role]
    again_rsw = references.reference_stage(exp, "rsw_h2l", n_refs=4, **RSW)
    np.testing.assert_array_equal(
        again_rsw.outputs["ref1of4"].probs_in, rsw.outputs["ref1of4"].probs_in
    )


@pytest.mark.parametrize(
    "kwargs", [{"stage": "final"}, {"stage": "iterative", "one_shot": True},
               {"stage": "dense", "width": 20}, {"n_refs": 3}],
)  # fmt: skip
def test_reference_stage_refuses_bad_arguments(kwargs, settings):
    exp = Experiment(settings, seed=0)
    with pytest.raises(ParamsError):
        references.reference_stage(exp, **{"n_refs": 4, **kwargs})


def test_online_and_offline_lira_score_every_p_row_of_the_victim(base_refs):
    exp, st = base_refs
    victim = stage(exp, "iterative").models["victim"]
    rows_p = np.arange(exp.pool.n_train)
    for fn in (references.online_lira_scores, references.offline_lira_scores):
        scores, member, rows = fn(exp, victim, st)
        np.testing.assert_array_equal(rows, rows_p)
        assert scores.shape == (exp.pool.n_train,) and np.isfinite(scores).all()
        np.testing.assert_array_equal(member, np.isin(rows_p, exp.split("victim").train))
    phi = references.phi_matrix(st, rows_p)
    assert phi.shape == (4, exp.pool.n_train) and np.isfinite(phi).all()
    np.testing.assert_array_equal(references.keep_for(st, [0, 5]), st.keep[:, [0, 5]])
    with pytest.raises(ValueError, match="P rows"):
        references.phi_matrix(st, [exp.pool.n_train])


# ---- the scores on a planted signal ----------------------------------------------------------
def test_split_in_out_gathers_by_the_keep_matrix_and_refuses_unbalanced_ones():
    keep = reference_keep(50, 6, seed=1)
    phi = np.where(keep, 1.0, -1.0) * np.arange(1, 51)
    phi_in, phi_out = references.split_in_out(phi, keep)
    assert phi_in.shape == phi_out.shape == (3, 50)
    assert (phi_in > 0).all() and (phi_out < 0).all()
    keep[0, 0] = ~keep[0, 0]
    with pytest.raises(ValueError, match="K/2"):
        references.split_in_out(phi, keep)


@pytest.mark.parametrize("shared", [True, False])
def test_online_lira_beats_offline_and_meets_the_analytic_auc(shared):
    """A planted signal: sample i has offset a_i ~ N(0, 3²); an OUT model's φ is a_i + ε, an IN
    model's a_i + δ_i + ε (ε ~ N(0, σ²), σ = 1); the victim's φ likewise for members/non-members.

    With a global σ, the online score is ((μ̂_in − μ̂_out)/σ²)(φ − (μ̂_in + μ̂_out)/2), and
    offline's (φ − μ̂_out)/σ; with K/2 = 32 references per side the means are near exact.

    * ``shared``: δ_i = δ = 2 for all. Both rank by φ − a_i (up to the means' noise), so
      AUC = P(N(δ, σ²) > N(0, σ²)) with the estimate's noise added: online
      Φ(δ / (σ √(2 (1 + 1/K)))) (the midpoint has variance σ²/K), offline
      Φ(δ / (σ √(2 (1 + 2/K)))) (μ̂_out has σ²/(K/2)): equal but for O(1/K).
    * otherwise δ_i = δ for half the samples and 0 for the others (never memorised). Online
      scores the 0 ones ≈ 0 and the others (δ/σ²)(φ − a_i − δ/2) ~ N(±δ²/(2σ²), δ²/σ²); over
      member/non-member pairs by group: AUC = ¼ [Φ(δ/(σ√2)) + ½ + 2 Φ(δ/(2σ))] ≈ 0.776.
      Offline's members are a mixture ½ N(δ/σ, 1) + ½ N(0, 1) against N(0, 1):
      AUC = ½ Φ(δ/(σ√2)) + ¼ ≈ 0.711. Online wins by what the IN references tell it.
    """
    rng = np.random.default_rng(0)
    K, n, delta, sigma = 64, 20_000, 2.0, 1.0
    keep = reference_keep(n, K, seed=0)
    a = rng.normal(0.0, 3.0, n)
    d = np.full(n, delta) if shared else np.where(rng.random(n) < 0.5, delta, 0.0)
    phi_refs = a + keep * d + rng.normal(0.0, sigma, (K, n))
    member = rng.random(n) < 0.5
    phi_target = a + member * d + rng.normal(0.0, sigma, n)
    phi_in, phi_out = references.split_in_out(phi_refs, keep)
    on = lira_online(phi_target, phi_in, phi_out)
    off = lira_offline(phi_target, phi_out)
    auc_on, auc_off = roc_auc(on[member], on[~member]), roc_auc(off[member], off[~member])
    x = delta / sigma
    if shared:
        expect_on, expect_off = (
            _cdf(x / np.sqrt(2 * (1 + 1 / K))),
            _cdf(x / np.sqrt(2 * (1 + 2 / K))),
        )
        assert auc_on >= auc_off - 0.002
    else:
        expect_on = 0.25 * (_cdf(x / np.sqrt(2)) + 0.5 + 2 * _cdf(x / 2))
        expect_off = 0.5 * _cdf(x / np.sqrt(2)) + 0.25
        assert auc_on > auc_off + 0.04
    assert abs(auc_on - expect_on) < 0.015 and abs(auc_off - expect_off) < 0.015


# spawned workers import torch (about 20 s on 2 cores), Ray starts a local cluster: `make test-slow`
@pytest.mark.slow
@pytest.mark.parametrize("other", ["pool", "ray"])
def test_the_pool_and_ray_train_the_references_the_local_executor_does(
    other, settings, monkeypatch
):
    from wemem.experiment import executor

    if other == "ray":
        pytest.importorskip("ray")
    monkeypatch.setenv("WEMEM_POOL_WORKERS", "2")
    stages = {}
    for name in ("local", other):
        monkeypatch.setenv("WEMEM_EXECUTOR", name)
        s = replace(settings, cache_dir=str(settings.cache_dir) + f"-{other}-{name}")
        exp = Experiment(s, seed=0)
        roles = references.reference_roles(exp, 4)
        requests = [
            Request("defended", r, "rmr", settings={"tau": 0.5, "lambda_r": 0.1}) for r in roles
        ]
        assert exp.prefetch(requests) == (0 if name == "local" else 8)  # 4 dense + 4 pruning runs
        stages[name] = references.reference_stage(exp, "rmr", n_refs=4, tau=0.5, lambda_r=0.1)
    executor.shutdown()
    for role in stages["local"].roles:
        a, b = stages["local"].outputs[role], stages[other].outputs[role]
        assert np.array_equal(a.probs_in, b.probs_in) and np.array_equal(a.probs_out, b.probs_out)
