import numpy as np
import pytest
import torch
from torch import nn

import wemem.training.ensemble
from wemem.errors import ParamsError
from wemem.models import build_model
from wemem.training.ensemble import (
    EnsembleConfig,
    epoch_permutation,
    train_ensemble,
    train_sequential,
)
from wemem.training.stacked_adam import StackedAdam


def _tabular(n=240, d=12, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    proto = torch.randn(c, d, generator=g)
    y = torch.randint(0, c, (n,), generator=g)
    return proto[y] + 0.8 * torch.randn(n, d, generator=g), y


def _images(n=240, c=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    proto = torch.randn(c, 1, 8, 8, generator=g)
    y = torch.randint(0, c, (n,), generator=g)
    return proto[y] + 0.5 * torch.randn(n, 1, 8, 8, generator=g), y


def _uneven(n):
    """Three subsets of different sizes: 100 vs 30 rows differ by more than a batch of 16."""
    inc = np.zeros((3, n), dtype=bool)
    rng = np.random.default_rng(1)
    for k, size in enumerate((100, 30, 77)):
        inc[k, rng.choice(n, size, replace=False)] = True
    return inc


def _fc_no_dropout(k, d=12, c=3):
    model = build_model("fc", num_classes=c, in_features=d, width=0.125, seed=10 + k)
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    return model


class _TinyBN(nn.Module):
    """Conv-BN2d-ReLU, pool, Linear-BN1d-ReLU, Linear: both BatchNorm flavours, no dropout."""

    def __init__(self, seed):
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc1 = nn.Linear(4 * 4 * 4, 8)
        self.bn1 = nn.BatchNorm1d(8)
        self.fc2 = nn.Linear(8, 4)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.bn(self.conv(x))), 2)
        return self.fc2(torch.relu(self.bn1(self.fc1(x.flatten(1)))))


def _assert_same_members(a, b, atol):
    assert a.k == b.k
    for name in a.params | a.buffers:
        left = (a.params | a.buffers)[name]
        right = (b.params | b.buffers)[name]
        torch.testing.assert_close(left, right, atol=atol, rtol=1e-4, msg=name)


def test_together_matches_sequential_fc_uneven_subsets():
    x, y = _tabular()
    inc = _uneven(len(x))
    config = EnsembleConfig(epochs=3, batch_size=16, seed=4)
    together = train_ensemble(_fc_no_dropout, x, y, inc, config=config)
    sequential = train_sequential(_fc_no_dropout, x, y, inc, config=config)
    _assert_same_members(together, sequential, atol=1e-5)
    torch.testing.assert_close(together.predict_proba(x), sequential.predict_proba(x))


def test_together_matches_sequential_batchnorm_including_running_stats():
    x, y = _images()
    inc = _uneven(len(x))
    config = EnsembleConfig(epochs=2, batch_size=16, seed=1)
    together = train_ensemble(_TinyBN, x, y, inc, config=config)
    sequential = train_sequential(_TinyBN, x, y, inc, config=config)
    assert "bn.running_mean" in together.buffers
    assert together.buffers["bn.num_batches_tracked"].tolist() == [7, 2, 5]  # ceil(size / 16)
    _assert_same_members(together, sequential, atol=1e-4)


def test_running_stats_are_pytorchs_cumulative_average_over_own_rows():
    x, y = _images()
    inc = _uneven(len(x))
    config = EnsembleConfig(epochs=1, batch_size=16, seed=2)
    ens = train_ensemble(_TinyBN, x, y, inc, config=config)
    for k in range(ens.k):
        member = ens.model(k)
        rows = torch.from_numpy(np.flatnonzero(inc[k]))
        rows = rows[epoch_permutation(config.seed, k, config.epochs, len(rows))]
        reference = ens.model(k)
        for m in (reference.bn, reference.bn1):
            m.reset_running_stats()
            m.momentum = None
            m.train()
        with torch.no_grad():
            for chunk in rows.split(config.batch_size):
                reference(x[chunk])
        for name, value in reference.state_dict().items():
            torch.testing.assert_close(member.state_dict()[name], value, msg=name)


def test_resnet_ensemble_learns_and_members_match_predict_proba():
    x, y = _images(n=320)
    inc = np.zeros((2, len(x)), dtype=bool)
    inc[0, :240], inc[1, 40:240] = True, True

    def make(k):
        return build_model("resnet18", num_classes=4, in_channels=1, width=0.125, seed=k)

    ens = train_ensemble(make, x, y, inc, config=EnsembleConfig(epochs=4, batch_size=32))
    held_out = torch.arange(240, 320)
    probs = ens.predict_proba(x, held_out, batch_size=50)
    assert probs.shape == (2, 80, 4) and probs.dtype == torch.float32
    accuracy = (probs.argmax(-1) == y[held_out]).float().mean(1)
    assert (accuracy > 0.7).all(), accuracy  # chance is 0.25
    for k in range(2):
        member = ens.model(k)
        assert not member.training
        with torch.no_grad():
            torch.testing.assert_close(member(x[held_out]).softmax(-1), probs[k])
    fresh = make(0)
    fresh.load_state_dict(ens.state_dicts()[1])
    assert fresh.bn1.num_batches_tracked.item() == 200 // 32 + 1


