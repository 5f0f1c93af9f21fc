"""RMIA: the vectorised scores against a slow transcription of the equations, a planted signal of
known AUC, the shadow-only fit of the offline coefficient a, and bad parameters."""

from __future__ import annotations

import math

import numpy as np
import pytest

from wemem.attacks import lira
from wemem.attacks.metrics import roc_auc
from wemem.attacks.rmia import (
    DEFAULT_A_GRID,
    PROB_FLOOR,
    fit_offline_a,
    rmia_scores,
    true_class_prob,
)
from wemem.errors import ParamsError


def norm_cdf(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


# --- slow transcription -------------------------------------------------------------------------


def slow_marginal(refs: list[float], a: float | None) -> float:
    """Pr(·) from one sample's reference probabilities, floored, summed in ascending order."""
    mean = sum(sorted(max(v, PROB_FLOOR) for v in refs)) / len(refs)
    return mean if a is None else 0.5 * ((1.0 + a) * mean + (1.0 - a))


def slow_lr(px, refs_x, pz, refs_z, a) -> list[list[float]]:
    """LR(x_i, z_j) = (Pr(x|θ)/Pr(x)) / (Pr(z|θ)/Pr(z)) for every pair, by a double loop."""
    table = []
    for i in range(len(px)):
        row = []
        for j in range(len(pz)):
            ratio_x = max(px[i], PROB_FLOOR) / slow_marginal(refs_x[i], a)
            ratio_z = max(pz[j], PROB_FLOOR) / slow_marginal(refs_z[j], a)
            row.append(ratio_x / ratio_z)
        table.append(row)
    return table


def slow_scores(px, refs_x, pz, refs_z, gamma, a) -> np.ndarray:
    """Score(x_i) = #{j : LR(x_i, z_j) >= γ} / m; ``refs_*[i]`` is sample i's list of references."""
    lr = slow_lr(px, refs_x, pz, refs_z, a)
    return np.array([sum(v >= gamma for v in row) / len(pz) for row in lr])


def columns(m: np.ndarray) -> list[list[float]]:
    return [list(map(float, m[:, i])) for i in range(m.shape[1])]


# --- inputs -------------------------------------------------------------------------------------

COARSE = np.array([0.0, 0.1, 0.2, 0.25, 0.5, 0.75, 0.9, 1.0])


def random_inputs(seed: int, kind: str, n: int = 50, m: int = 40, s: int = 4) -> tuple:
    """``(px, rx, pz, rz)``: continuous with some 0 / 1 entries, or drawn from a coarse grid;
    in both, some z are copies of some x (LR = 1 exactly) and some have half the target
    probability of an x with the same references (LR = 2 exactly)."""
    rng = np.random.default_rng(seed)
    if kind == "coarse":
        draw = lambda *shape: rng.choice(COARSE, size=shape)  # noqa: E731
    else:
        draw = lambda *shape: np.where(  # noqa: E731
            rng.random(shape) < 0.05, rng.choice([0.0, 1.0], size=shape), rng.random(shape)
        )
    px, rx, pz, rz = draw(n), draw(s, n), draw(m), draw(s, m)
    src = rng.choice(n, size=12, replace=False)
    pz[:6], rz[:, :6] = px[src[:6]], rx[:, src[:6]]
    pz[6:12], rz[:, 6:12] = px[src[6:]] / 2, rx[:, src[6:]]
    return px, rx, pz, rz


# --- a. against the slow transcription ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["continuous", "coarse"])
@pytest.mark.parametrize("gamma", [1.0, 2.0, 1.5])
@pytest.mark.parametrize("a", [None, 0.0, 0.3, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_slow_transcription(seed, a, gamma, kind):
    px, rx, pz, rz = random_inputs(seed, kind)
    got = rmia_scores(px, rx, pz, rz, gamma=gamma, a=a)
    want = slow_scores(list(px), columns(rx), list(pz), columns(rz), gamma, a)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


@pytest.mark.parametrize("kind", ["continuous", "coarse"])
def test_the_slow_cases_hold_exact_ties_and_extreme_probabilities(kind):
    """Non-vacuous: pairs with LR exactly γ occur for γ = 1 and 2, and so do p = 0 and p = 1."""
    px, rx, pz, rz = random_inputs(0, kind)
    lr = np.array(slow_lr(list(px), columns(rx), list(pz), columns(rz), 0.3))
    assert (lr == 1.0).sum() >= 6 and (lr == 2.0).sum() >= 6
    everything = np.concatenate([px, rx.ravel(), pz, rz.ravel()])
    assert (everything == 0.0).any() and (everything == 1.0).any()


def test_the_count_is_the_quotient_as_written_when_lr_is_gamma_up_to_rounding():
    """With references all 1, Pr(·) = 1 and the ratios are the probabilities themselves. For γ =
    fl(p_x / p_z), LR = γ is counted; for the next float above, it is not, even where the
    product form ``p_z <= fl(p_x / γ)`` says otherwise (about 1 case in 20, picked here)."""
    rng = np.random.default_rng(11)
    px, pz = 0.5 + 0.5 * rng.random(4000), 0.5 * rng.random(4000)
    at = px / pz
    above = np.nextafter(at, np.inf)
    disagree_at = np.flatnonzero(pz > px / at)[:20]
    disagree_above = np.flatnonzero(pz <= px / above)[:20]
    assert disagree_at.size == 20 and disagree_above.size == 20
    ones = np.ones((1, 1))
    for k in disagree_at:
        assert rmia_scores(px[k : k + 1], ones, pz[k : k + 1], ones, gamma=at[k]) == [1.0]
    for k in disagree_above:
        assert rmia_scores(px[k : k + 1], ones, pz[k : k + 1], ones, gamma=above[k]) == [0.0]


def test_offline_a_one_is_the_plain_mean_and_a_changes_scores():
    px, rx, pz, rz = random_inputs(3, "continuous")
    plain = rmia_scores(px, rx, pz, rz, gamma=1.0)
    np.testing.assert_array_equal(rmia_scores(px, rx, pz, rz, gamma=1.0, a=1.0), plain)
    assert not np.array_equal(rmia_scores(px, rx, pz, rz, gamma=1.0, a=0.0), plain)


def test_true_class_prob():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]], dtype=np.float32)
    got = true_class_prob(probs, np.array([0, 2, 1]))
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, np.float32([0.7, 0.8, 0.4]).astype(np.float64))
    with pytest.raises(ValueError, match="labels"):
        true_class_prob(probs, np.array([0, 3, 1]))
    with pytest.raises(ValueError, match="probs"):
        true_class_prob(probs[0], np.array([0]))
    assert PROB_FLOOR == lira.PROB_FLOOR


