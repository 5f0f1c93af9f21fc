import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from wemem.defenses.baselines import (
    ADVHooks,
    PPBHooks,
    RelaxLossHooks,
    ppb_loss,
    relaxloss_loss,
)
from wemem.errors import ParamsError
from wemem.models import build_model
from wemem.pruning import layer_sparsity, prunable_modules, prune_and_finetune
from wemem.training.loop import TrainConfig, fit


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _ce(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    return -np.log(_softmax(z)[np.arange(len(y)), y])


# --- PPB ----------------------------------------------------------------------------------------


def test_ppb_hand_worked_pair():
    # a = sorted [0, 0] → q = (1/2, 1/2); b = sorted [ln 3, 0] → p = (3/4, 1/4).
    # KL(p ‖ q) = 3/4 ln(3/2) + 1/4 ln(1/2); one pair, so batchmean divides by 1.
    logits = torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)]])
    targets = torch.tensor([0, 0])
    ce = (math.log(2.0) + math.log(4.0)) / 2  # p_0 = 1/2 and 1/4
    kl = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    got = ppb_loss(logits, targets, beta=4.0)
    assert got.item() == pytest.approx(ce + 4.0 * kl, rel=1e-6)


def test_ppb_matches_numpy_and_drops_the_odd_row_from_the_kl():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(5, 4)).astype(np.float32)
    y = np.array([0, 3, 1, 2, 2])
    s = -np.sort(-z, axis=1)
    p, q = _softmax(s[2:4]), _softmax(s[0:2])  # b = rows 2, 3; a = rows 0, 1; row 4 only in CE
    kl = (p * (np.log(p) - np.log(q))).sum() / 2
    want = _ce(z, y).mean() + 2.0 * kl
    got = ppb_loss(torch.from_numpy(z), torch.from_numpy(y), beta=2.0)
    assert got.item() == pytest.approx(want, rel=1e-5)
    one = ppb_loss(torch.from_numpy(z[:1]), torch.from_numpy(y[:1]), beta=2.0)
    assert one.item() == pytest.approx(_ce(z[:1], y[:1])[0], rel=1e-6)


# --- RelaxLoss ----------------------------------------------------------------------------------


Z = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # row 0 correct (class 0), row 1 wrong
Y = np.array([0, 0])


def _relax(epoch: int, alpha: float, upper: float = 1.0) -> float:
    return relaxloss_loss(
        torch.tensor(Z), torch.tensor(Y), epoch=epoch, alpha=alpha, upper=upper
    ).item()


def test_relaxloss_even_epochs_are_absolute_distance_to_alpha():
    ce = _ce(Z, Y).mean()
    assert _relax(0, 1.0) == pytest.approx(abs(ce - 1.0))
    assert _relax(4, 0.1) == pytest.approx(abs(ce - 0.1))


def test_relaxloss_odd_epoch_above_alpha_is_plain_ce():
    ce = _ce(Z, Y).mean()  # ≈ 0.78
    assert ce > 0.5
    assert _relax(1, 0.5) == pytest.approx(ce)


@pytest.mark.parametrize("upper", [1.0, 0.3])
def test_relaxloss_posterior_flattening_by_hand(upper):
    p = _softmax(Z)
    ce_rows = _ce(Z, Y)
    p_true = np.clip(p[np.arange(2), Y], 0.0, upper)
    soft = np.empty_like(p)
    for i in range(2):
        soft[i] = (1 - p_true[i]) / 2  # spread over the C − 1 = 2 other classes
        soft[i, Y[i]] = p_true[i]
    ce_soft = -(soft * np.log(p)).sum(1)
    correct = np.array([1.0, 0.0])
    want = ((1 - correct) * ce_soft - ce_rows).mean()
    assert _relax(3, 2.0, upper) == pytest.approx(want, rel=1e-6)


def test_relaxloss_soft_targets_are_not_detached():
    z = torch.tensor(Z, requires_grad=True)
    relaxloss_loss(z, torch.tensor(Y), epoch=1, alpha=2.0).backward()
    z2 = torch.tensor(Z, requires_grad=True)
    logp = F.log_softmax(z2, 1)
    soft = F.one_hot(torch.tensor(Y), 3).double()
    p_true = logp.exp()[torch.arange(2), torch.tensor(Y)]
    soft = soft * p_true[:, None] + (1 - soft) * ((1 - p_true) / 2)[:, None]
    ref = (
        (torch.tensor([0.0, 1.0]) * -(soft * logp).sum(1))
        - F.cross_entropy(z2, torch.tensor(Y), reduction="none")
    ).mean()
    ref.backward()
    assert torch.allclose(z.grad, z2.grad)


