"""attacks.run: one table for metric, classifier and LiRA attacks; clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from wemem import attacks
from wemem.errors import ParamsError
from wemem.experiment.replicate import ModelOutputs
from wemem.training.loop import predict_proba

COLUMNS = [
    "attack",
    "family",
    "paper_metric_name",
    "paper_metric",
    "balanced_accuracy",
    "accuracy",
    "auc",
    "tpr_at_1fpr",
    "tpr_at_01fpr",
    "n_in",
    "n_out",
]
FAST = {"epochs": 2, "lr": 0.05, "device": "cpu"}
C, D = 4, 8


def outputs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, rows_in, rows_out) -> ModelOutputs:
    p_in = predict_proba(model, x, rows_in).numpy()
    p_out = predict_proba(model, x, rows_out).numpy()
    return ModelOutputs(
        probs_in=p_in,
        labels_in=y[rows_in].numpy(),
        rows_in=np.asarray(rows_in),
        flipped_in=np.zeros(len(rows_in), bool),
        probs_out=p_out,
        labels_out=y[rows_out].numpy(),
        rows_out=np.asarray(rows_out),
        flipped_out=np.zeros(len(rows_out), bool),
        train_acc=0.0,
        test_acc=0.0,
    )


@pytest.fixture(scope="module")
def world():
    """A pool, a victim and 2 shadow linear models with their (imbalanced) member splits."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(600, D, generator=gen)
    y = torch.randint(0, C, (600,), generator=gen)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        models = [nn.Linear(D, C) for _ in range(3)]
    perm = np.random.default_rng(0).permutation(600)
    splits = [
        (perm[i * 200 : i * 200 + 140], perm[i * 200 + 140 : (i + 1) * 200]) for i in range(3)
    ]
    outs = [outputs(m, x, y, *sp) for m, sp in zip(models, splits, strict=True)]
    return {"x": x, "models": models, "victim": outs[0], "shadows": outs[1:]}


def test_metric_and_classifier_rows(world):
    names = ["conf", "hconf_official", "nn", "top3_nn", "cl_nn", "shokri"]
    df = attacks.run(names, world["victim"], world["shadows"], seed=0, **FAST)
    assert list(df.columns) == COLUMNS
    assert df["attack"].tolist() == names
    assert df.set_index("attack")["family"].to_dict() == {
        "conf": "metric",
        "hconf_official": "metric",
        **{n: "classifier" for n in names[2:]},
    }
    metric, clf = df[df.family == "metric"], df[df.family == "classifier"]
    assert (metric.paper_metric_name == "balanced accuracy").all()
    assert (metric.paper_metric == metric.balanced_accuracy).all()
    assert (clf.paper_metric_name == "accuracy").all()
    assert (clf.paper_metric == clf.accuracy).all()
    assert (df.n_in == 140).all() and (df.n_out == 60).all()
    assert df[["balanced_accuracy", "accuracy", "auc"]].apply(lambda c: c.between(0, 1)).all().all()
    for name in names:
        fpr, tpr = df.attrs["roc"][name]
        s_in, s_out = df.attrs["scores"][name]
        assert fpr[0] == 0 and tpr[-1] == 1 and s_in.shape == (140,) and s_out.shape == (60,)
    # The classifier's accuracy is its member-probability ≥ 0.5 rule on the imbalanced set.
    s_in, s_out = df.attrs["scores"]["nn"]
    acc = ((s_in >= 0.5).sum() + (s_out < 0.5).sum()) / 200
    assert df.set_index("attack").loc["nn", "accuracy"] == pytest.approx(acc)
    # The metric rows equal metric_attack's.
    ref = attacks.metric_attack(
        "conf",
        (
            np.concatenate([s.probs_in for s in world["shadows"]]),
            np.concatenate([s.labels_in for s in world["shadows"]]),
        ),
        (
            np.concatenate([s.probs_out for s in world["shadows"]]),
            np.concatenate([s.labels_out for s in world["shadows"]]),
        ),
        world["victim"].members,
        world["victim"].nonmembers,
    )
    assert df.set_index("attack").loc["conf", "balanced_accuracy"] == ref["balanced_accuracy"]


def test_sensitivity_and_lira_with_models(world):
    df = attacks.run(
        ["samia", "nn_sens", "lira"],
        world["victim"],
        world["shadows"],
        victim_model=world["models"][0],
        shadow_models=world["models"][1:],
        x=world["x"],
        **FAST,
    )
    assert df["family"].tolist() == ["classifier", "classifier", "lira"]
    lira = df.set_index("attack").loc["lira"]
    assert lira.paper_metric_name == "tpr at 1% fpr" and lira.paper_metric == lira.tpr_at_1fpr
    assert np.isnan(lira.accuracy) and 0 <= lira.auc <= 1
    assert df.attrs["scores"]["lira"][0].shape == (140,)


def test_stored_sensitivities_need_no_models(world):
    rng = np.random.default_rng(0)

    def with_sens(o: ModelOutputs):
        o = ModelOutputs(**vars(o))
        o.sens_in = rng.random(o.probs_in.shape)
        o.sens_out = rng.random(o.probs_out.shape)
        return o

    victim, shadows = with_sens(world["victim"]), [with_sens(s) for s in world["shadows"]]
    df = attacks.run(["samia"], victim, shadows, **FAST)
    assert df["attack"].tolist() == ["samia"]


@pytest.mark.parametrize(
    ("names", "kwargs", "match"),
    [
        (["conf", "lira2"], {}, "unknown"),
        ([], {}, "empty"),
        (["nn", "nn"], {}, "duplicates"),
        (["samia"], {}, "sens"),
        (["nn_sens"], {"x": "pool"}, "sens"),
        (["lira"], {}, "lira needs shadow_models"),
        (["nn"], {"epoch": 3}, "unknown"),
    ],
)
def test_errors(world, names, kwargs, match):
    if kwargs.get("x") == "pool":
        kwargs = {"x": world["x"], "victim_model": world["models"][0]}
    with pytest.raises(ParamsError, match=match):
        attacks.run(names, world["victim"], world["shadows"], **kwargs)


def test_exports():
    assert attacks.CLASSIFIER_ATTACKS == ("nn", "top3_nn", "cl_nn", "samia", "nn_sens", "shokri")
    assert set(attacks.ALL_ATTACKS) >= set(attacks.METRIC_ATTACKS) | {"hconf_official", "lira"}
    assert {"run", "ALL_ATTACKS", "CLASSIFIER_ATTACKS"} <= set(attacks.__all__)
