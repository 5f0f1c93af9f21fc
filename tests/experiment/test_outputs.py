"""The per-sample outputs the attacks read are computed in float32, never under autocast."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import wemem.training.loop as loop
from wemem.experiment import stages
from wemem.experiment.outputs import model_outputs, posteriors
from wemem.experiment.replicate import Experiment


def test_posteriors_are_float32_even_inside_a_bf16_autocast(tiny_settings):
    exp = Experiment(tiny_settings, seed=0)
    model, rows = exp.new_model("victim"), exp.split("victim").train
    want = torch.softmax(model.eval()(exp.pool.x[rows]).float(), dim=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = torch.softmax(model(exp.pool.x[rows]).float(), dim=1)  # autocast is on here
        got = posteriors(model, exp.pool.x, rows, batch_size=7)
    assert got.dtype == torch.float32
    assert (bf16 - want).abs().max() > 1e-4  # what bf16 would have lost
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)  # fp32 up to summation order


def test_model_outputs_never_enter_the_training_autocast(tiny_settings, monkeypatch):
    exp = Experiment(tiny_settings, seed=0)
    model = exp.new_model("shadow0")

    def boom(device):
        raise AssertionError("the output pass entered the training autocast")

    monkeypatch.setattr(loop, "training_autocast", boom)
    out = model_outputs(model, exp.pool, exp.split("shadow0"))
    assert out.probs_in.dtype == np.float32 and out.probs_out.dtype == np.float32
    with pytest.raises(AssertionError, match="training autocast"):
        loop.predict_proba(model, exp.pool.x, exp.split("shadow0").test)


def test_dense_outputs_of_an_entry_without_the_fp32_mark_are_recomputed(tiny_settings):
    exp = Experiment(tiny_settings, seed=0)
    _, _, fresh = exp.dense("victim")
    key = exp.cache.key("dense", exp.dense_spec("victim"))
    entry = exp.cache.load("dense", key)
    assert entry[stages.FP32_OUTPUTS] is True
    old = dict(entry)  # as an entry written before: no mark, outputs from bf16 autocast
    del old[stages.FP32_OUTPUTS]
    old["outputs"].probs_in = np.round(old["outputs"].probs_in, 2)
    exp.cache.save("dense", key, old, exp.dense_spec("victim"))
    _, _, out = Experiment(tiny_settings, seed=0).dense("victim")
    np.testing.assert_array_equal(out.probs_in, fresh.probs_in)
    assert stages.FP32_OUTPUTS not in exp.cache.load("dense", key)  # read, never rewritten
