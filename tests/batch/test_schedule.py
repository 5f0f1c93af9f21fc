"""``wemem reproduce --jobs N``: runs in flight at once, in the manifest's dependency order, an
``exclusive`` notebook alone, the first failure stops new starts."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from wemem.batch.discovery import RunSpec
from wemem.batch.schedule import run_parallel
from wemem.errors import ParamsError

MANIFEST = """
notebooks:
  a: {reproduces: x, needs: [], produces: []}
  b: {reproduces: x, needs: [], produces: []}
  c: {reproduces: x, needs: [a], produces: []}
  t: {reproduces: x, needs: [], produces: [], exclusive: always}
  s: {reproduces: x, needs: [], produces: [], exclusive: parallel}
  z: {reproduces: x, needs: [a, b, c, t], produces: []}
profiles:
  p:
    hardware: cpu
    runs: []
"""


PAIR = {"a": "b", "b": "a"}  # started together by two jobs


def _fake_run(spec: RunSpec, *, log: str, fail: str = "") -> dict:
    """Stands in for run_notebook: records when it ran (a module-level function: picklable).

    ``a`` and ``b`` wait (up to 30 s) until the other has started: a scheduler that runs them at
    once passes however slowly its worker processes start; one that runs them one after the
    other leaves them not overlapping, and the test fails."""
    start = time.time()
    if spec.stem in PAIR:
        (Path(log) / f"{spec.stem}.started").touch()
        partner = Path(log) / f"{PAIR[spec.stem]}.started"
        while not partner.exists() and time.time() - start < 30:
            time.sleep(0.02)
    time.sleep(0.6)
    if spec.stem == fail:
        raise ValueError(f"{spec.stem} failed")
    end = time.time()
    with open(Path(log) / f"{spec.run_id}.json", "w") as f:
        json.dump({"start": start, "end": end}, f)
    return {"stem": spec.stem, "run_name": spec.run_name}


def _spec(stem: str) -> RunSpec:
    return RunSpec(Path(f"{stem}.ipynb"), stem, "p", None, {}, "p")


def _batch(tmp_path: Path, stems: str, fail: str = "") -> tuple[list, dict, list]:
    (tmp_path / "manifest.yaml").write_text(MANIFEST)
    log = tmp_path / "log"
    log.mkdir(exist_ok=True)
    done = []
    runs = [_spec(s) for s in stems]
    results = run_parallel(runs, _fake_run, lambda spec: {"log": str(log), "fail": fail}, jobs=2,
                           params_dir=tmp_path, on_done=done.append)  # fmt: skip
    times = {p.stem: json.loads(p.read_text()) for p in log.glob("*.json")}
    return results, times, done


def test_dependencies_and_exclusive_runs(tmp_path):
    results, t, done = _batch(tmp_path, "abctz")
    assert [r["stem"] for r in results] == list("abctz") and len(done) == 5
    assert t["a"]["start"] < t["b"]["end"] and t["b"]["start"] < t["a"]["end"]  # a, b at once
    assert t["c"]["start"] >= t["a"]["end"]  # c needs a
    others = [t[s] for s in "abcz"]
    assert all(o["end"] <= t["t"]["start"] or o["start"] >= t["t"]["end"] for o in others)
    assert t["z"]["start"] >= max(v["end"] for k, v in t.items() if k != "z")


def test_first_failure_stops_new_starts_and_is_raised(tmp_path):
    with pytest.raises(ValueError, match="a failed"):
        _batch(tmp_path, "abcz", fail="a")
    ran = {p.stem for p in (tmp_path / "log").glob("*.json")}
    assert ran == {"b"}  # b was in flight beside a; c and z never started


def test_parallel_exclusive_depends_on_the_executor(tmp_path):
    from wemem.batch.schedule import exclusive_stems

    (tmp_path / "manifest.yaml").write_text(MANIFEST)
    # the pool's workers share the machine's core slots (wemem/experiment/slots.py), Ray's not
    assert exclusive_stems(tmp_path, "local") == exclusive_stems(tmp_path, "pool") == {"t"}
    assert exclusive_stems(tmp_path, "ray") == {"s", "t"}
    (tmp_path / "manifest.yaml").write_text(
        MANIFEST.replace("exclusive: always", "exclusive: sometimes")
    )
    with pytest.raises(
        ParamsError, match="exclusive = 'sometimes': allowed always, parallel, never"
    ):
        exclusive_stems(tmp_path)


def test_keep_going_runs_what_does_not_need_the_failure(tmp_path, caplog):
    with pytest.raises(ValueError, match="a failed"):
        (tmp_path / "manifest.yaml").write_text(MANIFEST)
        log = tmp_path / "log"
        log.mkdir()
        run_parallel([_spec(s) for s in "abctz"], _fake_run,
                     lambda spec: {"log": str(log), "fail": "a"}, jobs=2, params_dir=tmp_path,
                     on_done=lambda r: None, keep_going=True)  # fmt: skip
    assert {p.stem for p in (tmp_path / "log").glob("*.json")} == {"b", "t"}  # c, z need a
    assert "1 of 5 runs failed (2 not run: they need a failed run)" in caplog.text


def test_runs_wait_for_the_same_variant_unless_they_read_outputs(tmp_path):
    from wemem.batch.schedule import dependencies

    (tmp_path / "manifest.yaml").write_text(MANIFEST.replace(
        "z: {reproduces: x, needs: [a, b, c, t], produces: []}",
        "z: {reproduces: x, needs: [a, b, c, t], produces: [], reads_outputs: true}"))  # fmt: skip

    def spec(stem, variant):
        return RunSpec(Path(f"{stem}.ipynb"), stem, "p", variant, {}, f"p-{variant}")

    runs = [spec("a", "v1"), spec("a", "v2"), spec("c", "v1"), spec("c", "v3"), spec("z", None)]
    waits = dependencies(runs, tmp_path)
    assert waits["c.v1"] == {"a.v1"} and waits["c.v3"] == set()
    assert waits["z"] == {"a.v1", "a.v2", "c.v1", "c.v3"}
