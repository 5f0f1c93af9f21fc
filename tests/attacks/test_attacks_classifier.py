"""Classifier attacks, SAMIA and sensitivity: hand-worked features, planted and absent signals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from wemem.attacks.classifier import (
    AttackMLP,
    features,
    mlp_attack,
    train_settings,
)
from wemem.attacks.metrics import roc_auc
from wemem.attacks.samia import SAMIA, samia_attack, samia_tokens
from wemem.attacks.sensitivity import sensitivity
from wemem.attacks.shokri import _fit_groups, shokri_attack
from wemem.errors import ParamsError

# A larger step than the paper's 1e-3 so that a few epochs on small data suffice.
FAST = {"epochs": 4, "lr": 0.05, "device": "cpu"}


def synth(rng: np.random.Generator, n: int, c: int, boost: float, sens_scale: float) -> tuple:
    """Posteriors whose true-class logit is raised by ~N(boost, 1); gamma sensitivities."""
    y = rng.integers(0, c, n)
    logits = rng.normal(0.0, 1.0, (n, c))
    logits[np.arange(n), y] += rng.normal(boost, 1.0, n)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return p.astype(np.float32), y, rng.gamma(2.0, sens_scale, (n, c)).astype(np.float32)


def attack(kind: str, data: list, **kw) -> tuple[np.ndarray, np.ndarray]:
    if kind == "samia":
        return samia_attack(*data, **kw)
    if kind == "shokri":
        return shokri_attack(*data, **kw)
    return mlp_attack(kind, *data, **kw)


def scenario(signal: bool, n: int, c: int = 6, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    member, non = ((3.0, 0.5), (1.0, 1.0)) if signal else ((2.0, 1.0), (2.0, 1.0))
    # Independent draws: shadow members, shadow non-members, victim members, victim non-members.
    return [synth(rng, n, c, *params) for params in (member, non, member, non)]


# --- features -------------------------------------------------------------------------------------

P = np.array([[0.1, 0.6, 0.3, 0.0], [0.25, 0.25, 0.4, 0.1]], dtype=np.float32)
Y = np.array([2, 0])
S = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]], dtype=np.float32)


def test_features_hand_worked():
    np.testing.assert_array_equal(features("nn", P, Y), P)
    np.testing.assert_allclose(features("top3_nn", P, Y), [[0.6, 0.3, 0.1], [0.4, 0.25, 0.25]])
    onehot = [[0, 0, 1, 0], [1, 0, 0, 0]]
    np.testing.assert_array_equal(features("cl_nn", P, Y), np.hstack([P, onehot]))
    f = features("nn_sens", P, Y, S)
    assert f.shape == (2, 12) and f.dtype == np.float32
    np.testing.assert_array_equal(f, np.hstack([P, S, onehot]))


def test_features_errors():
    with pytest.raises(ParamsError, match="unknown"):
        features("nope", P, Y)
    with pytest.raises(ParamsError, match="sens"):
        features("nn_sens", P, Y)
    with pytest.raises(ValueError):
        features("nn", P, Y[:1])


def test_samia_tokens_layout():
    c = 4
    feats = torch.from_numpy(features("nn_sens", P, Y, S))
    tokens = samia_tokens(feats, c)
    assert tokens.shape == (2, c, 3)
    for i in range(2):
        for k in range(c):
            assert tokens[i, k].tolist() == pytest.approx([P[i, k], S[i, k], float(Y[i] == k)])
    with pytest.raises(ValueError, match="3·C"):
        samia_tokens(feats[:, :-1], c)


def test_samia_model_shape_and_token_mixing():
    torch.manual_seed(0)
    model = SAMIA(5).eval()
    x = torch.rand(7, 15)
    assert model(x).shape == (7, 2)
    assert len(model.encoder.layers) == 3 and model.encoder.layers[0].self_attn.num_heads == 4
    # The encoder sees C tokens: permuting classes jointly in all three blocks permutes tokens.
    perm = torch.tensor([3, 1, 4, 0, 2])
    cols = torch.cat([perm, perm + 5, perm + 10])
    h1 = model.encoder(torch.nn.functional.gelu(model.embed(samia_tokens(x, 5))))
    h2 = model.encoder(torch.nn.functional.gelu(model.embed(samia_tokens(x[:, cols], 5))))
    torch.testing.assert_close(h2, h1[:, perm])


def test_attack_mlp_architecture():
    model = AttackMLP(10)
    linears = [m for m in model.net if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (10, 512),
        (512, 256),
        (256, 128),
        (128, 2),
    ]
    kinds = [type(m).__name__ for m in model.net]
    assert kinds.count("Dropout") == 2 and kinds.index("Dropout") == 2 and kinds[5] == "Dropout"
    assert all(float(m.bias.detach().abs().max()) == 0 for m in linears)


def test_train_settings_validation():
    assert train_settings()["milestones"] == (50, 75) and train_settings()["epochs"] == 100
    with pytest.raises(ParamsError, match="unknown"):
        train_settings(epoch=3)
    with pytest.raises(ParamsError, match="epochs"):
        train_settings(epochs=0)
    with pytest.raises(ParamsError, match="lr"):
        train_settings(lr=-1.0)


# --- attacks on synthetic posteriors --------------------------------------------------------------

KINDS = ["nn", "top3_nn", "cl_nn", "nn_sens", "samia", "shokri"]


@pytest.mark.parametrize("kind", KINDS)
def test_planted_signal_beats_chance(kind):
    s_in, s_out = attack(kind, scenario(True, 600), seed=1, **FAST)
    assert s_in.shape == (600,) and s_out.shape == (600,)
    assert np.all((s_in >= 0) & (s_in <= 1))
    assert roc_auc(s_in, s_out) > 0.6


@pytest.mark.parametrize("kind", KINDS)
def test_no_signal_stays_near_chance(kind):
    s_in, s_out = attack(kind, scenario(False, 1000, seed=2), seed=1, **FAST)
    assert abs(roc_auc(s_in, s_out) - 0.5) < 0.07


@pytest.mark.parametrize("kind", ["nn", "samia", "shokri"])
def test_seeded_and_leaves_global_rng(kind):
    data = scenario(True, 200)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = attack(kind, data, seed=5, epochs=1, device="cpu")
    assert torch.rand(1) == before  # the global RNG did not move
    b = attack(kind, data, seed=5, epochs=1, device="cpu")
    c = attack(kind, data, seed=6, epochs=1, device="cpu")
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])


def test_fit_groups_matches_separate_sgd_runs():
    """Batched per-class training = one torch.optim.SGD run per group, masked steps included."""
    torch.manual_seed(0)
    d, h = 3, 4
    # Group 0: 8 copies of one sample (4 steps/epoch at batch 2); group 1: 2 copies (1 step).
    # Identical samples make every batch the same, so shuffling cannot matter.
    x = torch.cat([torch.randn(1, d).repeat(8, 1), torch.randn(1, d).repeat(2, 1)])
    y = torch.tensor([1] * 8 + [0] * 2)
    groups = [torch.arange(8), torch.arange(8, 10)]
    init = [torch.randn(2, d, h), torch.randn(2, 1, h), torch.randn(2, h, 2), torch.randn(2, 1, 2)]
    cfg = train_settings(epochs=3, milestones=(2,), lr=0.1, batch_size=2)
    got = _fit_groups(x, y, groups, hidden=h, cfg=cfg, init=init)
    for g, steps in ((0, 4), (1, 1)):
        params = [p[g].clone().requires_grad_(True) for p in init]
        opt = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[2], gamma=0.1)
        xb, yb = x[groups[g][:2]], y[groups[g][:2]]
        for _ in range(3):
            for _ in range(steps):
                w1, b1, w2, b2 = params
                loss = nn.functional.cross_entropy(torch.relu(xb @ w1 + b1) @ w2 + b2, yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
            sched.step()
        for mine, ref in zip(got, params, strict=True):
            torch.testing.assert_close(mine[g], ref.detach(), rtol=1e-5, atol=1e-6)


def test_shokri_falls_back_for_classes_missing_in_shadows():
    rng = np.random.default_rng(3)
    sh_in, sh_out, t_in, t_out = (list(d[:2]) for d in scenario(True, 300, c=4, seed=3))
    sh_out[1] = np.where(sh_out[1] == 3, 2, sh_out[1])  # class 3: shadow members only
    t_in[1] = rng.integers(0, 4, 300)
    s_in, s_out = shokri_attack(sh_in, sh_out, t_in, t_out, seed=0, epochs=2, device="cpu")
    assert np.isfinite(s_in).all() and np.isfinite(s_out).all()
    assert 0 < s_in[t_in[1] == 3].min() and s_in.max() < 1


# --- sensitivity ----------------------------------------------------------------------------------


class Recorder(nn.Module):
    """Wraps a model and records every input batch."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.seen = model, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        return self.model(x)


