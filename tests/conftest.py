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
def tiny_batch(request, tmp_path_factory):
    """``wemem reproduce --profile tiny`` of every notebook, once per test session, run beside the
    suite (:mod:`background`): the outputs folder and the runs of its summary (the notebooks'
    tests and the plan-vs-cache test read them; the batch's cache is ``out.parent / "cache"``)."""
    batch = _background(request.config).get("tiny_batch")
    if batch is None:  # e.g. a test run alone by node id: start it now
        batch = _background(request.config)["tiny_batch"] = _start_tiny(
            tmp_path_factory.mktemp("tiny-batch")
        )
    return batch.wait("reproduce-tiny.json")


# ---- batches that run beside the suite (tests/background.py) ------------------------------------
_SMOKE_TEST = "test_smoke_sample.py::test_each_sampled_run_executes_at_smoke_scale"


def _background(config: pytest.Config) -> dict:
    if not hasattr(config, "wemem_background"):
        config.wemem_background = {}
    return config.wemem_background


def _start_tiny(root: Path):
    import background

    return background.start(root, "tiny")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the notebook batches the session's tests will read as soon as it knows them: the tiny
    batch of every notebook and the paper smoke sample (tests/test_smoke_sample.py). Their kernels
    then use the core the rest of the suite leaves idle, and their tests only wait for them."""
    import tempfile

    started = _background(session.config)
    if any("tiny_batch" in getattr(item, "fixturenames", ()) for item in session.items):
        started["tiny_batch"] = _start_tiny(Path(tempfile.mkdtemp(prefix="wemem-tiny-batch-")))
    if any(item.nodeid.endswith(_SMOKE_TEST) for item in session.items):
        from test_smoke_sample import start_in_background

        root = Path(tempfile.mkdtemp(prefix="wemem-smoke-sample-"))
        started["smoke_sample"] = start_in_background(root)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop the background batches still running when the session ends (their tests did not wait
    for them) and remove their folders."""
    for batch in _background(session.config).values():
        batch.stop()
