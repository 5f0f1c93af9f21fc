"""The fast optimizer step is bit-identical to torch.optim's own step and falls back cleanly (fused
optimizers included); the training code's optimizers are torch's fused ones where torch has them."""

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils import prune as torch_prune

from wemem.attacks.classifier import AttackMLP, train_attack_model
from wemem.models import build_model
from wemem.training import fastpath
from wemem.training.fastpath import optimizer_step
from wemem.training.loop import TrainConfig, fit


def _train(opt_factory, step, *, steps=40, prune=False, seed=0):
    """``steps`` steps of an FC model (optionally pruned) with dropout; returns the model, the
    optimizer and the per-step losses."""
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(256, 30, generator=g), torch.randint(0, 5, (256,), generator=g)
    model = build_model("fc", num_classes=5, in_features=30, width=0.25, seed=seed)
    if prune:
        for layer in (model.fc1, model.fc2):  # masked weights: weight_orig is the parameter
            torch_prune.l1_unstructured(layer, "weight", amount=0.5)
    opt = opt_factory(model)
    torch.manual_seed(seed)
    losses = []
    for i in range(steps):
        rows = torch.randperm(256, generator=g)[:64]
        loss = F.cross_entropy(model(x[rows]), y[rows])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        step(opt)
        losses.append(loss.item())
        if i == steps // 2:  # an optimizer with two groups of different settings
            for group in opt.param_groups:
                group["lr"] *= 0.5
    return model, opt, losses


def _identical(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _groups(model, **kw):
    params = list(model.parameters())
    return [{"params": params[:2], **kw}, {"params": params[2:]}]


FACTORIES = {
    "adam": lambda m: torch.optim.Adam(m.parameters(), lr=1e-2, weight_decay=5e-4),
    "adam_no_wd": lambda m: torch.optim.Adam(m.parameters(), lr=1e-2, betas=(0.8, 0.99)),
    "adam_groups": lambda m: torch.optim.Adam(_groups(m, weight_decay=0.1), lr=1e-2),
    "sgd_momentum": lambda m: torch.optim.SGD(
        m.parameters(), lr=1e-2, momentum=0.9, weight_decay=5e-4
    ),
    "sgd_plain": lambda m: torch.optim.SGD(m.parameters(), lr=1e-2),
    "sgd_groups": lambda m: torch.optim.SGD(_groups(m, momentum=0.5), lr=1e-2, weight_decay=1e-3),
    "adam_fused": lambda m: fastpath.adam(m.parameters(), lr=1e-2, weight_decay=5e-4),
    "adam_fused_groups": lambda m: torch.optim.Adam(
        _groups(m, weight_decay=0.1), lr=1e-2, betas=(0.8, 0.99), fused=True
    ),
    "sgd_fused": lambda m: fastpath.sgd(m.parameters(), lr=1e-2, momentum=0.9, weight_decay=5e-4),
    "sgd_fused_plain": lambda m: fastpath.sgd(m.parameters(), lr=1e-2, momentum=0, weight_decay=0),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
@pytest.mark.parametrize("prune", [False, True])
def test_fast_step_is_bit_identical_to_torch(name, prune):
    ref_model, ref_opt, ref_losses = _train(FACTORIES[name], lambda o: o.step(), prune=prune)
    model, opt, losses = _train(FACTORIES[name], optimizer_step, prune=prune)
    assert losses == ref_losses
    assert _identical(model, ref_model)
    assert str(opt.state_dict()) == str(ref_opt.state_dict())
    for a, b in zip(opt.state.values(), ref_opt.state.values(), strict=True):
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_training_code_builds_fused_optimizers_on_the_cpu():
    model = build_model("fc", num_classes=5, in_features=30, width=0.25, seed=0)
    assert fastpath.adam(model.parameters(), lr=1e-3, weight_decay=0).defaults["fused"]
    assert fastpath.sgd(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=0).defaults["fused"]
    halves = [torch.nn.Parameter(torch.zeros(3, dtype=torch.float16))]
    assert not fastpath.adam(halves, lr=1e-3, weight_decay=0).defaults["fused"]
    # the fused kernel is not the single-tensor path: same algorithm, other float rounding, so the
    # cache keys name it (an equality here would make the key part pointless)
    fused = _train(FACTORIES["adam_fused"], optimizer_step, steps=60)
    single = _train(FACTORIES["adam"], optimizer_step, steps=60)
    assert not _identical(fused[0], single[0])
    assert max(abs(a - b) for a, b in zip(fused[2], single[2], strict=True)) < 1e-3


class _Counting(torch.optim.Adam):
    """A subclass (e.g. another algorithm): never on the fast path."""

    calls = 0

    def step(self, closure=None):
        type(self).calls += 1
        return super().step(closure)


def test_falls_back_to_step_where_the_fast_path_does_not_apply():
    _train(lambda m: _Counting(m.parameters(), lr=1e-2), optimizer_step, steps=5)
    assert _Counting.calls == 5
    calls = []
    factory = FACTORIES["adam"]

    def hooked(model):
        opt = factory(model)
        opt.register_step_pre_hook(lambda *_: calls.append(1))
        return opt

    _train(hooked, optimizer_step, steps=5)
    assert len(calls) == 5  # the hook ran every step: torch's own step() was used
    amsgrad = _train(lambda m: torch.optim.Adam(m.parameters(), amsgrad=True), optimizer_step)
    ref = _train(lambda m: torch.optim.Adam(m.parameters(), amsgrad=True), lambda o: o.step())
    assert _identical(amsgrad[0], ref[0])


def test_fit_with_the_fast_path_equals_fit_with_torch_step(monkeypatch):
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(300, 20, generator=g), torch.randint(0, 3, (300,), generator=g)
    config = TrainConfig(max_epochs=4, batch_size=32, seed=2)
    runs = []
    for step in (optimizer_step, lambda opt: opt.step()):
        monkeypatch.setattr("wemem.training.loop.optimizer_step", step)
        model = build_model("fc", num_classes=3, in_features=20, width=0.25, seed=0)
        res, _ = fit(model, x, y, torch.arange(200), torch.arange(200, 300), config=config)
        runs.append((res.history, model))
    assert [h["train_loss"] for h in runs[0][0]] == [h["train_loss"] for h in runs[1][0]]
    assert _identical(runs[0][1], runs[1][1])


def test_attack_training_equals_the_scheduler_recipe():
    """The written-out learning-rate drops and the fast SGD step give torch's MultiStepLR run."""
    g = torch.Generator().manual_seed(0)
    feats, member = torch.rand(300, 6, generator=g).numpy(), (torch.arange(300) % 2).numpy()
    model = train_attack_model(
        lambda: AttackMLP(6), feats, member, seed=3, epochs=6, milestones=(2, 4, 4), device="cpu"
    )
    x, y = torch.as_tensor(feats), torch.as_tensor(member)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        ref = AttackMLP(6)
        opt = torch.optim.SGD(
            ref.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4, fused=True
        )
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[2, 4, 4], gamma=0.1)
        ref.train()
        for _ in range(6):
            for idx in torch.randperm(300).split(128):
                loss = F.cross_entropy(ref(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            sched.step()
    assert _identical(model, ref)
