"""Two batches on one outputs folder, ``cache gc`` during a batch, and a lock left by a killed
batch (wemem/batch/locks.py). The other batch is a real process holding the locks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wemem import cache as wcache
from wemem import cli
from wemem.batch import locks, runner
from wemem.errors import WememError

HOLD = """
import sys, time
from pathlib import Path
from wemem.batch import locks
with locks.batch(Path(sys.argv[1]), Path(sys.argv[2])):
    print("held", flush=True)
    time.sleep(float(sys.argv[3]))
"""


def _holder(out: Path, cache: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(out), str(cache), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_batch_on_the_same_outputs_exits_naming_the_holder(batch, tmp_path):
    kw, calls, _, _ = batch
    holder = _holder(kw["outputs_root"], Path(os.environ["WEMEM_CACHE"]), 60)
    try:
        with pytest.raises(WememError, match=rf"in use by pid {holder.pid} since .*--wait"):
            runner.reproduce("tiny", **kw)
        assert calls == []  # nothing ran
    finally:
        holder.kill()
        holder.wait()


def test_with_wait_the_second_batch_runs_after_the_first(batch):
    kw, calls, _, _ = batch
    holder = _holder(kw["outputs_root"], Path(os.environ["WEMEM_CACHE"]), 1.5)
    t0 = time.monotonic()
    runner.reproduce("tiny", wait=True, **kw)
    assert time.monotonic() - t0 > 0.5 and calls == ["00_hello"]
    assert holder.wait() == 0


def test_batches_on_other_outputs_share_the_cache(tmp_path):
    cache = tmp_path / "cache"
    holder = _holder(tmp_path / "a", cache, 60)
    try:
        with locks.batch(tmp_path / "b", cache):  # a shared cache lock: no wait, no error
            pass
    finally:
        holder.kill()
        holder.wait()


def test_cache_gc_refuses_while_a_batch_holds_the_cache(tmp_path, capsys):
    cache = tmp_path / "cache"
    store = wcache.Cache(cache)
    store.save("dense", store.key("dense", {"n": 1}), {"w": 1}, {"n": 1})
    holder = _holder(tmp_path / "out", cache, 60)
    try:
        code = cli.main(["cache", "gc", "--all", "--dir", str(cache), "--outputs", str(tmp_path)])
        err = capsys.readouterr().err
        assert code == 2 and "in use by a running batch" in err and len(err.splitlines()) == 1
        assert store.contains("dense", store.key("dense", {"n": 1}))  # nothing deleted
    finally:
        holder.kill()
        holder.wait()
    assert cli.main(["cache", "gc", "--all", "--dir", str(cache), "--outputs", str(tmp_path)]) == 0
    assert not store.contains("dense", store.key("dense", {"n": 1}))


def test_a_lock_left_by_a_killed_batch_is_taken_over(tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    holder = _holder(out, cache, 60)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert f"pid {holder.pid}" in locks.outputs_lock(out).read_text()  # its owner line stays
    with locks.batch(out, cache):
        assert f"pid {os.getpid()} since" in locks.outputs_lock(out).read_text()
