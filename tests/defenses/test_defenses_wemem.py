"""WeMem primitives and methods (spec §2): hand-worked arrays, then tiny fits through the one loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from wemem import names
from wemem.defenses import (
    WEMEM_DEFENSES,
    RMRHooks,
    RSWHooks,
    SWMRHooks,
    defense_spec,
    exposure_counts,
    make_hooks_factory,
    rank_by_memscore,
    sliding_window_indices,
    split_by_tau,
    window_rule,
)
from wemem.errors import ParamsError
from wemem.models import build_model
from wemem.pruning import prune_and_finetune
from wemem.training.loop import Batch, Hooks, TrainConfig, fit

# --- ranking --------------------------------------------------------------------------------------

IDX = np.array([10, 11, 12, 13, 14, 15])
LAB = np.array([0, 1, 0, 0, 1, 0])
SCO = np.array([0.5, 0.2, 0.9, 0.5, 0.2, 0.1])


def test_rank_h2l_and_l2h_are_stable_on_ties():
    # class 0: 10 (0.5), 12 (0.9), 13 (0.5), 15 (0.1); class 1: 11, 14 tied at 0.2
    h2l = rank_by_memscore(IDX, LAB, SCO, order="H2L")
    l2h = rank_by_memscore(IDX, LAB, SCO, order="L2H")
    assert [r.tolist() for r in h2l] == [[12, 10, 13, 15], [11, 14]]  # 10 before 13, not reversed
    assert [r.tolist() for r in l2h] == [[15, 10, 13, 12], [11, 14]]
    assert all(r.dtype == np.int64 for r in h2l)


def test_rank_random_is_a_seeded_per_class_shuffle():
    idx = np.arange(200)
    lab, sco = idx % 2, np.linspace(0, 1, 200)
    a = rank_by_memscore(idx, lab, sco, order="random", seed=3)
    b = rank_by_memscore(idx, lab, sco, order="random", seed=3)
    c = rank_by_memscore(idx, lab, sco, order="random", seed=4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])
    for k, r in enumerate(a):
        assert sorted(r.tolist()) == list(range(k, 200, 2))
        assert not np.array_equal(r, np.sort(r))


def test_rank_num_classes_and_errors():
    ranked = rank_by_memscore(IDX, LAB, SCO, order="L2H", num_classes=4)
    assert [len(r) for r in ranked] == [4, 2, 0, 0]
    with pytest.raises(ParamsError, match=r"'high'.*H2L"):
        rank_by_memscore(IDX, LAB, SCO, order="high")
    with pytest.raises(ParamsError, match="labels"):
        rank_by_memscore(IDX, LAB[:3], SCO, order="H2L")
    with pytest.raises(ParamsError, match="NaN"):
        rank_by_memscore(IDX, LAB, np.where(LAB == 1, np.nan, SCO), order="H2L")


# --- sliding window -------------------------------------------------------------------------------

# class 0 has 7 ranked samples (ids 0..6), class 1 has 4 (ids 100..103)
TWO = [np.arange(7), np.arange(100, 104)]


@pytest.mark.parametrize(
    "epoch, expected",
    [
        (0, [0, 1, 2, 100, 101, 102]),
        (1, [2, 3, 4, 102, 103]),  # class 1 clipped to its 4 samples
        (2, [4, 5, 6]),  # start 4 >= 4: class 1 contributes nothing (no wrap-around)
        (3, [6]),
        (4, []),  # start 8 >= every class size
    ],
)
def test_window_contents_by_hand(epoch, expected):
    got = sliding_window_indices(TWO, epoch, width=3, step=2)
    assert got.tolist() == expected and got.dtype == np.int64
    assert sliding_window_indices(TWO, epoch, width=3, step=2, mode="faithful").tolist() == expected


def test_faithful_clipping_shrinks_end_for_later_classes_only():
    # long (0..6), short (100..103), long (200..206); width 3, step 1
    three = [np.arange(7), np.arange(100, 104), np.arange(200, 207)]
    per_class = [sliding_window_indices(three, e, width=3, step=1).tolist() for e in range(5)]
    faithful = [
        sliding_window_indices(three, e, width=3, step=1, mode="faithful").tolist()
        for e in range(5)
    ]
    assert per_class[:2] == faithful[:2]  # end <= 4: nothing to clip
    # epoch 2: end 5 > 4 meets the short class, which sets end = 4 for itself and class 2
    assert per_class[2] == [2, 3, 4, 102, 103, 202, 203, 204]
    assert faithful[2] == [2, 3, 4, 102, 103, 202, 203]
    assert faithful[3] == [3, 4, 5, 103, 203]
    # epoch 4: start 4 >= 4 skips the short class *before* clipping, so class 2 is not narrowed
    assert per_class[4] == faithful[4] == [4, 5, 6, 204, 205, 206]


def test_window_rejects_bad_settings():
    with pytest.raises(ParamsError, match="width"):
        sliding_window_indices(TWO, 0, width=0, step=1)
    with pytest.raises(ParamsError, match="step"):
        sliding_window_indices(TWO, 0, width=1, step=0)
    with pytest.raises(ParamsError, match=r"'fixed'.*per_class"):
        sliding_window_indices(TWO, 0, width=1, step=1, mode="fixed")


def test_exposure_counts_by_hand():
    # rank r is seen for e with 2e <= r < 2e + 6: ranks 0-1 once, 2-3 twice, then w/s = 3 times
    assert exposure_counts(20, width=6, step=2).tolist() == [1, 1, 2, 2] + [3] * 16
    counts = exposure_counts(100, width=5, step=3, epochs=21)
    assert (counts[:3] == 1).all()  # the first s ranks once
    assert (counts[65:] == 0).all() and (counts[:65] > 0).all()  # coverage 20·s + w = 65
    assert set(counts[6:60].tolist()) == {1, 2} and counts[6:60].mean() == pytest.approx(
        5 / 3, 0.05
    )
    # the same numbers as counting the windows of one class
    seen = np.concatenate(
        [sliding_window_indices([np.arange(100)], e, width=5, step=3) for e in range(21)]
    )
    assert np.bincount(seen, minlength=100).tolist() == counts.tolist()


def test_window_rule_against_the_paper_table():
    widths = [window_rule(2250, fraction=f)[0] for f in (2 / 3, 4 / 9, 2 / 9)]
    assert widths == [1500, 1000, 500]  # CIFAR10: exact
    assert window_rule(2250, fraction=2 / 9)[1:] == (88, 44)  # the table says 100/50: "≈" only
    assert [window_rule(710.4, fraction=f)[0] for f in (2 / 3, 4 / 9, 2 / 9)] == [474, 316, 158]
    assert window_rule(60, fraction=1 / 4, min_fraction=1 / 4) == (15, 2, 1)  # table 15, s 3/1
    with pytest.raises(ParamsError, match="fraction"):
        window_rule(100, fraction=0)


def test_split_by_tau_uses_greater_or_equal():
    risk, general = split_by_tau([7, 8, 9, 10], [0.5, 0.49, 0.7, 0.5], 0.5)
    assert risk.tolist() == [7, 9, 10] and general.tolist() == [8]


# --- methods in the training loop -----------------------------------------------------------------


def _tabular(sizes: tuple[int, ...], n_dev: int = 8, seed: int = 0):
    """x (n, 8), y grouped by class with ``sizes`` training rows each, then n_dev dev rows."""
    gen = torch.Generator().manual_seed(seed)
    y_train = np.repeat(np.arange(len(sizes)), sizes)
    y = np.concatenate([y_train, np.arange(n_dev) % len(sizes)])
    x = torch.randn(len(y), 8, generator=gen) + torch.as_tensor(y, dtype=torch.float32)[:, None]
    train = np.arange(len(y_train))
    dev = np.arange(len(y_train), len(y))
    scores = np.random.default_rng(seed).random(len(y))
    return x, torch.as_tensor(y), train, dev, scores, y


def _fc(num_classes: int = 2) -> nn.Module:
    return build_model("fc", num_classes=num_classes, in_features=8, width=0.05, seed=0)


CFG = TrainConfig(max_epochs=10, patience=100, batch_size=4, seed=0)


def test_empty_window_ends_the_fit_cleanly():
    x, y, train, dev, scores, labels = _tabular((6, 4))
    hooks = RSWHooks(scores, labels, order="H2L", width=3, step=2)
    res, _ = fit(_fc(), x, y, train, dev, config=CFG, hooks=hooks)
    assert res.epochs_run == 3  # epoch 3: start 6 >= 6 and >= 4
    assert "sliding window empty at epoch 3" in res.stop_reason
    assert [h["n_train"] for h in res.history] == [3 + 3, 3 + 2, 2 + 0]


def test_window_hooks_rank_each_fit_afresh_and_check_rows():
    x, y, train, dev, scores, labels = _tabular((6, 4))
    hooks = RSWHooks(scores, labels, order="L2H", width=2, step=1)
    cfg = TrainConfig(max_epochs=1, batch_size=4)
    fit(_fc(), x, y, train, dev, config=cfg, hooks=hooks)
    fit(_fc(), x, y, train[:3], dev, config=cfg, hooks=hooks)  # same hooks, other members
    assert set(hooks.epoch_indices(0, torch.as_tensor(train[:3])).tolist()) <= {0, 1, 2}
    short = RSWHooks(scores[:5], labels[:5], order="L2H", width=2, step=1)
    with pytest.raises(ParamsError, match=r"mem-scores cover pool rows \[0, 5\)"):
        fit(_fc(), x, y, train, dev, config=cfg, hooks=short)


class _Recorder:
    """Mix-in that logs (epoch, optimizer, rows) of every step and the rows of every epoch."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.steps: list[tuple[int, str, list[int]]] = []
        self.epochs: dict[int, list[int]] = {}

    def epoch_indices(self, epoch, train_rows):
        rows = super().epoch_indices(epoch, train_rows)
        self.epochs[epoch] = rows.tolist()
        return rows

    def after_step(self, model, batch, epoch):
        self.steps.append((epoch, batch.optimizer, batch.rows.tolist()))


