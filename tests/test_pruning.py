import pytest
import torch
from torch import nn

from wemem.errors import ParamsError
from wemem.models import build_model
from wemem.pruning import (
    apply_sparsity,
    layer_sparsity,
    prunable_modules,
    prune_and_finetune,
    schedule,
)
from wemem.training.loop import TrainConfig


def test_schedule_matches_spec():
    assert schedule(0.6) == pytest.approx([0.0, 0.2047, 0.3675, 0.4970, 0.6], abs=1e-4)
    assert schedule(0.5) == pytest.approx([0.0, 0.159, 0.293, 0.405, 0.5], abs=1e-3)
    assert schedule(0.7) == pytest.approx([0.0, 0.260, 0.452, 0.595, 0.7], abs=1e-3)
    assert schedule(0.6, rounds=1) == [0.6]
    assert schedule(0.6, rounds=2) == [0.0, 0.6]
    s = schedule(0.6, rounds=5)
    assert s[-1] == 0.6 and all(a < b for a, b in zip(s, s[1:], strict=False))


@pytest.mark.parametrize("p, rounds", [(1.0, 5), (-0.1, 5), (0.5, 0)])
def test_schedule_rejects_bad_input(p, rounds):
    with pytest.raises(ParamsError):
        schedule(p, rounds)


# --- pruning targets ---------------------------------------------------------------------------


def test_prunable_modules_fc_is_fc1_fc2():
    model = build_model("fc", num_classes=100, in_features=600)
    pairs = prunable_modules(model, "fc", "l1_unstructured")
    assert [name for name, _ in pairs] == ["fc1", "fc2"]
    assert pairs[0][1] is model.fc1 and pairs[1][1] is model.fc2


@pytest.mark.parametrize(
    ("arch", "first", "last", "count"),
    [
        # 1 stem + 16 block convs + 3 shortcut convs + fc
        ("resnet18", "conv1", "fc", 21),
        # 13 convs + 3 linears
        ("vgg16bn", "features.0", "classifier.6", 16),
        # 1 stem + 2 per dense layer (58 layers) + 3 transitions + classifier
        ("densenet121", "features.0", "classifier", 1 + 2 * 58 + 3 + 1),
    ],
)
def test_prunable_modules_images_cover_every_conv_and_linear(arch, first, last, count):
    model = build_model(arch, num_classes=10, width=0.125)
    pairs = prunable_modules(model, arch, "l1_unstructured")
    names = [name for name, _ in pairs]
    assert (names[0], names[-1], len(names)) == (first, last, count)
    assert all(isinstance(m, (nn.Conv2d, nn.Linear)) for _, m in pairs)
    expected = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert names == expected


def test_fc_prunes_fc1_fc2_only_and_exact_layerwise_sparsity():
    m = build_model("fc", num_classes=5, in_features=30, width=0.5, seed=0)
    mods = prunable_modules(m, "fc", "l1_unstructured")
    assert [n for n, _ in mods] == ["fc1", "fc2"]
    for s in schedule(0.6)[1:]:
        apply_sparsity(mods, s, "l1_unstructured")
        for _, mod in mods:
            assert int((mod.weight == 0).sum()) == int(mod.weight.numel() * s)
    assert (m.fc3.weight != 0).all()


def test_unstructured_removes_smallest_magnitudes_and_keeps_pruned_pruned():
    lin = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.4, -0.1, 0.3, -0.2]]))
    mods = [("lin", lin)]
    apply_sparsity(mods, 0.5, "l1_unstructured")
    assert lin.weight_mask.tolist() == [[1.0, 0.0, 1.0, 0.0]]
    with torch.no_grad():  # the pruned entries' originals grow: they must stay pruned
        lin.weight_orig.copy_(torch.tensor([[0.4, 9.0, 0.3, 9.0]]))
    apply_sparsity(mods, 0.75, "l1_unstructured")
    assert lin.weight_mask.tolist() == [[1.0, 0.0, 0.0, 0.0]]


@pytest.mark.parametrize("approach", ["l1_structured", "l2_structured"])
def test_structured_prunes_whole_filters_of_convs_only(approach):
    m = build_model("resnet18", num_classes=4, in_channels=1, width=0.125, seed=0)
    mods = prunable_modules(m, "resnet18", approach)
    assert all(isinstance(mod, nn.Conv2d) for _, mod in mods)
    apply_sparsity(mods, 0.5, approach)
    for _, mod in mods:
        per_filter = (mod.weight != 0).flatten(1).any(1)
        assert int((~per_filter).sum()) == int(mod.weight.shape[0] * 0.5)
    assert not hasattr(m.fc, "weight_mask")
    with pytest.raises(ParamsError, match="Conv2d"):
        prunable_modules(build_model("fc", num_classes=3, in_features=5), "fc", approach)