# --- e. invariances -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["continuous", "coarse"])
@pytest.mark.parametrize("a", [None, 0.3])
def test_invariant_to_order_of_population_and_references(kind, a):
    px, rx, pz, rz = random_inputs(4, kind, n=200, m=150, s=7)
    base = rmia_scores(px, rx, pz, rz, gamma=1.0, a=a)
    rng = np.random.default_rng(5)
    for _ in range(5):
        zp, sp, xp = rng.permutation(pz.size), rng.permutation(rx.shape[0]), rng.permutation(200)
        np.testing.assert_array_equal(
            rmia_scores(px, rx[sp], pz[zp], rz[sp][:, zp], gamma=1.0, a=a), base
        )
        np.testing.assert_array_equal(
            rmia_scores(px[xp], rx[:, xp], pz, rz, gamma=1.0, a=a), base[xp]
        )
    assert base.min() >= 0.0 and base.max() <= 1.0
    np.testing.assert_allclose(base * pz.size, np.round(base * pz.size), atol=1e-9)


# --- b. planted signal --------------------------------------------------------------------------


def planted(rng: np.random.Generator, n: int, s: int, m: int, delta: float, sigma: float):
    """log Pr(·|model) = μ_i + δ·[victim member] + σ ε, μ_i ~ U(−13, −3) shared by all models."""
    mu = rng.uniform(-13, -3, 2 * n)
    is_in = np.arange(2 * n) < n
    px = np.exp(mu + delta * is_in + sigma * rng.normal(size=2 * n))
    rx = np.exp(mu + sigma * rng.normal(size=(s, 2 * n)))
    mu_z = rng.uniform(-13, -3, m)
    pz = np.exp(mu_z + sigma * rng.normal(size=m))
    rz = np.exp(mu_z + sigma * rng.normal(size=(s, m)))
    return px, rx, pz, rz


