"""Core slots shared by the batch's worker pools (wemem/experiment/slots.py)."""

from __future__ import annotations

import threading
import time

import pytest

from wemem.errors import ParamsError
from wemem.experiment import slots


@pytest.fixture
def slot_env(tmp_path, monkeypatch):
    def configure(n: int) -> None:
        monkeypatch.setenv(slots.ENV_DIR, str(tmp_path / "slots"))
        monkeypatch.setenv(slots.ENV_COUNT, str(n))

    return configure


def test_without_slots_a_block_runs_at_once(monkeypatch):
    monkeypatch.delenv(slots.ENV_DIR, raising=False)
    with slots.held() as slot:
        assert slot is None


def test_a_held_slot_is_not_given_twice(slot_env):
    slot_env(2)
    with slots.held() as a, slots.held() as b:  # each open file is its own flock holder
        assert {a, b} == {0, 1}
    with slots.held() as c:
        assert c == 0  # released on exit


def test_a_block_waits_for_a_free_slot(slot_env):
    slot_env(1)
    events: list[tuple[str, float]] = []

    def second() -> None:
        with slots.held():
            events.append(("second in", time.monotonic()))

    with slots.held():
        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.3)
        assert not events  # still waiting: the only slot is held
        released = time.monotonic()
    t.join(timeout=10)
    assert events and events[0][1] >= released


def test_bad_slot_count_names_the_variable(slot_env, monkeypatch):
    slot_env(1)
    for bad in ("0", "two"):
        monkeypatch.setenv(slots.ENV_COUNT, bad)
        with pytest.raises(ParamsError, match=f"WEMEM_SLOTS = '{bad}': expected an integer >= 1"):
            with slots.held():
                pass


def test_the_runner_gives_pool_kernels_the_machine_slots(tmp_path, monkeypatch):
    from wemem.batch.execution import _slot_env

    monkeypatch.setenv("WEMEM_POOL_WORKERS", "3")
    env = _slot_env("pool")
    assert env == {slots.ENV_DIR: str(slots.machine_folder()), slots.ENV_COUNT: "3"}
    assert _slot_env("local") == _slot_env("ray") == {}


def _timed_nap(seconds: float) -> tuple[float, float]:
    start = time.time()
    time.sleep(seconds)
    return start, time.time()


def test_pool_workers_take_turns_at_one_slot(slot_env, monkeypatch):
    """Two workers, one slot: the pool's calls never overlap (each holds the slot while it runs)."""
    from wemem.experiment import executor

    slot_env(1)
    monkeypatch.setenv("WEMEM_POOL_WORKERS", "2")
    monkeypatch.setenv("WEMEM_EXECUTOR", "pool")
    executor.shutdown()
    try:
        spans = executor.submit_calls(_timed_nap, [{"seconds": 0.4}] * 4).results()
    finally:
        executor.shutdown()
    spans.sort()
    assert all(b[0] >= a[1] for a, b in zip(spans, spans[1:], strict=False))
