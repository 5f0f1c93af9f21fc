"""LiRA: the statistic on hand-worked posteriors and the planted Gaussian case with known TPR."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from wemem.attacks.lira import PROB_FLOOR, lira_offline, lira_online, phi, shadow_phi_on
from wemem.attacks.metrics import roc_auc, tpr_at_fpr
from wemem.errors import ParamsError


def norm_cdf(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def norm_ppf(q: float) -> float:
    lo, hi = -10.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if norm_cdf(mid) < q else (lo, mid)
    return (lo + hi) / 2


def test_phi_hand_worked_and_clamped():
    probs = np.array([[0.8, 0.1, 0.1], [1.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.2, 0.5, 0.3]])
    labels = np.array([0, 0, 0, 2])
    floor = math.log(PROB_FLOOR)
    np.testing.assert_allclose(
        phi(probs, labels), [math.log(4), -floor, floor, math.log(0.3 / 0.7)]
    )


def planted(rng: np.random.Generator, n: int, s: int, shift: float) -> tuple:
    """Per-sample means μ_i ~ N(0, 3²); OUT values N(μ_i, 1); members shifted by ``shift``."""
    mu_in, mu_out = rng.normal(0, 3, n), rng.normal(0, 3, n)
    t_in, t_out = mu_in + shift + rng.normal(0, 1, n), mu_out + rng.normal(0, 1, n)
    sh_in = mu_in + rng.normal(0, 1, (s, n))
    sh_out = mu_out + rng.normal(0, 1, (s, n))
    return t_in, t_out, sh_in, sh_out


def test_offline_recovers_analytic_tpr_at_fixed_fpr():
    n, s, shift, alpha = 20000, 32, 2.0, 0.01
    t_in, t_out, sh_in, sh_out = planted(np.random.default_rng(0), n, s, shift)
    z = lira_offline(np.concatenate([t_in, t_out]), np.hstack([sh_in, sh_out]))
    # z ∝ φ − μ̂ with μ̂ the mean of S draws: both classes have variance 1 + 1/S.
    scale = math.sqrt(1 + 1 / s)
    expected = 1 - norm_cdf(norm_ppf(1 - alpha) - shift / scale)
    assert tpr_at_fpr(z[:n], z[n:], alpha) == pytest.approx(expected, abs=0.03)
    assert roc_auc(z[:n], z[n:]) == pytest.approx(norm_cdf(shift / scale / math.sqrt(2)), abs=0.01)
    # Without the per-sample reference the spread of the μ_i hides the shift.
    assert tpr_at_fpr(t_in, t_out, alpha) < expected / 3


def test_offline_per_sample_variance_and_errors():
    t_in, t_out, sh_in, sh_out = planted(np.random.default_rng(1), 5000, 16, 2.0)
    z = lira_offline(
        np.concatenate([t_in, t_out]), np.hstack([sh_in, sh_out]), global_variance=False
    )
    assert roc_auc(z[:5000], z[5000:]) > 0.85
    with pytest.raises(ParamsError, match="S >= 2"):
        lira_offline(t_in, sh_in[:1])
    with pytest.raises(ParamsError, match="shape"):
        lira_offline(t_in, sh_in[:, :10])


def test_online_uses_in_and_out_models():
    rng = np.random.default_rng(2)
    n, s = 5000, 16
    mu = rng.normal(0, 3, 2 * n)
    target = mu + rng.normal(0, 1, 2 * n)
    target[:n] += 2.0
    phi_in = mu + 2.0 + rng.normal(0, 1, (s, 2 * n))
    phi_out = mu + rng.normal(0, 1, (s, 2 * n))
    score = lira_online(target, phi_in, phi_out)
    assert roc_auc(score[:n], score[n:]) == pytest.approx(norm_cdf(2 / math.sqrt(2)), abs=0.02)


def test_shadow_phi_on_matches_phi_of_softmax():
    torch.manual_seed(0)
    models = [nn.Linear(4, 3) for _ in range(2)]
    x = torch.randn(10, 4)
    rows, labels = np.array([3, 1, 8]), np.array([0, 2, 1])
    got = shadow_phi_on(models, x, rows, labels)
    assert got.shape == (2, 3)
    for s, model in enumerate(models):
        probs = torch.softmax(model(x[rows]), 1).detach().numpy()
        np.testing.assert_allclose(got[s], phi(probs, labels), rtol=1e-5)
