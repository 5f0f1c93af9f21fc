"""The time table's repeats: in this process under ``local``, one task per repeat under the pool,
with the same runs (epochs, accuracy) either way; only the seconds may differ."""

import pytest

from wemem import params
from wemem.defenses.config import BASE, DefenseConfig
from wemem.experiment.replicate import Experiment
from wemem.studies import time_cost

PPB = DefenseConfig("ppb", {"beta": 4.0}, {"setting": "PPB"})


def _costs(tiny_values, tmp_path, monkeypatch, executor_name: str):
    monkeypatch.setenv("WEMEM_EXECUTOR", executor_name)
    monkeypatch.setenv("WEMEM_POOL_WORKERS", "2")
    s = params.validate({**tiny_values, "cache_dir": str(tmp_path / "cache")})
    exp = Experiment(s, seed=0)
    exp.dense("victim")
    return time_cost.time_cost(exp, [BASE, PPB], repeats=2)


def test_local_repeats_time_every_config_in_turn(tiny_values, tmp_path, monkeypatch):
    costs = _costs(tiny_values, tmp_path, monkeypatch, "local")
    assert list(costs.defense) == ["base", "ppb"] and (costs.repeats == 2).all()
    assert all(len(r) == 2 and min(r) > 0 for r in costs.round_seconds)
    assert costs.loc[0, "ratio_to_base"] == 1.0


# spawned workers import torch (about 20 s on 2 cores): `make test-slow`
@pytest.mark.slow
def test_the_pool_runs_the_repeats_at_once_and_trains_what_local_trains(
    tiny_values, tmp_path, monkeypatch
):
    from wemem.experiment import executor

    local = _costs(tiny_values, tmp_path / "local", monkeypatch, "local")
    pooled = _costs(tiny_values, tmp_path / "pool", monkeypatch, "pool")
    executor.shutdown()
    same = ["defense", "setting", "repeats", "epochs", "test_acc"]
    assert local[same].equals(pooled[same])
    assert all(len(r) == 2 and min(r) > 0 for r in pooled.round_seconds)
