"""Resuming a pruning run at round granularity, and a batch killed with SIGKILL losing nothing."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from wemem import cache as wcache
from wemem import defenses
from wemem.defenses.baselines import ADVHooks
from wemem.models import build_model
from wemem.pruning import prune_and_finetune
from wemem.training.loop import Hooks, TrainConfig


def _data(n=120, d=12, c=3):
    gen = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=gen), torch.randint(0, c, (n,), generator=gen)


def _run(model, x, y, factory, **kw):
    config = TrainConfig(batch_size=16, max_epochs=3, patience=5, seed=3)
    return prune_and_finetune(
        model, x, y, torch.arange(80), torch.arange(80, 120), arch="fc",
        approach="l1_unstructured", rate=0.6, rounds=4, config=config, hooks_factory=factory, **kw,
    )  # fmt: skip


def _rmr_factory(n: int):
    scores = np.linspace(0, 1, n)
    labels = np.arange(n) % 3
    return defenses.make_hooks_factory("rmr", scores=scores, labels=labels, tau=0.5, lambda_r=0.1)


@pytest.mark.parametrize(
    "factory",
    [Hooks, lambda: ADVHooks(theta=1.0, k_attack=2), _rmr_factory(120)],
    ids=["base", "adv", "rmr"],
)
@pytest.mark.parametrize("stop_after", [0, 2])
def test_resumed_run_equals_uninterrupted(factory, stop_after):
    x, y = _data()
    dense = build_model("fc", num_classes=3, in_features=12, width=0.125, seed=1)
    full_model = copy.deepcopy(dense)
    states: list[dict] = []
    full = _run(full_model, x, y, factory, checkpoint=lambda st: states.append(copy.deepcopy(st)))
    assert [s["round"] for s in states] == [0, 1, 2]  # none after the last round

    resumed_model = copy.deepcopy(dense)
    resumed = _run(resumed_model, x, y, factory, resume=states[stop_after])
    assert len(resumed.rounds) == 4

    def untimed(run):
        return [[{k: v for k, v in h.items() if "seconds" not in k} for h in r.fit.history]
                for r in run.rounds]  # fmt: skip

    assert untimed(resumed) == untimed(full)
    want, got = full_model.state_dict(), resumed_model.state_dict()
    assert want.keys() == got.keys()
    for k in want:
        assert torch.equal(want[k], got[k]), k


def test_dp_hooks_write_no_round_checkpoint():
    from wemem.defenses.dp import DPSGDHooks

    assert DPSGDHooks.resumable is False
    assert Hooks.resumable is True


# --- SIGKILL mid-batch ---------------------------------------------------------------------------

_SCRIPT = """
import json, sys, logging
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
import numpy as np
from wemem import params
from wemem.experiment.replicate import Experiment
settings = params.validate(json.loads(sys.argv[1]))
exp = Experiment(settings, seed=0)
out = {}
for role in exp.roles:
    run = exp.defended(role, "rsw_h2l", width=20, step=5)
    out[role] = {"probs_in": run.final.probs_in.tolist(), "rounds": [
        {k: v for k, v in r.items() if "seconds" not in k and k != "history"}
        for r in run.summary["rounds"]]}
print(json.dumps(out))
"""


def _launch(settings: dict, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, json.dumps(settings)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _unfinished_after_a_finished(root: Path) -> bool:
    finished = {p.stem for p in root.glob("pruned/*/*.json")}
    for meta in root.glob("round/*/*.json"):
        try:
            owner = json.loads(meta.read_text())["spec"]["pruned"]
        except (ValueError, KeyError, OSError):
            continue
        if finished and owner not in finished:
            return True
    return False


@pytest.mark.slow  # a batch killed and rerun end to end: `make test-slow`
def test_sigkill_mid_batch_then_rerun_loses_nothing(tmp_path, tiny_settings):
    base = {**tiny_settings.to_dict(), "finetune_epochs": 3, "pruning_rounds": 5, "memscore_models": 4,
            "memscore_epochs": 2}  # fmt: skip
    env = {**os.environ, "WEMEM_PROGRESS": "0", "PYTHONPATH": str(Path.cwd())}

    clean = _launch({**base, "cache_dir": str(tmp_path / "clean")}, env)
    want, err = clean.communicate(timeout=300)
    assert clean.returncode == 0, err

    killed_dir = tmp_path / "killed"
    paused = tmp_path / "paused"
    # 5 rounds: 4 resume points per run; the 6th is a shadow's second, after the finished victim
    pause = {"WEMEM_PAUSE_AT_RESUME_POINT": "6", "WEMEM_PAUSE_FILE": str(paused)}
    proc = _launch({**base, "cache_dir": str(killed_dir)}, {**env, **pause})
    deadline = time.monotonic() + 300
    while not paused.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the run waits at its pause point: no race with the kill below
    assert paused.exists(), "the run did not reach its pause point"
    assert _unfinished_after_a_finished(killed_dir)  # the victim is done; a shadow mid-pruning
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done_before = {p.name for p in (killed_dir / "pruned").glob("*/*.pt")}

    rerun = _launch({**base, "cache_dir": str(killed_dir)}, env)
    got, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert json.loads(got) == json.loads(want)  # identical to the uninterrupted run
    assert "resuming at round" in err  # the killed model continued from its checkpoint
    assert err.count("pruned model (trained)") == 1  # the finished victim was not retrained
    assert done_before <= {p.name for p in (killed_dir / "pruned").glob("*/*.pt")}
    assert not list((killed_dir / "round").glob("*/*.pt"))  # resume points dropped when done
    assert wcache.verify(killed_dir)["corrupted"] == []