def test_sensitivity_linear_softmax_matches_expected_jacobian_norm():
    """For small ε, |p_c(x + εu) − p_c(x)|/ε ≈ |J_c·u| with E|J_c·u| = √(2/π)·‖J_c‖."""
    torch.manual_seed(0)
    lin = nn.Linear(5, 4)
    x = torch.randn(3, 5)
    sens = sensitivity(lin, x, np.arange(3), m=20000, seed=1)
    for i in range(3):
        p = torch.softmax(lin(x[i]), 0).detach()
        jac = (torch.diag(p) - torch.outer(p, p)) @ lin.weight.detach()  # (C, d)
        expected = math.sqrt(2 / math.pi) * jac.norm(dim=1)
        torch.testing.assert_close(sens[i], expected, rtol=0.04, atol=1e-6)


def test_sensitivity_one_forward_per_batch_and_formula():
    torch.manual_seed(0)
    model = Recorder(nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)))
    x = torch.randn(10, 6)
    rows = np.array([4, 0, 7])
    m, eps = 5, 1e-2
    probs, sens = sensitivity(model, x, rows, m=m, eps=eps, batch_size=2, return_probs=True)
    assert [len(b) for b in model.seen] == [(m + 1) * 2, (m + 1) * 1]
    first = model.seen[0].view(m + 1, 2, 6)
    torch.testing.assert_close(first[0], x[rows[:2]])  # clean copy first
    with torch.no_grad():
        p = torch.softmax(model.model(first), dim=-1)
    torch.testing.assert_close(sens[:2], (p[1:] - p[0]).abs().mean(0) / eps)
    torch.testing.assert_close(probs[:2], p[0])


