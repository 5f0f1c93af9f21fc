"""Shared test setup: one CPU thread, an isolated model cache and data root per test session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from wemem import params

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _isolated_env(tmp_path_factory: pytest.TempPathFactory):
    torch.set_num_threads(1)
    mp = pytest.MonkeyPatch()
    mp.setenv("WEMEM_CACHE", str(tmp_path_factory.mktemp("cache")))
    mp.setenv("WEMEM_DATA", str(tmp_path_factory.mktemp("data")))
    yield
    mp.undo()


TINY = {
    "profile": "tiny",
    "data_options": {"n_samples": 900, "n_features": 60, "n_classes": 6, "bitflip": 0.3},
    "label_noise": 0.1,
    "n_shadows": 1,
    "seeds": [0],
    "max_epochs": 4,
    "finetune_epochs": 2,
}


@pytest.fixture(scope="session")
def tiny_values() -> dict:
    """:data:`TINY` for module-scoped fixtures (``from conftest import`` would find
    tests/batch/conftest.py in a whole-suite session)."""
    return dict(TINY)


@pytest.fixture
def tiny_settings(tmp_path) -> params.Settings:
    """A few-second synthetic setting with its own cache folder."""
    return params.validate({**TINY, "cache_dir": str(tmp_path / "cache")})


@pytest.fixture(scope="session")
def tiny_batch(tmp_path_factory, _isolated_env):
    """``wemem reproduce --profile tiny`` of every notebook, once per test session: the outputs
    folder and the runner's results (the notebooks' tests and the plan-vs-cache test read it)."""
    from wemem.batch import runner

    out = tmp_path_factory.mktemp("outputs")
    results = runner.reproduce(
        "tiny",
        outputs_root=out,
        notebooks_dir=ROOT / "notebooks",
        params_dir=ROOT / "params",
        jobs=2,  # two runs at once, in dependency order (make test runs on 2 cores)
    )
    return out, results


# ---- the smoke sample runs beside the suite ------------------------------------------------------
_SMOKE_TEST = "test_smoke_sample.py::test_each_sampled_run_executes_at_smoke_scale"


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the paper smoke sample (tests/test_smoke_sample.py) in the background as soon as the
    session knows it will run it: its kernels then use the core the rest of the suite leaves
    idle, and its test only waits for it."""
    if not any(item.nodeid.endswith(_SMOKE_TEST) for item in session.items):
        return
    import tempfile

    from test_smoke_sample import start_in_background

    root = Path(tempfile.mkdtemp(prefix="wemem-smoke-sample-"))
    session.config.smoke_sample = (root, start_in_background(root))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop the background smoke sample if the session ends before its test waited for it, and
    remove its folder."""
    started = getattr(session.config, "smoke_sample", None)
    if started is None:
        return
    import os
    import shutil
    import signal
    import subprocess

    root, proc = started
    if proc.poll() is None:  # the batch and its kernels: one process group
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    shutil.rmtree(root, ignore_errors=True)
