import logging
import math

import pytest
import torch
import torch.nn.functional as F
from opacus.accountants import RDPAccountant
from torch import nn
from torch.nn.utils import prune

from wemem.defenses.dp import DPSGDHooks, default_delta, dp_epsilon, make_private_compatible
from wemem.errors import ParamsError
from wemem.models import build_model
from wemem.pruning import layer_sparsity, prunable_modules, prune_and_finetune
from wemem.training.loop import Batch, Hooks, TrainConfig, fit

C, LR, BATCH = 0.5, 0.1, 8


def _one_step(model, x, y, rows, *, mode, sigma=0.0):
    """One DP step through the hooks, as fit does it; returns the hooks."""
    hooks = DPSGDHooks(noise_multiplier=sigma, max_grad_norm=C, lr=LR, mode=mode)
    train = torch.arange(len(x))
    hooks.bind(model, x, y, train, train)
    opt = hooks.make_optimizers(model, TrainConfig(batch_size=BATCH, weight_decay=0.0))["main"]
    batch = Batch(rows)
    opt.zero_grad(set_to_none=True)
    loss = hooks.loss(model(x[rows]), y[rows], batch, 0)
    hooks.backward(loss, batch, 0)
    opt.step()
    hooks.after_step(model, batch, 0)
    hooks.unbind(model)
    return hooks


def _expected(model, x, y, rows):
    """θ − lr · Σ_i clip_C(g_i) / B with g_i the per-example gradient w.r.t. every parameter
    (for a pruned layer: w.r.t. weight_orig, i.e. masked), computed one example at a time."""
    params = dict(model.named_parameters())
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    norms = []
    for i in rows.tolist():
        loss = F.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        grads = torch.autograd.grad(loss, list(params.values()))
        norm = torch.sqrt(sum((g**2).sum() for g in grads))
        norms.append(float(norm))
        for n, g in zip(params, grads, strict=True):
            total[n] += g * min(1.0, C / (float(norm) + 1e-6))
    return {n: p.detach() - LR * total[n] / BATCH for n, p in params.items()}, norms


class TinyConv(nn.Module):
    """Covers every route of the conv norms: T > 1 unpruned (ghost Gram), T > 1 pruned (batched
    matmul), T = 1 (rank one; conv2 sees a 1×1 map), biases, then a Linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 3, 3, stride=2, padding=1)  # 4×4 → 2×2
        self.conv2 = nn.Conv2d(3, 4, 2, bias=False)  # 2×2 → 1×1
        self.gn = nn.GroupNorm(2, 4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.gn(self.conv2(x)))
        return self.fc(x.flatten(1))


def _model(kind: str, pruned: bool) -> nn.Module:
    torch.manual_seed(1)
    if kind == "mlp":
        model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
        targets = [model[0]]
    else:
        model = TinyConv()
        targets = [model.conv1, model.conv2, model.fc]
    if pruned:
        for m in targets:
            prune.custom_from_mask(m, "weight", (torch.rand_like(m.weight) > 0.4).float())
    return model


@pytest.mark.parametrize("mode", ["ghost", "hooks"])
@pytest.mark.parametrize("pruned", [False, True], ids=["dense", "pruned"])
@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_update_is_mean_of_per_example_clipped_gradients(kind, pruned, mode):
    gen = torch.Generator().manual_seed(0)
    shape = (20, 5) if kind == "mlp" else (20, 2, 4, 4)
    x, y = 3 * torch.randn(shape, generator=gen), torch.randint(0, 3, (20,), generator=gen)
    rows = torch.tensor([0, 3, 5, 7, 11, 19])
    model = _model(kind, pruned)
    want, norms = _expected(model, x, y, rows)
    assert max(norms) > C  # clipping is active, so the test can fail
    _one_step(model, x, y, rows, mode=mode)
    for name, p in model.named_parameters():
        assert torch.allclose(p.detach(), want[name], atol=1e-6), name
    if pruned:  # the masks are untouched and the effective weights stay sparse
        for m in [m for m in model.modules() if hasattr(m, "weight_mask")]:
            assert torch.equal(m.weight_orig * m.weight_mask == 0, m.weight_mask == 0)


@pytest.mark.parametrize("mode", ["ghost", "hooks"])
def test_noise_has_std_sigma_c_over_the_expected_batch_size(mode):
    torch.manual_seed(0)
    model = nn.Linear(100, 50)
    x, y = torch.randn(20, 100), torch.randint(0, 50, (20,))
    before = model.weight.detach().clone()
    _one_step(model, x, y, torch.arange(4), mode=mode, sigma=1000.0)
    step = (model.weight.detach() - before) / LR  # signal ≤ 4·C/B, noise std σ·C/B = 62.5
    assert step.std().item() == pytest.approx(1000.0 * C / BATCH, rel=0.05)


def test_dp_epsilon_equals_opacus_rdp_accountant():
    acc = RDPAccountant()
    for _ in range(300):
        acc.step(noise_multiplier=1.1, sample_rate=0.05)
    for _ in range(200):
        acc.step(noise_multiplier=1.1, sample_rate=0.05)
    assert dp_epsilon(1.1, 0.05, 500, 1e-5) == acc.get_epsilon(delta=1e-5)
    assert dp_epsilon(1.1, 0.05, 0, 1e-5) == 0.0
    assert dp_epsilon(0.0, 0.05, 10, 1e-5) == math.inf


def _data(n=120, d=10, c=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=gen), torch.randint(0, c, (n,), generator=gen)


def _fc(d=10, c=4):
    return build_model("fc", num_classes=c, in_features=d, width=0.125, seed=0)


def test_hooks_epsilon_is_the_accounted_history_and_delta_defaults_to_1e_5():
    x, y = _data()
    hooks = DPSGDHooks(noise_multiplier=1.0, lr=0.05)
    config = TrainConfig(batch_size=16, max_epochs=2, patience=10)
    fit(_fc(), x, y, torch.arange(80), torch.arange(80, 120), config=config, hooks=hooks)
    assert hooks.steps == 2 * (80 // 16)
    assert hooks.delta == 1e-5  # min(1e-5, 0.1/80)
    assert hooks.epsilon() == dp_epsilon(1.0, 16 / 80, hooks.steps, 1e-5)
    assert 0 < hooks.epsilon(1e-5) < math.inf


@pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha")
def test_target_epsilon_mode_stays_within_the_target():
    x, y = _data()
    hooks = DPSGDHooks(target_epsilon=3.0, epochs_planned=3, delta=1e-5, lr=0.05)
    config = TrainConfig(batch_size=16, max_epochs=3, patience=10)
    fit(_fc(), x, y, torch.arange(80), torch.arange(80, 120), config=config, hooks=hooks)
    assert hooks.steps == 3 * 5
    assert 2.5 < hooks.epsilon() <= 3.0
    assert hooks.noise_multiplier > 0


@pytest.mark.parametrize("mode", ["ghost", "hooks"])
def test_empty_poisson_draws_are_noise_only_steps(mode):
    x, y = _data()
    hooks = DPSGDHooks(noise_multiplier=1.0, mode=mode)
    config = TrainConfig(batch_size=1, max_epochs=1, patience=10)
    result, _ = fit(_fc(), x, y, torch.arange(20), torch.arange(20, 40), config=config, hooks=hooks)
    assert hooks.steps == 20  # q = 1/20: about 7 of the 20 draws are empty
    assert result.history[0]["n_train"] < 20
    assert math.isfinite(result.history[0]["train_loss"])


def test_dp_finetuning_through_prune_and_finetune_keeps_exact_sparsity_and_reports_epsilon():
    x, y = _data(n=150)
    made = []

    def factory():
        made.append(DPSGDHooks(noise_multiplier=1.0, lr=0.1))
        return made[-1]

    model = _fc()
    config = TrainConfig(batch_size=20, max_epochs=2, patience=10)
    result = prune_and_finetune(
        model, x, y, torch.arange(100), torch.arange(100, 150), arch="fc",
        approach="l1_unstructured", rate=0.6, rounds=2, config=config, hooks_factory=factory,
    )  # fmt: skip
    for name, m in prunable_modules(model, "fc", "l1_unstructured"):
        assert int((m.weight == 0).sum()) == int(m.weight.numel() * 0.6)
        assert result.layer_sparsity[name] == layer_sparsity(model, [(name, m)])[name]
    steps = 2 * 2 * (100 // 20)  # rounds × epochs × ⌊N / batch⌋
    assert made[-1].steps == steps  # one accountant across both rounds
    assert made[0].epsilon() == made[-1].epsilon()  # every round's hooks report the run's ε
    assert made[-1].epsilon() == dp_epsilon(1.0, 0.2, steps, 1e-5)
    assert 0 < made[-1].epsilon() < math.inf


def test_a_batchnorm_model_is_converted_with_a_warning(caplog):
    model = build_model("resnet18", num_classes=3, in_channels=1, width=0.0625, seed=0)
    with caplog.at_level(logging.WARNING, logger="wemem.defenses.dp"):
        fixed = make_private_compatible(model)
    assert "GroupNorm" in caplog.text
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fixed.modules())
    assert any(isinstance(m, nn.GroupNorm) for m in fixed.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # input untouched
    caplog.clear()
    fc = _fc()
    assert make_private_compatible(fc) is fc and not caplog.text
    x = torch.randn(8, 1, 8, 8)
    with pytest.raises(ParamsError, match="GroupNorm twins.*make_private_compatible"):
        DPSGDHooks(noise_multiplier=1.0).bind(model, x, torch.zeros(8).long(), torch.arange(8), [])


def test_a_converted_cnn_finetunes_under_dp():
    x, y = torch.randn(60, 1, 8, 8), torch.randint(0, 3, (60,))
    model = make_private_compatible(
        build_model("resnet18", num_classes=3, in_channels=1, width=0.0625, seed=0)
    )
    config = TrainConfig(batch_size=10, max_epochs=1, patience=10)
    hooks = DPSGDHooks(noise_multiplier=1.0, lr=0.1)
    result, _ = fit(model, x, y, torch.arange(40), torch.arange(40, 60), config=config, hooks=hooks)
    assert hooks.steps == 4 and math.isfinite(result.history[0]["train_loss"])


def test_a_non_dp_optimizer_is_refused():
    x, y = _data()
    model = _fc()
    train, dev = torch.arange(80), torch.arange(80, 120)
    config = TrainConfig(batch_size=16, max_epochs=1)
    adam = Hooks().make_optimizers(model, config)
    for _ in range(2):  # without, then with, a DP optimizer made earlier for this model
        with pytest.raises(RuntimeError, match="DP optimizer"):
            fit(model, x, y, train, dev, config=config, hooks=DPSGDHooks(noise_multiplier=1.0),
                optimizers=adam)  # fmt: skip
        fit(model, x, y, train, dev, config=config, hooks=DPSGDHooks(noise_multiplier=1.0))


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"noise_multiplier": 1.0, "target_epsilon": 2.0},
        {"noise_multiplier": -1.0},
        {"target_epsilon": 0.0},
        {"noise_multiplier": 1.0, "delta": 1.0},
        {"noise_multiplier": 1.0, "mode": "fast"},
        {"noise_multiplier": 1.0, "max_grad_norm": 0},
        {"noise_multiplier": 1.0, "passes_per_epoch": 0},
        {"noise_multiplier": 1.0, "passes_per_epoch": -2.0},
        {"noise_multiplier": 1.0, "passes_per_epoch": True},
        {"noise_multiplier": 1.0, "passes_per_epoch": "100"},
        {"noise_multiplier": 1.0, "passes_per_epoch": math.inf},
    ],
)
def test_bad_settings_raise_params_error(kwargs):
    with pytest.raises(ParamsError):
        DPSGDHooks(**kwargs)


def test_bad_passes_per_epoch_names_the_field():
    with pytest.raises(ParamsError, match=r"passes_per_epoch = 0: must be a number > 0"):
        DPSGDHooks(noise_multiplier=1.0, passes_per_epoch=0)


# --- δ and passes per epoch (issue 12 items 4 and 9) ----------------------------------------------


@pytest.mark.parametrize(
    "n, want", [(1, 1e-5), (80, 1e-5), (10_000, 1e-5), (20_000, 5e-6), (1_000_000, 1e-7)]
)
def test_default_delta_is_min_of_1e_5_and_a_tenth_over_n(n, want):
    assert default_delta(n) == pytest.approx(want, rel=1e-12)
    assert default_delta(n) <= 0.1 / n


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_default_delta_refuses_a_bad_n(n):
    with pytest.raises(ParamsError, match="n_train"):
        default_delta(n)


def test_large_training_set_caps_delta_and_an_explicit_delta_overrides():
    x, y = _data(n=40)
    hooks = DPSGDHooks(noise_multiplier=1.0)
    hooks.bind(_fc(), x, y, torch.arange(20), torch.arange(20, 40))
    hooks._n = 20_000  # the default is read from N when the optimizer is made
    hooks.make_optimizers(_fc(), TrainConfig(batch_size=16))
    assert hooks.delta == pytest.approx(0.1 / 20_000)
    given = DPSGDHooks(noise_multiplier=1.0, delta=1e-3)
    given.bind(_fc(), x, y, torch.arange(20), torch.arange(20, 40))
    given.make_optimizers(_fc(), TrainConfig(batch_size=16))
    assert given.delta == 1e-3


@pytest.mark.parametrize("passes, per_epoch", [(1, 5), (1.0, 5), (3, 15), (0.5, 2), (0.01, 1)])
def test_passes_per_epoch_multiplies_the_poisson_steps_and_the_accounted_steps(passes, per_epoch):
    x, y = _data()
    hooks = DPSGDHooks(noise_multiplier=1.0, lr=0.05, passes_per_epoch=passes)
    config = TrainConfig(batch_size=16, max_epochs=2, patience=10)
    fit(_fc(), x, y, torch.arange(80), torch.arange(80, 120), config=config, hooks=hooks)
    assert hooks.steps == 2 * per_epoch  # 2 epochs × round(p · ⌊80/16⌋)
    assert hooks.epsilon() == dp_epsilon(1.0, 16 / 80, 2 * per_epoch, 1e-5)


def test_passes_per_epoch_100_is_the_official_floor_n_over_128_times_100():
    hooks = DPSGDHooks(noise_multiplier=0.1, passes_per_epoch=100)
    hooks._n = 30_000
    assert hooks.steps_per_epoch(128) == (30_000 // 128) * 100


@pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha")
def test_target_epsilon_calibrates_sigma_over_every_pass():
    x, y = _data()
    config = TrainConfig(batch_size=16, max_epochs=2, patience=10)
    sigmas = {}
    for passes in (1, 4):
        hooks = DPSGDHooks(target_epsilon=3.0, epochs_planned=2, lr=0.05, passes_per_epoch=passes)
        fit(_fc(), x, y, torch.arange(80), torch.arange(80, 120), config=config, hooks=hooks)
        assert hooks.steps == 2 * 5 * passes
        assert 2.5 < hooks.epsilon() <= 3.0  # the budget covers the real number of steps
        sigmas[passes] = hooks.noise_multiplier
    assert sigmas[4] > sigmas[1]