def test_structured_l1_and_l2_can_differ():
    conv = nn.Conv2d(1, 2, kernel_size=(1, 4), bias=False)
    with torch.no_grad():  # filter 0: L1 2.0, L2 1.0; filter 1: L1 1.5, L2 1.5
        conv.weight.copy_(torch.tensor([[[[0.5, 0.5, 0.5, 0.5]]], [[[1.5, 0, 0, 0]]]]))
    import copy

    c1, c2 = copy.deepcopy(conv), copy.deepcopy(conv)
    apply_sparsity([("c", c1)], 0.5, "l1_structured")
    apply_sparsity([("c", c2)], 0.5, "l2_structured")
    assert c1.weight_mask[:, 0, 0, 0].tolist() == [1.0, 0.0]
    assert c2.weight_mask[:, 0, 0, 0].tolist() == [0.0, 1.0]


def _data(n=240, d=16, c=3):
    g = torch.Generator().manual_seed(0)
    proto = torch.randn(c, d, generator=g)
    y = torch.randint(0, c, (n,), generator=g)
    return proto[y] + torch.randn(n, d, generator=g), y


def test_iterative_pruning_masks_hold_through_finetuning_and_fold():
    x, y = _data()
    m = build_model("fc", num_classes=3, in_features=16, width=0.25, seed=1)
    seen = []

    def on_round(k, model):
        seen.append((k, layer_sparsity(model, prunable_modules(model, "fc", "l1_unstructured"))))

    res = prune_and_finetune(
        m,
        x,
        y,
        torch.arange(160),
        torch.arange(160, 240),
        arch="fc",
        approach="l1_unstructured",
        rate=0.6,
        rounds=5,
        config=TrainConfig(max_epochs=3, patience=10),
        on_round_end=on_round,
    )
    assert [r.round for r in res.rounds] == [0, 1, 2, 3, 4]
    assert [k for k, _ in seen] == [0, 1, 2, 3, 4]
    for (k, sp), target in zip(seen, schedule(0.6), strict=True):
        assert all(abs(v - target) < 0.01 for v in sp.values()), (k, sp)
    # exported: masks folded into plain parameters, sparsity verified
    assert not hasattr(m.fc1, "weight_mask") and isinstance(m.fc1.weight, nn.Parameter)
    assert all(abs(v - 0.6) < 0.01 for v in res.layer_sparsity.values())
    assert res.epochs == 15


def test_one_shot_is_a_single_round_at_the_final_rate():
    x, y = _data()
    m = build_model("fc", num_classes=3, in_features=16, width=0.25, seed=1)
    res = prune_and_finetune(
        m,
        x,
        y,
        torch.arange(160),
        torch.arange(160, 240),
        arch="fc",
        approach="l1_unstructured",
        rate=0.6,
        rounds=1,
        config=TrainConfig(max_epochs=2),
    )
    assert [r.sparsity for r in res.rounds] == [0.6]
    assert all(abs(v - 0.6) < 0.01 for v in res.layer_sparsity.values())


def test_seconds_count_the_rounds_only_not_outputs_or_checkpoints():
    import time

    x, y = _data()
    delay, states = 0.2, []

    def run(**kw):
        m = build_model("fc", num_classes=3, in_features=16, width=0.25, seed=1)
        return prune_and_finetune(
            m, x, y, torch.arange(160), torch.arange(160, 240), arch="fc",
            approach="l1_unstructured", rate=0.6, rounds=3,
            config=TrainConfig(max_epochs=1, patience=10), **kw,
        )  # fmt: skip

    def slow_writer(state):
        time.sleep(delay)
        states.append(state)

    t = time.perf_counter()
    res = run(on_round_end=lambda k, m: time.sleep(delay), checkpoint=slow_writer)
    wall = time.perf_counter() - t
    assert res.output_seconds >= 3 * delay and res.checkpoint_seconds >= 2 * delay
    assert res.seconds + res.output_seconds + res.checkpoint_seconds <= wall
    assert res.seconds <= wall - 5 * delay
    summary = res.summary()
    assert {"seconds", "output_seconds", "checkpoint_seconds"} <= set(summary)
    # a resume point carries the clocks; the resumed run adds to them
    assert states[0]["output_seconds"] >= delay and states[0]["checkpoint_seconds"] == 0.0
    resumed = run(resume=states[1])
    assert resumed.output_seconds == states[1]["output_seconds"]
    assert resumed.checkpoint_seconds == states[1]["checkpoint_seconds"] >= delay
    assert resumed.seconds >= states[1]["seconds"]