# --- ADV ----------------------------------------------------------------------------------------


def _tiny(n: int = 60, d: int = 12, c: int = 3, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen)
    y = torch.randint(0, c, (n,), generator=gen)
    model = build_model("fc", num_classes=c, in_features=d, width=0.125, seed=seed)
    return model, x, y


@pytest.mark.parametrize("every, attack_steps", [(1, 12), (2, 6), (3, 6)])
def test_adv_alternates_k_attack_steps_before_classifier_steps(every, attack_steps):
    model, x, y = _tiny()
    hooks = ADVHooks(theta=2.0, k_attack=3, attack_every=every)
    config = TrainConfig(batch_size=10, max_epochs=1)
    fit(model, x, y, torch.arange(40), torch.arange(40, 60), config=config, hooks=hooks)
    assert hooks.counts == {"classifier": 4, "attack": attack_steps}


@pytest.mark.parametrize("mode, attack_steps", [("nasr", 2), ("official", 2)])
def test_adv_classifier_loss_is_ce_plus_theta_log_membership(mode, attack_steps):
    model, x, y = _tiny()
    hooks = ADVHooks(theta=2.0, k_attack=attack_steps, mode=mode)
    train, dev = torch.arange(40), torch.arange(40, 60)
    hooks.bind(model, x, y, train, dev)
    hooks.make_optimizers(model, TrainConfig())
    batch = next(hooks.batch_plan(0, train, batch_size=8, generator=torch.Generator()))
    model.eval()
    logits = model(x[batch.rows])
    got = hooks.loss(logits, y[batch.rows], batch, 0)
    assert hooks.counts["attack"] == attack_steps
    h = hooks._adversary.model.eval()
    feats = torch.cat([F.softmax(logits, 1), F.one_hot(y[batch.rows], 3).float()], 1)
    want = F.cross_entropy(logits, y[batch.rows]) + 2.0 * F.log_softmax(h(feats), 1)[:, 1].mean()
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
    h.zero_grad(set_to_none=True)  # what the attack steps left
    got.backward()
    assert all(p.grad is None for p in h.parameters())  # the privacy term trains f only


def test_adv_inference_model_persists_across_rounds():
    model, x, y = _tiny()
    made = []

    def factory():
        made.append(ADVHooks(theta=1.0, k_attack=1))
        return made[-1]

    config = TrainConfig(batch_size=20, max_epochs=1)
    prune_and_finetune(
        model, x, y, torch.arange(40), torch.arange(40, 60), arch="fc",
        approach="l1_unstructured", rate=0.5, rounds=2, config=config, hooks_factory=factory,
    )  # fmt: skip
    assert made[0]._adversary is made[1]._adversary is not None


@pytest.mark.parametrize("epochs", [1, 3])
def test_adv_official_takes_k_attack_steps_and_one_classifier_step_per_epoch(epochs):
    model, x, y = _tiny()
    hooks = ADVHooks(theta=2.0, mode="official")  # k_attack = 7, the official count
    config = TrainConfig(batch_size=10, max_epochs=epochs, patience=10)
    result, _ = fit(model, x, y, torch.arange(40), torch.arange(40, 60), config=config, hooks=hooks)
    assert hooks.counts == {"classifier": epochs, "attack": 7 * epochs}
    assert [h["n_train"] for h in result.history] == [10] * epochs  # one batch of B rows an epoch


def test_adv_official_epoch_is_one_batch_of_distinct_training_rows():
    model, x, y = _tiny()
    hooks = ADVHooks(theta=2.0, mode="official")
    train = torch.arange(40)
    hooks.bind(model, x, y, train, torch.arange(40, 60))
    plan = list(hooks.batch_plan(0, train, batch_size=10, generator=torch.Generator()))
    assert len(plan) == 1 and len(plan[0].rows) == 10
    assert len(set(plan[0].rows.tolist())) == 10 and plan[0].rows.max() < 40