def test_planted_signal_reaches_the_analytic_auc_and_beats_confidence():
    """Victim members' log-probability is higher by δ; references are OUT models.

    Simulation: for sample i with per-sample difficulty μ_i ~ U(−13, −3), shared by the victim
    and the S references, log Pr(x_i|θ) = μ_i + δ·[i member] + σ ε_i and
    log Pr(x_i|θ'_s) = μ_i + σ ε_is, all ε iid N(0, 1); population z likewise, never a member.
    (Every probability stays in (1e-7, 1], asserted, so neither the floor nor the bound acts;
    in this range log p and the logit differ by at most 0.05.)

    Derivation, a = None (here equal to a = 1): with M_i = (1/S) Σ_s exp(σ ε_is),
    Pr(x_i) = e^{μ_i} M_i, so r_i = Pr(x_i|θ)/Pr(x_i) has log r_i = δ·[i member] + D_i with
    D_i = σ ε_i − log M_i: the difficulty μ_i cancels exactly, and the D_i are iid whatever the
    membership. With γ = 1, Score(x) = F̂_z(r_x), the empirical distribution function of the
    population's r_z, non-decreasing in r_x, so the AUC of the scores is that of r up to pairs of
    x with no z between them (O(1/m) of the pairs): AUC = P(δ + D₁ > D₂). By the delta method
    Var(log M) ≈ Var(M)/E[M]² = (e^{σ²} − 1)/S, and D is close to Gaussian with variance
    v = σ² + (e^{σ²} − 1)/S, hence AUC ≈ Φ(δ/√(2v)); with σ = δ = 0.5 and S = 64,
    v = 0.2544 and AUC ≈ 0.758 (S → ∞: Φ(1/√2) = 0.760). A plain confidence threshold ranks by
    log Pr(x|θ) itself, of variance σ² + Var(μ) = 0.25 + 10²/12, so its AUC is
    Φ(0.5/√(2·8.58)) = 0.548: large offsets hide the signal that the references recover.

    Tolerance: the Hanley–McNeil standard error of an AUC near 0.76 with 20,000 members and
    20,000 non-members is 0.0024, and the delta-method error is O(1/S²) < 0.001, so 0.012
    (5 standard errors) fails only for a real error.
    """
    n, s, m, delta, sigma = 20_000, 64, 10_000, 0.5, 0.5
    px, rx, pz, rz = planted(np.random.default_rng(0), n, s, m, delta, sigma)
    everything = np.concatenate([px, rx.ravel(), pz, rz.ravel()])
    assert everything.min() > PROB_FLOOR and everything.max() <= 1.0
    score = rmia_scores(px, rx, pz, rz, gamma=1.0)
    v = sigma**2 + (math.exp(sigma**2) - 1) / s
    auc = roc_auc(score[:n], score[n:])
    assert auc == pytest.approx(norm_cdf(delta / math.sqrt(2 * v)), abs=0.012)
    confidence_auc = roc_auc(px[:n], px[n:])
    assert confidence_auc == pytest.approx(
        norm_cdf(delta / math.sqrt(2 * (sigma**2 + 100 / 12))), abs=0.012
    )
    assert auc > confidence_auc + 0.15
    # A non-member is exchangeable with the population: its score is about uniform on [0, 1].
    assert score[n:].mean() == pytest.approx(0.5, abs=0.01)


# --- c. fitting a on shadows --------------------------------------------------------------------


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def shadows_with_in_law(a_true: float, seed: int, n: int = 4000, s: int = 8, m: int = 2000):
    """Shadows on random halves of a pool: OUT probability q = sigmoid(μ_i + ε), IN probability
    a_true·q + 1 − a_true, so Pr_IN = a_true·Pr_OUT + 1 − a_true and the OUT mean underestimates
    Pr(x) = ½(Pr_IN + Pr_OUT) by the offline formula's own law, with coefficient a_true."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(0, 2, n)
    member = rng.random((s, n)) < 0.5
    q = sigmoid(mu + rng.normal(size=(s, n)))
    probs = np.where(member, a_true * q + 1 - a_true, q)
    probs_z = sigmoid(rng.normal(0, 2, m) + rng.normal(size=(s, m)))
    return probs, member, probs_z


@pytest.mark.parametrize(("a_true", "low", "high"), [(0.0, 0.0, 0.2), (0.9, 0.7, 1.0)])
def test_fit_offline_a_lands_at_the_right_end(a_true, low, high):
    """Strong memorisation (IN ≈ 1, a_true = 0): the plain OUT mean (a = 1) is wrong and is not
    chosen; weak memorisation (a_true = 0.9): a = 0, which hardly calibrates, is not chosen."""
    probs, member, probs_z = shadows_with_in_law(a_true, seed=1)
    fit = fit_offline_a(probs, member, gamma=1.0, probs_z=probs_z)
    assert low <= fit.a <= high
    np.testing.assert_array_equal(fit.table[:, 0], DEFAULT_A_GRID)
    assert fit.table[np.argmax(fit.table[:, 1]), 0] == fit.a
    wrong_end = -1 if a_true == 0.0 else 0
    assert fit.table[:, 1].max() > fit.table[wrong_end, 1] + 0.02


def test_fit_offline_a_follows_its_protocol_on_a_constructed_case():
    """Only shadow arrays go in (there is no victim argument). The table equals the protocol
    computed by the slow transcription: pseudo-target s, references of sample i = shadows t ≠ s
    with member[t, i] False, default population = every other never-trained-on sample."""
    rng = np.random.default_rng(7)
    s, n = 3, 40
    probs = rng.choice(np.linspace(0, 1, 21), size=(s, n))
    member = rng.random((s, n)) < 0.45
    member[:, :9] = False
    frozen = (probs.copy(), member.copy())
    grid = [0.0, 0.5, 0.25, 1.0]
    fit = fit_offline_a(probs, member, gamma=1.0, grid=grid)
    np.testing.assert_array_equal(probs, frozen[0])
    np.testing.assert_array_equal(member, frozen[1])
    pop = list(np.flatnonzero(~member.any(axis=0))[::2])
    targets = [i for i in range(n) if i not in pop]
    rows = []
    for a in sorted(grid):
        aucs = []
        for t in range(s):
            others = [u for u in range(s) if u != t]
            xs = [i for i in targets if any(not member[u, i] for u in others)]
            refs_x = [[probs[u, i] for u in others if not member[u, i]] for i in xs]
            refs_z = [[probs[u, j] for u in others] for j in pop]
            sc = slow_scores(probs[t, xs], refs_x, probs[t, pop], refs_z, 1.0, a)
            is_in = member[t, xs]
            if is_in.any() and not is_in.all():
                aucs.append(roc_auc(sc[is_in], sc[~is_in]))
        rows.append((a, np.mean(aucs)))
    np.testing.assert_allclose(fit.table, rows, rtol=0, atol=1e-12)
    assert fit.a == rows[int(np.argmax([r[1] for r in rows]))][0]


def test_fit_offline_a_ties_go_to_the_smallest_a():
    """References that give every sample the same probability make Pr(·) one constant, so the
    scores, and the AUCs, are the same for every a."""
    rng = np.random.default_rng(3)
    probs = np.full((4, 300), 0.5)
    member = rng.random((4, 300)) < 0.3
    member[:, :100] = False
    probs[0] = np.where(member[0], 0.9, rng.random(300) * 0.8)
    fit = fit_offline_a(probs, member, gamma=1.0, grid=[0.7, 0.2, 0.5])
    assert fit.a == 0.2
    assert np.unique(fit.table[:, 1]).size == 1


# --- d. bad parameters --------------------------------------------------------------------------


def test_bad_parameters_are_refused_by_name():
    px, rx, pz, rz = random_inputs(0, "continuous")
    for gamma in (0.5, float("nan"), float("inf")):
        with pytest.raises(ParamsError, match="gamma"):
            rmia_scores(px, rx, pz, rz, gamma=gamma)
    for a in (1.5, -0.1, float("nan")):
        with pytest.raises(ParamsError, match=r"^a: "):
            rmia_scores(px, rx, pz, rz, gamma=1.0, a=a)
    with pytest.raises(ValueError, match="p_ref_x"):
        rmia_scores(px, rx[:, :-1], pz, rz, gamma=1.0)
    with pytest.raises(ValueError, match="p_ref_z"):
        rmia_scores(px, rx, pz, rz[:-1], gamma=1.0)
    with pytest.raises(ValueError, match="p_target_x"):
        rmia_scores(px[None], rx, pz, rz, gamma=1.0)
    with pytest.raises(ValueError, match="p_target_z"):
        rmia_scores(px, rx, pz * 2 + 0.5, rz, gamma=1.0)
    probs, member, probs_z = shadows_with_in_law(0.5, seed=0, n=200, s=3, m=50)
    with pytest.raises(ParamsError, match="probs"):
        fit_offline_a(probs[:1], member[:1], gamma=1.0, probs_z=probs_z[:1])
    with pytest.raises(ParamsError, match="gamma"):
        fit_offline_a(probs, member, gamma=0.9, probs_z=probs_z)
    with pytest.raises(ParamsError, match="grid"):
        fit_offline_a(probs, member, gamma=1.0, probs_z=probs_z, grid=[0.0, 1.5])
    with pytest.raises(ValueError, match="member"):
        fit_offline_a(probs, member[:, :-1], gamma=1.0, probs_z=probs_z)
    with pytest.raises(ParamsError, match="probs_z"):
        fit_offline_a(probs, np.ones_like(member), gamma=1.0)