def test_dropout_draws_different_masks_per_member_and_is_deterministic():
    x, y = _tabular()
    inc = torch.ones(2, len(x), dtype=torch.bool)  # a tensor mask works too

    def make(k):  # identical members: only dropout can make them differ
        return build_model("fc", num_classes=3, in_features=12, width=0.125, seed=0)

    config = EnsembleConfig(epochs=1, batch_size=32)
    first = train_ensemble(make, x, y, inc, config=config)
    again = train_ensemble(make, x, y, inc, config=config)
    w = first.params["fc1.weight"]
    assert not torch.equal(w[0], w[1])
    assert torch.equal(w, again.params["fc1.weight"])


def test_bf16_autocast_path_trains_batchnorm_models(monkeypatch):
    """CUDA's bf16 autocast, emulated on the CPU: bf16 activations meet float32 BatchNorm."""
    monkeypatch.setattr(
        wemem.training.ensemble,
        "training_autocast",
        lambda device: torch.autocast("cpu", dtype=torch.bfloat16),
    )
    x, y = _images()
    inc = _uneven(len(x))
    ens = train_ensemble(_TinyBN, x, y, inc, config=EnsembleConfig(epochs=2, batch_size=16))
    probs = ens.predict_proba(x)
    assert probs.dtype == torch.float32 and torch.isfinite(probs).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_ensemble_learns_and_members_match_predict_proba():
    x, y = (t.cuda() for t in _images(n=320))
    inc = _uneven(320)
    ens = train_ensemble(_TinyBN, x, y, inc, config=EnsembleConfig(epochs=6, batch_size=16))
    seq = train_sequential(_TinyBN, x, y, inc, config=EnsembleConfig(epochs=6, batch_size=16))
    probs = ens.predict_proba(x)
    assert probs.shape == (3, 320, 4) and probs.device.type == "cuda"
    assert ((probs.argmax(-1) == y).float().mean(1) > 0.7).all()
    agree = (probs.argmax(-1) == seq.predict_proba(x).argmax(-1)).float().mean()
    assert agree > 0.9  # bf16 rounding, not equality
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        logits = ens.model(2)(x)
    torch.testing.assert_close(logits.float().softmax(-1), probs[2], atol=2e-2, rtol=0)


def test_stacked_adam_is_torch_adam_per_member_with_skipped_steps():
    g = torch.Generator().manual_seed(0)
    start = torch.randn(2, 3, generator=g)
    grads = [torch.randn(2, 3, generator=g) for _ in range(4)]
    active = [np.array(a) for a in ([1, 1], [1, 0], [1, 1], [0, 1])]
    stacked = start.clone()
    opt = StackedAdam([stacked], lr=0.1, weight_decay=0.01)
    for grad, on in zip(grads, active, strict=True):
        opt.step([grad.clone()], on.astype(bool))
    for k in range(2):
        p = start[k].clone().requires_grad_()
        ref = torch.optim.Adam([p], lr=0.1, weight_decay=0.01)
        for grad, on in zip(grads, active, strict=True):
            if on[k]:
                p.grad = grad[k].clone()
                ref.step()
        torch.testing.assert_close(stacked[k], p.detach())
    assert opt.steps.tolist() == [3, 3]


def test_epoch_permutation_depends_on_seed_member_and_epoch():
    base = epoch_permutation(0, 1, 2, 50)
    assert sorted(base.tolist()) == list(range(50))
    assert torch.equal(base, epoch_permutation(0, 1, 2, 50))
    for other in ((1, 1, 2), (0, 2, 2), (0, 1, 3)):
        assert not torch.equal(base, epoch_permutation(*other, 50))


@pytest.mark.parametrize(
    "included, match",
    [
        (np.ones((2, 5), dtype=bool), "n = len"),
        (np.ones((2, 6), dtype=int), "bool"),
        (np.array([[True] * 6, [False] * 6]), r"members \[1\]"),
    ],
)
def test_bad_included_is_a_params_error(included, match):
    x, y = torch.zeros(6, 12), torch.zeros(6, dtype=torch.long)
    with pytest.raises(ParamsError, match=match):
        train_ensemble(_fc_no_dropout, x, y, included, config=EnsembleConfig(epochs=1))


def test_bad_config_is_a_params_error():
    with pytest.raises(ParamsError, match="batch_size"):
        EnsembleConfig(batch_size=0)