def test_adv_nasr_mode_is_the_default_and_unchanged():
    model, x, y = _tiny()
    hooks = ADVHooks(theta=2.0, k_attack=3, mode="nasr")
    assert ADVHooks(theta=2.0).mode == "nasr"
    config = TrainConfig(batch_size=10, max_epochs=2, patience=10)
    result, _ = fit(model, x, y, torch.arange(40), torch.arange(40, 60), config=config, hooks=hooks)
    assert hooks.counts == {"classifier": 8, "attack": 24}
    assert [h["n_train"] for h in result.history] == [40, 40]


def _attack_grads(theta: float, mode: str) -> list[torch.Tensor]:
    """Gradients of the inference model after one attack step from a fixed state and batch."""
    model, x, y = _tiny()
    torch.manual_seed(0)
    hooks = ADVHooks(theta=theta, k_attack=1, mode=mode)
    hooks.bind(model, x, y, torch.arange(40), torch.arange(40, 60))
    hooks.make_optimizers(model, TrainConfig())
    adversary = hooks._ensure_adversary(3)
    torch.manual_seed(1)  # the same member and reference batches, the same dropout
    hooks._attack_step(adversary, 8)
    return [p.grad.clone() for p in adversary.model.parameters()]


def test_adv_official_scales_the_attack_loss_by_theta_and_nasr_does_not():
    one, two = _attack_grads(1.0, "official"), _attack_grads(2.0, "official")
    assert any(g.abs().sum() > 0 for g in one)
    for g1, g2 in zip(one, two, strict=True):
        assert torch.allclose(g2, 2.0 * g1, rtol=1e-5, atol=1e-8)
    for g1, g2 in zip(_attack_grads(1.0, "nasr"), _attack_grads(2.0, "nasr"), strict=True):
        assert torch.equal(g1, g2)
    for g1, g2 in zip(one, _attack_grads(1.0, "nasr"), strict=True):
        assert torch.equal(g1, g2)  # θ = 1: both modes take the same step


# --- validation and end to end ------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: PPBHooks(beta=-1.0),
        lambda: RelaxLossHooks(alpha=-0.5),
        lambda: RelaxLossHooks(alpha=1.0, upper=1.5),
        lambda: ADVHooks(theta=1.0, k_attack=0),
        lambda: ADVHooks(theta=1.0, reference="test"),
        lambda: ADVHooks(theta=True),
        lambda: ADVHooks(theta=1.0, mode="paper"),
        lambda: ADVHooks(theta=1.0, mode="official", attack_every=2),
    ],
)
def test_bad_settings_raise_params_error(make):
    with pytest.raises(ParamsError):
        make()


@pytest.mark.parametrize(
    "factory",
    [
        lambda: PPBHooks(beta=4.0),
        lambda: RelaxLossHooks(alpha=1.0),
        lambda: ADVHooks(theta=2.0, k_attack=2),
        lambda: ADVHooks(theta=2.0, k_attack=2, mode="official"),
    ],
    ids=["ppb", "relaxloss", "adv", "adv_official"],
)
def test_baselines_run_through_prune_and_finetune(factory):
    model, x, y = _tiny(n=90)
    config = TrainConfig(batch_size=16, max_epochs=3, patience=5)
    result = prune_and_finetune(
        model, x, y, torch.arange(60), torch.arange(60, 90), arch="fc",
        approach="l1_unstructured", rate=0.6, rounds=3, config=config, hooks_factory=factory,
    )  # fmt: skip
    assert [r.fit.epochs_run for r in result.rounds] == [3, 3, 3]
    assert all(np.isfinite(h["train_loss"]) for r in result.rounds for h in r.fit.history)
    mods = prunable_modules(model, "fc", "l1_unstructured")
    for name, m in mods:
        assert layer_sparsity(model, [(name, m)])[name] == pytest.approx(
            int(m.weight.numel() * 0.6) / m.weight.numel()
        )


def test_adv_flushes_denormals_during_its_fit_only():
    denormal = torch.tensor([1e-39])
    seen = []

    class Probe(ADVHooks):
        def after_step(self, model, batch, epoch):
            seen.append(float((denormal * 1.0)[0]))  # 0 while denormals are flushed
            super().after_step(model, batch, epoch)

    model, x, y = _tiny()
    hooks = Probe(theta=2.0, k_attack=1)
    config = TrainConfig(batch_size=10, max_epochs=1)
    fit(model, x, y, torch.arange(40), torch.arange(40, 60), config=config, hooks=hooks)
    assert seen and all(v == 0.0 for v in seen)
    assert float((denormal * 1.0)[0]) > 0  # PyTorch's default restored after the fit
