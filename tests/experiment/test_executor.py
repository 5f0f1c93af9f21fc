"""The pool and Ray executors train the same models as the local one: same entries, same metrics.

Ray starts a local cluster here (offline, usage statistics off) in a few seconds; both tests skip
when Ray is not installed (it is an optional extra, but part of the test extra).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from wemem.batch import runner
from wemem.errors import ParamsError
from wemem.experiment import executor

REPO = Path(__file__).resolve().parents[2]


def test_executor_name_is_checked(monkeypatch):
    monkeypatch.setenv("WEMEM_EXECUTOR", "spark")
    with pytest.raises(ParamsError, match="allowed values are local, pool, ray"):
        executor.name()
    monkeypatch.setenv("WEMEM_EXECUTOR", "local")
    assert executor.prefetch(object(), [executor.Request("dense", "victim")]) == 0


def _untimed(obj):
    if isinstance(obj, dict):
        return {k: _untimed(v) for k, v in obj.items()
                if "second" not in k and "speedup" not in k and k != "output_dir"}  # fmt: skip
    if isinstance(obj, list):
        return [_untimed(v) for v in obj]
    return obj


# Ray starts a local cluster (about 30-70 s on 2 cores): `make test-slow`, which .ci/run also runs
@pytest.mark.parametrize(
    "other",
    [pytest.param("pool", marks=pytest.mark.slow), pytest.param("ray", marks=pytest.mark.slow)],
)  # both slow (make test-slow): make test keeps the pool through test_sweep_under_pool_equals_local
def test_parallel_experiment_equals_local(other, tiny_settings, tmp_path, monkeypatch):
    if other == "ray":
        pytest.importorskip("ray")
    monkeypatch.setenv("WEMEM_POOL_WORKERS", "2")
    from dataclasses import replace

    from wemem.experiment import adaptive
    from wemem.experiment.replicate import Experiment

    stages, tables = {}, {}
    for name in ("local", other):
        monkeypatch.setenv("WEMEM_EXECUTOR", name)
        s = replace(tiny_settings, cache_dir=str(tmp_path / name), n_shadows=2)
        exp = Experiment(s, seed=0)
        requests = [executor.Request("defended", r, "rmr", False, {"tau": 0.5, "lambda_r": 0.1})
                    for r in exp.roles]  # fmt: skip
        submitted = exp.prefetch(requests)
        assert submitted == (0 if name == "local" else 6)  # 3 dense + 3 pruning runs as tasks
        assert exp.prefetch(requests) == 0  # now all cached
        stages[name] = adaptive.defended_stage(exp, "rmr", tau=0.5, lambda_r=0.1)
        # two classifier attacks: one task each under pool and ray
        tables[name] = adaptive.evaluate(exp, stages[name], ["conf", "nn", "top3_nn"],
                                         attack_epochs=3)  # fmt: skip
    executor.shutdown()
    assert (
        tables[other]
        .drop(columns=["seconds"], errors="ignore")
        .equals(tables["local"].drop(columns=["seconds"], errors="ignore"))
    )
    for attack, (s_in, s_out) in tables["local"].attrs["scores"].items():
        r_in, r_out = tables[other].attrs["scores"][attack]
        assert np.array_equal(s_in, r_in) and np.array_equal(s_out, r_out), attack
    for role in stages["local"].roles:
        a, b = stages["local"].outputs[role], stages[other].outputs[role]
        assert np.array_equal(a.probs_in, b.probs_in) and np.array_equal(a.probs_out, b.probs_out)


@pytest.mark.slow
def test_reproduce_with_ray_gives_the_local_metrics(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    metrics = {}
    for name in ("local", "ray"):
        monkeypatch.setenv("WEMEM_CACHE", str(tmp_path / f"cache-{name}"))
        out = tmp_path / name
        runner.reproduce("tiny", only="03_*", outputs_root=out, executor=name,
                         notebooks_dir=REPO / "notebooks", params_dir=REPO / "params")  # fmt: skip
        metrics[name] = json.loads((out / "03_defense_rsw" / "tiny" / "metrics.json").read_text())
        record = json.loads((out / "03_defense_rsw" / "tiny" / "run.json").read_text())
        assert record["executor"] == name and record["cache_entries"]
    assert _untimed(metrics["ray"]) == _untimed(metrics["local"])


def test_sweep_under_pool_equals_local(tiny_settings, tmp_path, monkeypatch):
    """A sweep submits the classifier attacks of several settings before collecting any (bounded by
    LOOKAHEAD, here 1 so the bound is exercised): the table is the one-at-a-time local table."""
    from dataclasses import replace

    from wemem.defenses.config import DefenseConfig
    from wemem.experiment.replicate import Experiment
    from wemem.studies import sweeps

    monkeypatch.setenv("WEMEM_POOL_WORKERS", "2")
    monkeypatch.setattr(sweeps, "LOOKAHEAD", 1)
    configs = [DefenseConfig("base", {}), DefenseConfig("rmr", {"tau": 0.5, "lambda_r": 0.1}),
               DefenseConfig("rmr", {"tau": 0.5, "lambda_r": 1.0})]  # fmt: skip
    tables = {}
    for name in ("local", "pool"):
        monkeypatch.setenv("WEMEM_EXECUTOR", name)
        s = replace(tiny_settings, cache_dir=str(tmp_path / "cache"), n_shadows=2)
        tables[name] = sweeps.sweep(Experiment(s, seed=0), configs, ["conf", "nn", "cl_nn"],
                                    attack_epochs=2, attack_train_max=200)  # fmt: skip
    executor.shutdown()
    untimed = [c for c in tables["local"].columns if "second" not in c]
    assert len(tables["local"]) == 9
    assert tables["pool"][untimed].equals(tables["local"][untimed])


def test_classifier_attacks_are_cached_on_their_inputs(tiny_settings, tmp_path, monkeypatch):
    """A second evaluation of the same stage reads every attack model's scores from the cache (no
    training) and gives the same table; other inputs (another seed) train again."""
    from dataclasses import replace

    from wemem.attacks import classifier
    from wemem.experiment import adaptive
    from wemem.experiment.replicate import Experiment

    monkeypatch.setenv("WEMEM_EXECUTOR", "local")
    exp = Experiment(replace(tiny_settings, cache_dir=str(tmp_path), n_shadows=2), seed=0)
    st = adaptive.stage(exp, "dense")
    first = adaptive.evaluate(exp, st, ["conf", "nn", "cl_nn"], attack_epochs=2)
    trained = []
    real = classifier.train_attack_model
    monkeypatch.setattr(classifier, "train_attack_model",
                        lambda *a, **k: trained.append(1) or real(*a, **k))  # fmt: skip
    again = adaptive.evaluate(exp, st, ["conf", "nn", "cl_nn"], attack_epochs=2)
    assert trained == [] and again.equals(first)
    for name, (s_in, s_out) in first.attrs["scores"].items():
        assert np.array_equal(again.attrs["scores"][name][0], s_in), name
        assert np.array_equal(again.attrs["scores"][name][1], s_out), name
    other = adaptive.evaluate(exp, st, ["nn"], attack_epochs=2, seed=1)
    assert len(trained) == 1 and not other.equals(first.iloc[[1]].reset_index(drop=True))


def test_an_interrupted_idle_pool_worker_exits_without_a_traceback(tmp_path):
    """The kernel's end sends SIGINT to its process group; the pool's idle workers used to print
    a KeyboardInterrupt traceback each into the batch log."""
    import subprocess
    import sys

    script = tmp_path / "interrupt.py"
    script.write_text(
        "import os, signal, time\n"
        "from wemem.experiment import executor\n"
        "if __name__ == '__main__':\n"
        "    pid = executor.submit_calls(os.getpid, [{}]).results()[0]\n"
        "    os.kill(pid, signal.SIGINT)\n"
        "    time.sleep(1.0)\n"
        "    executor.shutdown()\n"
        "    print('done', pid)\n"
    )
    env = {**os.environ, "WEMEM_EXECUTOR": "pool", "WEMEM_POOL_WORKERS": "1"}
    env.pop("WEMEM_SLOTS_DIR", None)
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "done" in done.stdout
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr
