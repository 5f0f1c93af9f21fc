"""The cheaper CPU dropout: its law, its determinism, its gradient, and where it defers to torch."""

import pytest
import torch

from wemem.training.dropout import Dropout, keep_mask


def _drop_q(p):
    return round(p * 2**15) / 2**15


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5])
def test_each_word_position_drops_with_probability_q(p):
    """The four 16-bit words of a draw (three full, one 15-bit) each drop with q = round(p·2^15)/2^15;
    the 15-bit word read with a full word's threshold would drop nothing (or twice q), far beyond
    the 5-sigma band (sigma ≈ 5e-4 for p = 0.1)."""
    torch.manual_seed(0)
    n = 4 * 400_000
    keep = keep_mask(torch.Size([n]), p).view(-1, 4)
    q = _drop_q(p)
    sigma = (q * (1 - q) / keep.shape[0]) ** 0.5
    rates = 1.0 - keep.double().mean(0)
    assert torch.all((rates - q).abs() < 5 * sigma), (rates, q)


def test_neighbouring_words_are_independent():
    """Words of one draw are not correlated: P(both dropped) = q² for adjacent positions."""
    torch.manual_seed(1)
    keep = keep_mask(torch.Size([4 * 400_000]), 0.5).view(-1, 4)
    q = _drop_q(0.5)
    both = (~keep[:, 2] & ~keep[:, 3]).double().mean().item()
    sigma = (q * q * (1 - q * q) / keep.shape[0]) ** 0.5
    assert abs(both - q * q) < 5 * sigma


def test_output_scaled_like_torch_and_gradient_is_the_mask():
    torch.manual_seed(2)
    x = torch.randn(64, 33, requires_grad=True)
    layer = Dropout(0.25).train()
    y = layer(x)
    kept = y != 0
    assert 0 < kept.float().mean() < 1
    torch.testing.assert_close(y[kept], x[kept] / 0.75, rtol=0, atol=1e-6)
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / 0.75, rtol=0, atol=1e-6)


def test_the_seed_fixes_the_mask_and_another_seed_changes_it():
    layer = Dropout(0.1).train()
    x = torch.ones(50, 77)
    torch.manual_seed(3)
    a = layer(x)
    torch.manual_seed(3)
    b = layer(x)
    torch.manual_seed(4)
    c = layer(x)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_inplace_matches_out_of_place():
    x = torch.randn(20, 31)
    torch.manual_seed(5)
    out = Dropout(0.3).train()(x)
    torch.manual_seed(5)
    inp = Dropout(0.3, inplace=True).train()(x.clone())
    assert torch.equal(out, inp)


def test_eval_mode_and_p_zero_are_the_identity():
    x = torch.randn(8, 5)
    assert torch.equal(Dropout(0.5).eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)
    assert isinstance(Dropout(0.5), torch.nn.Dropout)


def test_under_vmap_each_member_draws_its_own_mask():
    """Inside a torch.func transform the layer is torch's dropout, so randomness='different' holds;
    the fast mask, drawn outside the batching rule, would give every member the same mask."""
    layer = Dropout(0.5).train()
    torch.manual_seed(6)
    out = torch.vmap(layer, randomness="different")(torch.ones(2, 400))
    assert not torch.equal(out[0] != 0, out[1] != 0)


@pytest.mark.parametrize("p", [1e-6, 1 - 1e-6])
def test_p_too_close_to_0_or_1_for_the_grid_uses_torchs_mask(p):
    """round(p·2^15) of 0 or 2^15 would drop nothing or everything (and overflow the word
    threshold); such p get torch's exact Bernoulli mask instead."""
    torch.manual_seed(7)
    x = torch.ones(1000, 1000)
    out = Dropout(p).train()(x)
    dropped = (out == 0).double().mean().item()
    assert abs(dropped - p) < 5 * (p * (1 - p) / x.numel()) ** 0.5 + 1e-7