class RecRMR(_Recorder, RMRHooks):
    pass


class RecSWMR(_Recorder, SWMRHooks):
    pass


def _param_ids(opt: torch.optim.Optimizer) -> list[int]:
    return [id(p) for g in opt.param_groups for p in g["params"]]


def test_rmr_steps_risk_optimizer_on_risk_batches_first():
    x, y, train, dev, _, labels = _tabular((10, 10))
    scores = np.zeros(len(labels))
    scores[[1, 4, 12, 15, 19]] = [0.5, 0.9, 0.6, 0.7, 0.5]  # τ = 0.5: 5 high-risk rows (>=)
    hooks = RecRMR(scores, labels, tau=0.5, lambda_r=0.1)
    cfg = TrainConfig(max_epochs=3, patience=100, batch_size=4, seed=0, weight_decay=5e-4)
    res, opts = fit(_fc(), x, y, train, dev, config=cfg, hooks=hooks)
    assert res.epochs_run == 3 and set(opts) == {"general", "risk"}
    assert opts["risk"].defaults["weight_decay"] == 0.1
    assert opts["general"].defaults["weight_decay"] == 5e-4
    assert _param_ids(opts["risk"]) == _param_ids(opts["general"])
    risk_rows = {1, 4, 12, 15, 19}
    for epoch in range(3):
        steps = [(o, r) for e, o, r in hooks.steps if e == epoch]
        names = [o for o, _ in steps]
        assert names == ["risk"] * 2 + ["general"] * 4  # ceil(5/4) then ceil(15/4), risk first
        assert all(set(r) <= risk_rows for o, r in steps if o == "risk")
        assert all(not set(r) & risk_rows for o, r in steps if o == "general")
        assert sorted(sum((r for _, r in steps), [])) == list(range(20))
    # each Adam counts its own steps: 3 epochs x 2 risk batches, 3 x 4 general batches
    first = opts["risk"].param_groups[0]["params"][0]
    assert int(opts["risk"].state[first]["step"]) == 6
    assert int(opts["general"].state[first]["step"]) == 12


