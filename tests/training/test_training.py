import torch
import torch.nn.functional as F

from wemem.models import build_model
from wemem.training.loop import Batch, Hooks, TrainConfig, accuracy, fit, predict_proba


def _data(n=300, d=20, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    proto = torch.randn(c, d, generator=g)
    y = torch.randint(0, c, (n,), generator=g)
    x = proto[y] + 0.8 * torch.randn(n, d, generator=g)
    return x, y


def _model(d=20, c=3, seed=0):
    return build_model("fc", num_classes=c, in_features=d, width=0.25, seed=seed)


def test_fit_learns_and_keeps_best_dev_state():
    x, y = _data()
    m = _model()
    res, opts = fit(
        m,
        x,
        y,
        torch.arange(200),
        torch.arange(200, 300),
        config=TrainConfig(max_epochs=15, batch_size=32),
    )
    assert res.best_dev_acc > 0.8
    assert set(opts) == {"main"}
    m.load_state_dict(res.best_state)
    assert accuracy(m, x, y, torch.arange(200, 300)) == res.best_dev_acc
    assert [h["epoch"] for h in res.history] == list(range(res.epochs_run))


def test_fit_is_deterministic_on_cpu():
    x, y = _data()
    runs = []
    for _ in range(2):
        m = _model(seed=3)
        res, _ = fit(
            m,
            x,
            y,
            torch.arange(200),
            torch.arange(200, 300),
            config=TrainConfig(max_epochs=4, batch_size=32, seed=5),
        )
        runs.append((res.history, predict_proba(m, x, torch.arange(300))))
    assert [h["train_loss"] for h in runs[0][0]] == [h["train_loss"] for h in runs[1][0]]
    assert torch.equal(runs[0][1], runs[1][1])


class _NeverImproves(Hooks):
    """Zero learning rate: dev accuracy never improves after epoch 0."""

    def make_optimizers(self, model, config):
        return {"main": torch.optim.SGD(model.parameters(), lr=0.0)}


def test_early_stopping_patience_semantics():
    # epoch 0 sets the best; epochs 1..patience+1 do not improve; stop once the counter > patience
    x, y = _data()
    for patience in (0, 2, 5):
        res, _ = fit(
            _model(),
            x,
            y,
            torch.arange(200),
            torch.arange(200, 300),
            config=TrainConfig(max_epochs=50, patience=patience),
            hooks=_NeverImproves(),
        )
        assert res.epochs_run == patience + 2
        assert res.best_epoch == 0
        assert res.stop_reason.startswith("early stop")


class _Window(Hooks):
    """Epoch e uses 50 rows starting at 50·e; empty after the data runs out; two optimizers."""

    def __init__(self):
        self.seen, self.steps = [], {"a": 0, "b": 0}

    def make_optimizers(self, model, config):
        return {k: torch.optim.Adam(model.parameters(), lr=1e-3) for k in ("a", "b")}

    def epoch_indices(self, epoch, train_rows):
        return train_rows[epoch * 50 : epoch * 50 + 50]

    def batch_plan(self, epoch, rows, *, batch_size, generator):
        for i, chunk in enumerate(rows.split(batch_size)):
            self.seen.append(chunk.tolist())
            name = "a" if i == 0 else "b"
            self.steps[name] += 1
            yield Batch(chunk, name)

    def loss(self, logits, targets, batch, epoch):
        return F.cross_entropy(logits, targets) * 2.0

    def empty_reason(self, epoch):
        return f"window empty at epoch {epoch}"


def test_hooks_choose_rows_batches_optimizers_and_stop_cleanly():
    x, y = _data()
    h = _Window()
    res, opts = fit(
        _model(),
        x,
        y,
        torch.arange(200),
        torch.arange(200, 300),
        config=TrainConfig(max_epochs=10, patience=100, batch_size=32),
        hooks=h,
    )
    assert res.epochs_run == 4 and res.stop_reason == "window empty at epoch 4"
    assert sorted(sum(h.seen, [])) == list(range(200))
    assert h.steps == {"a": 4, "b": 4}
    assert all(o.state for o in opts.values())  # both optimizers stepped


class _OneRowTail(Hooks):
    """Batches of 5 rows and a last batch of one row (what a sliding window can produce)."""

    def batch_plan(self, epoch, rows, *, batch_size, generator):
        yield Batch(rows[:5])
        yield Batch(rows[5:6])


def test_one_row_batch_is_skipped_for_batchnorm_models_only():
    x, y = torch.randn(12, 1, 8, 8), torch.randint(0, 3, (12,))
    cnn = build_model("resnet18", num_classes=3, in_channels=1, width=0.125, stem_maxpool=False)
    res, _ = fit(cnn, x, y, torch.arange(6), torch.arange(6, 12),
                 config=TrainConfig(max_epochs=1), hooks=_OneRowTail())  # fmt: skip
    assert res.history[0]["n_train"] == 5  # the one-row batch (1×1 feature maps) was skipped
    fc = build_model("fc", num_classes=3, in_features=64, width=0.125)
    res, _ = fit(fc, x.flatten(1), y, torch.arange(6), torch.arange(6, 12),
                 config=TrainConfig(max_epochs=1), hooks=_OneRowTail())  # fmt: skip
    assert res.history[0]["n_train"] == 6
