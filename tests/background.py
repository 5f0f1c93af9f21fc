"""Batches that run beside the test suite: `wemem reproduce` in its own process group, started by
tests/conftest.py as soon as the session knows a test will read it.

Most of the suite runs in one process on one core; the two notebook batches (the tiny profile of
every notebook, the paper smoke sample) run their kernels on the other core meanwhile, so their
tests only wait for them. Each batch has its own data root, cache and outputs under its folder."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Batch:
    """A background ``wemem reproduce``: its folder (``data/``, ``cache/``, ``outputs/``, ``log``)
    and its process."""

    root: Path
    proc: subprocess.Popen

    def wait(self, summary: str, *, timeout: float = 1800) -> tuple[Path, list[dict]]:
        """Wait for the batch; fail with its log's tail unless it exited 0. Returns the outputs
        folder of its runs and the runs of its summary (``summary``: the file name under it,
        e.g. ``reproduce-tiny.json``)."""
        rc = self.proc.wait(timeout=timeout)
        log = (self.root / "log").read_text(errors="replace")
        assert rc == 0, f"the background batch failed (exit {rc}):\n{log[-4000:]}"
        out = next(p.parent for p in (self.root / "outputs").rglob(summary))
        return out, json.loads((out / summary).read_text())["runs"]

    def stop(self) -> None:
        """Kill the batch and its kernels if still running, and remove its folder."""
        if self.proc.poll() is None:  # the batch and its kernels: one process group
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


def start(root: Path, profile: str, *args: str, data: Path | None = None) -> Batch:
    """Start ``wemem reproduce --profile PROFILE ARGS --jobs 2 --executor local`` on the repository's
    notebooks and params, with ``root/data`` (or ``data``) as its data root, ``root/cache`` its
    cache and ``root/outputs`` its outputs; stdout and stderr go to ``root/log``."""
    root.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "WEMEM_DATA": str(data or root / "data"),
        "WEMEM_CACHE": str(root / "cache"),
    }
    cmd = [sys.executable, "-m", "wemem.cli", "reproduce", "--profile", profile, *args,
           "--jobs", "2", "--executor", "local",
           "--notebooks", str(ROOT / "notebooks"), "--params", str(ROOT / "params"),
           "--outputs", str(root / "outputs")]  # fmt: skip
    log = (root / "log").open("wb")
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
    )  # its own group: stop() ends it all
    return Batch(root, proc)
