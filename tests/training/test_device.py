"""Device decisions (wemem.training.device): the CUDA branches decided with the device mocked on
the CPU, the CPU branches as plain no-ops, and ``-m gpu`` tests of what needs a real CUDA device."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import wemem.training.device as device_mod
import wemem.training.loop as loop
from wemem.attacks.classifier import attack_device
from wemem.attacks.posteriors import posteriors
from wemem.attacks.sensitivity import sensitivity
from wemem.errors import ParamsError
from wemem.models import build_model
from wemem.training.device import (
    CNN_ARCHS,
    TransferPlan,
    autocast_dtype,
    fp32_outputs,
    full_fp32,
    is_cuda,
    memory_format_for,
    prepare_model,
    resolve_device,
    to_device,
    training_autocast,
    transfer_plan,
)
from wemem.training.loop import TrainConfig, fit

CUDA = torch.device("cuda")
CPU = torch.device("cpu")


@pytest.fixture
def cuda_present(monkeypatch):
    """Pretend one CUDA device is visible (the decisions only ask torch.cuda)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


@pytest.fixture
def cuda_absent(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


def _images(n=96, c=4, seed=0):
    """Class prototypes plus noise on 1×8×8 images: a few epochs of a small CNN learn them."""
    g = torch.Generator().manual_seed(seed)
    proto = torch.randn(c, 1, 8, 8, generator=g)
    y = torch.randint(0, c, (n,), generator=g)
    return proto[y] + 0.5 * torch.randn(n, 1, 8, 8, generator=g), y


def _cnn(norm="batch"):
    return build_model("resnet18", num_classes=4, in_channels=1, width=0.0625, norm=norm, seed=0)


class _TinyCNN(nn.Module):
    """Conv-BN-ReLU, pool, Linear. The emulated bf16 fit uses it, not the ResNet: on the CPU,
    oneDNN's bf16 weight gradient of the ResNet's 3×3 convolutions on 1×1 maps is now and then
    NaN (a CPU-only artefact: CPU training never autocasts)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.bn = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 4 * 4, 4)

    def forward(self, x):
        x = F.avg_pool2d(F.relu(self.bn(self.conv(x))), 2)
        return self.fc(x.flatten(1))


def _fc():
    return build_model("fc", num_classes=4, in_features=64, width=0.05, seed=0)


# ---- resolve_device ---------------------------------------------------------------------------
def test_auto_is_cuda_exactly_when_cuda_is_available(monkeypatch):
    for available, want in ((True, CUDA), (False, CPU)):
        monkeypatch.setattr(torch.cuda, "is_available", lambda a=available: a)
        assert resolve_device("auto") == want
        assert attack_device(None) == want  # the attacks' default goes through the same function
    assert loop.resolve_device is resolve_device  # still importable from its old home


def test_cpu_and_cuda_resolve_to_themselves(cuda_present):
    assert resolve_device("cpu") == CPU
    assert resolve_device("cuda") == CUDA
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    assert resolve_device(CUDA) == CUDA  # a torch.device is accepted
    assert attack_device("cuda") == CUDA


@pytest.mark.parametrize("name", ["cuda", "cuda:0", CUDA])
def test_cuda_without_a_gpu_is_a_one_line_params_error(cuda_absent, name):
    with pytest.raises(ParamsError) as err:
        resolve_device(name)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("device: ") and "no CUDA device is available" in message
    assert "allowed values here are auto, cpu" in message
    with pytest.raises(ParamsError, match="no CUDA device"):
        attack_device(name)


def test_a_missing_cuda_index_and_unknown_names_are_params_errors(cuda_present):
    with pytest.raises(ParamsError, match=r"device: got 'cuda:3' but only 1 CUDA device"):
        resolve_device("cuda:3")
    for bad in ("gpu", "mps", "", "cuda:x"):
        with pytest.raises(ParamsError, match=r"^device: got .*allowed values are auto, cpu, cuda"):
            resolve_device(bad)


def test_an_experiment_with_device_cuda_fails_at_once_without_a_gpu(tiny_settings, cuda_absent):
    from wemem.experiment.replicate import Experiment

    settings = dataclasses.replace(tiny_settings, device="cuda")
    with pytest.raises(ParamsError, match="^device: got 'cuda' but no CUDA device"):
        Experiment(settings, seed=0)


# ---- precision ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dev", [CUDA, "cuda", "cuda:1"])
def test_training_autocast_is_a_bf16_autocast_on_cuda(cuda_present, monkeypatch, dev):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert is_cuda(dev) and autocast_dtype(dev) == torch.bfloat16
    ctx = training_autocast(dev)  # constructed, not entered: no GPU needed to decide
    assert isinstance(ctx, torch.autocast)
    assert ctx.device == "cuda" and ctx.fast_dtype == torch.bfloat16


@pytest.mark.parametrize("dev", [CPU, "cpu", torch.device("meta")])
def test_training_autocast_is_a_no_op_elsewhere(dev):
    assert not is_cuda(dev) and autocast_dtype(dev) is None
    ctx = training_autocast(dev)
    assert isinstance(ctx, contextlib.nullcontext)
    a = torch.randn(4, 4)
    with ctx:
        assert not torch.is_autocast_enabled("cpu")
        assert (a @ a).dtype == torch.float32


def test_fp32_outputs_switch_a_callers_autocast_off_and_restore_precision():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 5)).eval()
    x = torch.randn(20, 16)
    with torch.no_grad():
        want = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # CUDA's bf16 autocast, emulated
            assert model(x).dtype == torch.bfloat16
            with fp32_outputs(CPU):
                got = model(x)
            assert torch.is_autocast_enabled("cpu")  # the caller's autocast is back
    assert got.dtype == torch.float32 and torch.equal(got, want)
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    saved = (matmul.fp32_precision, conv.fp32_precision)
    with full_fp32():
        assert (matmul.fp32_precision, conv.fp32_precision) == ("ieee", "ieee")
    assert (matmul.fp32_precision, conv.fp32_precision) == saved


def test_attack_outputs_are_fp32_inside_a_bf16_autocast():
    model, (x, _) = _cnn().eval(), _images(n=12)
    rows = np.arange(12)
    want_p = posteriors(model, x, rows, batch_size=5)
    want_s = sensitivity(model, x, rows, m=2, batch_size=5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got_p = posteriors(model, x, rows, batch_size=5)
        got_s = sensitivity(model, x, rows, m=2, batch_size=5)
    assert got_p.dtype == got_s.dtype == torch.float32
    assert torch.equal(got_p, want_p) and torch.equal(got_s, want_s)


# ---- memory format -----------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["resnet18", "vgg16bn", "densenet121", "fc", "attack_mlp"])
@pytest.mark.parametrize("dev", [CUDA, "cuda:0", CPU, "cpu"])
def test_channels_last_only_for_cnns_on_cuda(arch, dev):
    want = arch in ("resnet18", "vgg16bn", "densenet121") and is_cuda(dev)
    fmt = memory_format_for(arch, dev)
    assert fmt is (torch.channels_last if want else torch.contiguous_format)
    assert set(CNN_ARCHS) == {"resnet18", "vgg16bn", "densenet121"}


def test_prepare_model_on_the_cpu_is_a_plain_move():
    for arch, make in (("resnet18", _cnn), ("fc", _fc)):
        ref, model = make(), make()
        assert prepare_model(model, arch, CPU) is model
        for (n, p), (_, q) in zip(
            model.state_dict().items(), ref.state_dict().items(), strict=True
        ):
            assert torch.equal(p, q) and p.is_contiguous(), n


def test_prepare_model_applies_the_format_it_is_told(monkeypatch):
    """The channels_last branch, exercised on the CPU by deciding as on CUDA."""
    monkeypatch.setattr(device_mod, "memory_format_for", lambda arch, dev: torch.channels_last)
    model = prepare_model(_cnn(), "resnet18", CPU)
    convs = [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert not all(w.is_contiguous() for w in convs)


def test_an_experiment_builds_its_models_through_prepare_model(tiny_settings, monkeypatch):
    from wemem.experiment import replicate

    calls = []

    def spy(model, arch, dev):
        calls.append((arch, dev))
        return prepare_model(model, arch, dev)

    monkeypatch.setattr(replicate, "prepare_model", spy)
    exp = replicate.Experiment(tiny_settings, seed=0)
    exp.new_model("victim")
    assert calls == [(tiny_settings.arch, exp.device)]


# ---- transfers -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "target", "fast"),
    [(CPU, CUDA, True), (CPU, "cuda:1", True), (CPU, CPU, False), (CUDA, CPU, False),
     (CUDA, CUDA, False)],
)  # fmt: skip
def test_transfer_plan_pins_and_overlaps_only_host_to_cuda(source, target, fast):
    assert transfer_plan(source, target) == TransferPlan(pin=fast, non_blocking=fast)


class _FakeHostTensor:
    """Records what :func:`to_device` does to a host tensor bound for CUDA (no GPU needed)."""

    device = CPU

    def __init__(self, pinned=False):
        self.calls, self.pinned = [], pinned

    def is_pinned(self):
        return self.pinned

    def pin_memory(self):
        self.calls.append("pin_memory")
        return _FakeHostTensor(pinned=True)

    def to(self, dev, non_blocking=False):
        self.calls.append(("to", torch.device(dev), non_blocking))
        return self


def test_to_device_pins_then_copies_non_blocking_to_cuda():
    t = _FakeHostTensor()
    moved = to_device(t, CUDA)
    assert t.calls == ["pin_memory"] and moved.calls == [("to", CUDA, True)]
    pinned = _FakeHostTensor(pinned=True)
    to_device(pinned, "cuda")
    assert pinned.calls == [("to", CUDA, True)]  # already pinned: no second copy


def test_to_device_on_the_cpu_is_a_plain_to():
    x = torch.randn(6, 3)
    for t in (x, x.t(), x[::2]):
        out = to_device(t, CPU)
        assert out is t.to(CPU) is t and not out.is_pinned()


def test_fit_goes_through_the_device_functions_on_the_cpu(monkeypatch):
    seen = {"autocast": [], "to_device": []}

    def autocast_spy(dev):
        seen["autocast"].append(torch.device(dev).type)
        return training_autocast(dev)

    def to_device_spy(t, dev):
        seen["to_device"].append(torch.device(dev).type)
        return to_device(t, dev)

    monkeypatch.setattr(loop, "training_autocast", autocast_spy)
    monkeypatch.setattr(loop, "to_device", to_device_spy)
    x, y = _images(n=48)
    fit(_fc(), x.flatten(1), y, np.arange(32), np.arange(32, 48),
        config=TrainConfig(batch_size=16, max_epochs=1))  # fmt: skip
    assert seen["autocast"] and set(seen["autocast"]) == {"cpu"}
    assert seen["to_device"] and set(seen["to_device"]) == {"cpu"}


def test_bf16_training_emulated_on_the_cpu_keeps_fp32_outputs(monkeypatch):
    """fit under CUDA's bf16 autocast, emulated on the CPU; outputs are still IEEE float32."""
    monkeypatch.setattr(
        loop, "training_autocast", lambda dev: torch.autocast("cpu", dtype=torch.bfloat16)
    )
    x, y = _images(n=96)
    model = _TinyCNN()
    dtypes = set()
    model.register_forward_hook(lambda m, i, o: dtypes.add(o.dtype) if m.training else None)
    config = TrainConfig(batch_size=16, max_epochs=3, patience=3)
    result, _ = fit(model, x, y, np.arange(64), np.arange(64, 96), config=config)
    assert dtypes == {torch.bfloat16}  # the training forward ran under the (emulated) autocast
    assert all(math.isfinite(h["train_loss"]) for h in result.history)
    probs = posteriors(model, x, np.arange(96))
    model.eval()
    with torch.no_grad():
        want = torch.softmax(model(x), dim=1)
    assert probs.dtype == torch.float32 and torch.equal(probs, want)


# ---- on a real CUDA device ---------------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_cnn_is_channels_last_and_fc_is_not():
    assert resolve_device("auto").type == "cuda" and resolve_device("cuda").type == "cuda"
    cnn = prepare_model(_cnn(), "resnet18", "cuda")
    convs = [m.weight for m in cnn.modules() if isinstance(m, nn.Conv2d)]
    assert all(w.is_cuda and w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert not all(w.is_contiguous() for w in convs)
    fc = prepare_model(_fc(), "fc", "cuda")
    assert all(p.is_cuda and p.is_contiguous() for p in fc.parameters())
    x, _ = _images(n=8)
    with torch.no_grad(), training_autocast("cuda"):
        assert cnn(x.cuda()).dtype == torch.bfloat16


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fit_trains_under_bf16_and_outputs_are_fp32():
    x, y = (to_device(t, "cuda") for t in _images(n=320))
    model = prepare_model(_cnn(), "resnet18", "cuda")
    states = []
    model.register_forward_hook(
        lambda m, i, o: states.append((m.training, torch.is_autocast_enabled("cuda"), o.dtype))
    )
    config = TrainConfig(batch_size=32, max_epochs=8, patience=8)
    result, _ = fit(model, x, y, np.arange(256), np.arange(256, 320), config=config)
    assert {s for s in states if s[0]} == {(True, True, torch.bfloat16)}  # training: bf16
    assert result.best_dev_acc > 0.6  # 4 classes: it learned
    rows = np.arange(320)
    probs = posteriors(model, x, rows)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        again = posteriors(model, x, rows)  # a caller's autocast changes nothing
    assert probs.dtype == torch.float32 and probs.device.type == "cuda"
    assert torch.equal(probs, again)
    model.eval()
    with torch.no_grad(), full_fp32():
        want = torch.softmax(model(x).float(), dim=1)  # the fp32 recomputation, on CUDA
    torch.testing.assert_close(probs, want, rtol=1e-5, atol=1e-6)
    cpu = copy.deepcopy(model).cpu().to(memory_format=torch.contiguous_format)
    with torch.no_grad():
        on_cpu = torch.softmax(cpu(x.cpu()), dim=1)  # and on the CPU, fp32 up to summation order
    torch.testing.assert_close(probs.cpu(), on_cpu, rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_to_device_returns_an_equal_cuda_tensor():
    x = torch.randn(1000, 3, 8, 8)
    for src in (x, x[::3], x.transpose(1, 2)):
        out = to_device(src, "cuda")
        assert out.device.type == "cuda" and out.shape == src.shape
        assert torch.equal(out.cpu(), src)
    assert not x.is_pinned()  # the caller's tensor is left as it was
    back = to_device(out, "cpu")
    assert back.device.type == "cpu" and torch.equal(back, x.transpose(1, 2))
    assert to_device(out, "cuda") is out


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("mode", ["ghost", "hooks"])
def test_cuda_dp_sgd_step_on_a_groupnorm_cnn(mode):
    from wemem.defenses.dp import DPSGDHooks

    x, y = (to_device(t, "cuda") for t in _images(n=60))
    model = prepare_model(_cnn(norm="group"), "resnet18", "cuda")  # channels_last, as on a run
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    before = [p.detach().clone() for p in model.parameters()]
    hooks = DPSGDHooks(noise_multiplier=1.0, lr=0.1, mode=mode)
    config = TrainConfig(batch_size=10, max_epochs=1, patience=10)
    result, _ = fit(model, x, y, np.arange(40), np.arange(40, 60), config=config, hooks=hooks)
    assert hooks.steps == 4 and math.isfinite(result.history[0]["train_loss"])
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))
    assert 0 < hooks.epsilon() < math.inf
    assert F.softmax(model.eval()(x[:4]), dim=1).dtype == torch.float32