def test_sensitivity_images_shape_seed_and_mode():
    torch.manual_seed(0)
    cnn = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)
    )
    cnn.train()
    x = torch.randn(9, 3, 8, 8)
    a = sensitivity(cnn, x, np.arange(9), m=3, seed=0, batch_size=4)
    assert a.shape == (9, 5) and a.dtype == torch.float32 and bool((a >= 0).all())
    assert cnn.training  # mode restored
    torch.testing.assert_close(a, sensitivity(cnn, x, np.arange(9), m=3, seed=0, batch_size=4))
    assert not torch.equal(a, sensitivity(cnn, x, np.arange(9), m=3, seed=1, batch_size=4))
    with pytest.raises(ParamsError, match="m"):
        sensitivity(cnn, x, np.arange(9), m=0)


def test_sensitivity_at_positions_equals_the_whole_computation_there():
    torch.manual_seed(0)
    cnn = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)
    )
    x = torch.randn(40, 3, 8, 8)
    rows = np.random.default_rng(1).permutation(40)[:30]
    everything = Recorder(cnn)
    whole = sensitivity(everything, x, rows, m=3, seed=2, batch_size=8)
    positions = np.array([0, 5, 6, 17, 29])  # in the 1st, 1st, 1st, 3rd and last batch
    picked = Recorder(cnn)
    part = sensitivity(picked, x, rows, m=3, seed=2, batch_size=8, positions=positions)
    # only the picked inputs are forwarded: batches 1, 3 and 4 (the 2nd has none) ...
    assert [len(b) for b in picked.seen] == [4 * 3, 4 * 1, 4 * 1]
    # ... each clean and perturbed exactly as in the whole computation (the same noise) ...
    full = torch.cat([b.view(4, -1, 3, 8, 8) for b in everything.seen], dim=1)
    got = torch.cat([b.view(4, -1, 3, 8, 8) for b in picked.seen], dim=1)
    assert torch.equal(got, full[:, positions])
    # ... so the values are the whole computation's up to the forward pass's float rounding in
    # another batch size (divided by eps = 1e-3: float32's 6e-8 on a probability becomes 6e-5)
    torch.testing.assert_close(part, whole[positions], rtol=1e-3, atol=1e-4)
    # another pick draws other noise for a row than the whole computation would give it elsewhere
    shifted = sensitivity(cnn, x, rows[1:], m=3, seed=2, batch_size=8, positions=[4])
    assert not torch.allclose(shifted[0], whole[5])
    with pytest.raises(ParamsError, match="positions"):
        sensitivity(cnn, x, rows, m=3, positions=[5, 0])
    with pytest.raises(ParamsError, match="positions"):
        sensitivity(cnn, x, rows, m=3, positions=[30])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_sensitivity_is_full_fp32_and_attacks_run():
    """On CUDA (TF32 convolutions by default) the result matches a float64 recomputation."""
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 5))
    model = Recorder(cnn).cuda()
    x = torch.randn(16, 3, 8, 8)
    sens = sensitivity(model, x, np.arange(16), m=10).cpu().double()
    batch = model.seen[0].cpu().double().view(11, 16, 3, 8, 8)
    with torch.no_grad():
        p = torch.softmax(cnn.cpu().double()(batch.flatten(0, 1)), 1).view(11, 16, 5)
    ref = (p[1:] - p[0]).abs().mean(0) / 1e-3
    torch.testing.assert_close(sens, ref, rtol=1e-2, atol=1e-3 * float(ref.max()))
    for kind in ("nn", "samia", "shokri"):
        s_in, _ = attack(kind, scenario(True, 300), seed=0, epochs=1, device="cuda")
        assert np.isfinite(s_in).all()


def test_samia_scores_do_not_depend_on_the_scoring_batch():
    # samia_attack scores SCORE_BATCH samples at a time: each score is the same as in one batch up
    # to float32 rounding (the BLAS kernels change with the batch: bit-identical on the AMD EPYC,
    # the last bits differ on the Intel Xeon); a bug in the chunking would be far above 1e-6
    from wemem.attacks import samia
    from wemem.attacks.classifier import member_proba

    torch.manual_seed(0)
    model = SAMIA(30).eval()
    x = np.random.default_rng(0).random((samia.SCORE_BATCH * 3 + 5, 90)).astype(np.float32)
    whole = member_proba(model, x, batch_size=len(x))
    chunked = member_proba(model, x, batch_size=samia.SCORE_BATCH)
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-6)
    assert np.abs(whole - whole[::-1]).max() > 1e-3  # the scores differ across samples