def test_rmr_with_no_high_risk_rows_trains_general_only():
    x, y, train, dev, _, labels = _tabular((5, 5))
    hooks = RecRMR(np.zeros(len(labels)), labels, tau=0.5, lambda_r=0.1)
    fit(_fc(), x, y, train, dev, config=TrainConfig(max_epochs=2, batch_size=4), hooks=hooks)
    assert {o for _, o, _ in hooks.steps} == {"general"}


def test_per_sample_loss_is_ce_plus_half_mean_lambda_times_sq_norm():
    model = nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        model.bias.copy_(torch.tensor([0.0, 1.0]))  # ‖θ‖² = 1 + 4 + 9 + 16 + 0 + 1 = 31
    scores = np.array([0.9, 0.2, 0.6, 0.1])  # τ = 0.5: rows 0 and 2 high-risk
    hooks = RMRHooks(
        scores, np.zeros(4, int), tau=0.5, lambda_r=0.1, realisation="per_sample", lambda_g=5e-4
    )
    x, y = torch.randn(4, 2), torch.tensor([0, 1, 1, 0])
    hooks.bind(model, x, y, torch.arange(4), torch.arange(0))
    opts = hooks.make_optimizers(model, TrainConfig())
    assert set(opts) == {"main"} and opts["main"].defaults["weight_decay"] == 0.0
    rows = torch.tensor([0, 1, 2])
    logits = model(x[rows])
    got = hooks.loss(logits, y[rows], Batch(rows, "main"), 0)
    mean_lam = (0.1 + 5e-4 + 0.1) / 3
    want = F.cross_entropy(logits, y[rows]) + 0.5 * mean_lam * 31.0
    assert got.detach().item() == pytest.approx(want.detach().item(), rel=1e-6)
    got.backward()  # the L2 part's gradient is mean(λ)·θ
    ce_grad = torch.autograd.grad(F.cross_entropy(model(x[rows]), y[rows]), model.weight)[0]
    assert torch.allclose(model.weight.grad, ce_grad + mean_lam * model.weight.detach())
    plan = list(hooks.batch_plan(0, torch.arange(4), batch_size=2, generator=torch.Generator()))
    assert {b.optimizer for b in plan} == {"main"}


def test_swmr_trains_only_on_the_window_split_by_tau():
    x, y, train, dev, scores, labels = _tabular((8, 6))
    hooks = RecSWMR(scores, labels, order="H2L", width=3, step=2, tau=0.5, lambda_r=0.1)
    fit(_fc(), x, y, train, dev, config=TrainConfig(max_epochs=4, batch_size=2), hooks=hooks)
    ranked = rank_by_memscore(train, labels[train], scores[train], order="H2L")
    assert sorted(hooks.epochs) == [0, 1, 2, 3]
    for epoch, rows in hooks.epochs.items():
        window = sliding_window_indices(ranked, epoch, width=3, step=2)
        assert rows == window.tolist()
        steps = [(o, r) for e, o, r in hooks.steps if e == epoch]
        seen = sorted(sum((r for _, r in steps), []))
        assert seen == sorted(window.tolist())
        names = [o for o, _ in steps]
        assert names == sorted(names, key=lambda o: o != "risk")  # risk batches first
        for o, r in steps:
            assert all((scores[i] >= 0.5) == (o == "risk") for i in r)


# --- registry and iterative pruning ---------------------------------------------------------------

SETTINGS = {"width": 3, "step": 2, "tau": 0.5, "lambda_r": 0.1}


def test_registry_covers_the_wemem_names_and_validates():
    assert set(WEMEM_DEFENSES) <= set(names.DEFENSES)
    assert defense_spec("base", **SETTINGS) == {}
    assert defense_spec("rsw_l2h", **SETTINGS) == {
        "order": "L2H",
        "width": 3,
        "step": 2,
        "mode": "per_class",
    }
    assert "seed" in defense_spec("random_window", **SETTINGS)
    assert defense_spec("rmr", **SETTINGS) == {
        "tau": 0.5,
        "lambda_r": 0.1,
        "realisation": "official",
    }
    assert defense_spec("rmr", tau=0.5) == defense_spec("rmr", tau=0.5, lambda_r=0.1)
    assert "lambda_g" in defense_spec("swmr_h2l", **SETTINGS, realisation="per_sample")
    assert make_hooks_factory("base") is Hooks
    for name, bad, match in [
        ("dp", {}, "not a WeMem defense"),
        ("nope", {}, "allowed values"),
        ("rsw_h2l", {"width": 3}, "'step' is required"),
        ("rsw_h2l", {"width": 0, "step": 1}, "width: 0"),
        ("rsw_h2l", {"width": 3, "step": 1.5}, "step: 1.5"),
        ("rmr", {"tau": 1.5}, r"tau: 1\.5"),
        ("rmr", {"tau": 0.5, "lambda_r": 0.0}, "lambda_r: 0.0"),
        ("rmr", {"tau": 0.5, "realisation": "mixed"}, "per_sample"),
        ("rmr", {"tau": 0.5, "taus": 1}, "unknown setting"),
    ]:
        with pytest.raises(ParamsError, match=match):
            make_hooks_factory(name, scores=np.zeros(3), labels=np.zeros(3, int), **bad)
    with pytest.raises(ParamsError, match="mem-scores"):
        make_hooks_factory("rmr", tau=0.5)


@pytest.mark.parametrize("name", WEMEM_DEFENSES)
def test_every_method_runs_through_iterative_pruning(name):
    x, y, train, dev, scores, labels = _tabular((6, 5, 7), n_dev=9)
    factory = make_hooks_factory(name, scores=scores, labels=labels, **SETTINGS)
    made: list[Hooks] = []

    def hooks_factory() -> Hooks:
        made.append(factory())
        return made[-1]

    model = build_model("fc", num_classes=3, in_features=8, width=0.05, seed=0)
    cfg = TrainConfig(max_epochs=3, patience=100, batch_size=4, seed=1)
    res = prune_and_finetune(
        model,
        x,
        y,
        train,
        dev,
        arch="fc",
        approach="l1_unstructured",
        rate=0.5,
        rounds=2,
        config=cfg,
        hooks_factory=hooks_factory,
    )
    assert len(res.rounds) == 2 and len(made) == 2 and made[0] is not made[1]
    assert res.layer_sparsity["fc1"] == pytest.approx(0.5, abs=0.01)
    n_train = [[h["n_train"] for h in r.fit.history] for r in res.rounds]
    if name in ("base", "rmr"):
        assert n_train == [[18] * 3] * 2
    else:  # classes of 6, 5, 7: windows [0,3) [2,5) [4,7) give 9, 9, 2 + 1 + 3 rows, each round
        assert n_train == [[9, 9, 6]] * 2  # a continued slide would give 1 row in round 1
