"""benchmarks/gpu_check.sh on a machine without CUDA: it refuses clearly, and its summary step
(``--summarize``) turns an OUTDIR of step results into summary.json and the exit status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHON": sys.executable, **(env or {})},
    )


def test_the_script_parses():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_without_cuda_it_exits_3_with_a_clear_message_and_runs_nothing(tmp_path):
    out = tmp_path / "gpu-out"
    done = _run(str(out), env={"CUDA_VISIBLE_DEVICES": ""})  # no GPU, also on a GPU machine
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stdout.startswith("no CUDA device: ")
    assert "torch.cuda.is_available() is False" in done.stdout
    assert len(done.stdout.strip().splitlines()) == 1
    assert not out.exists()


def test_usage_errors_exit_2():
    assert _run().returncode == 2
    assert "usage:" in _run("a", "b").stderr


def _fake_outdir(out: Path, statuses: dict[str, str], *, calibrated: bool = True) -> None:
    (out / "logs").mkdir(parents=True)
    lines = [
        f"{n}\t{s}\t{0 if s == 'pass' else 1}\t{i + 3}" for i, (n, s) in enumerate(statuses.items())
    ]
    (out / "steps.tsv").write_text("\n".join(lines) + "\n")
    (out / "device.txt").write_text("NVIDIA H200; torch 2.x\n")
    (out / "gpu_epoch.json").write_text(
        json.dumps({"images_per_s": 40000.0, "roofline_fraction": 0.2, "device": "NVIDIA H200"})
    )
    if calibrated:
        (out / "logs" / "calibrate.log").write_text("...\nwrote gpu-h200 to params/x.yaml\n")
        (out / "calibration.yaml").write_text("device_classes:\n  gpu-h200:\n    kind: cuda\n")


STEPS = ["pytest_gpu", "calibrate", "gpu_epoch", "data_fixtures", "smoke_dpsgd_cnn"]


def test_summary_of_a_passing_run(tmp_path):
    _fake_outdir(tmp_path, dict.fromkeys(STEPS, "pass"))
    done = _run("--summarize", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["ok"] and summary["failed"] == []
    assert [s["step"] for s in summary["steps"]] == STEPS
    assert summary["images_per_s"] == 40000.0 and summary["roofline_fraction"] == 0.2
    assert summary["calibration_written"] and summary["calibration_file"] == "calibration.yaml"
    assert (
        summary["device"].startswith("NVIDIA H200")
        and summary["total_seconds"] == 3 + 4 + 5 + 6 + 7
    )
    assert "PASS" in done.stdout and "20.0% of the bf16 roofline" in done.stdout


@pytest.mark.parametrize("bad", ["fail", "timeout", "skipped"])
def test_summary_of_a_failing_run_exits_1(tmp_path, bad):
    _fake_outdir(tmp_path, {**dict.fromkeys(STEPS, "pass"), "calibrate": bad}, calibrated=False)
    done = _run("--summarize", str(tmp_path))
    assert done.returncode == 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert not summary["ok"] and summary["failed"] == ["calibrate"]
    assert not summary["calibration_written"] and summary["calibration_file"] is None
    assert "FAIL" in done.stdout and "NOT written" in done.stdout


def test_summary_of_an_empty_outdir_is_a_failure(tmp_path):
    done = _run("--summarize", str(tmp_path))
    assert done.returncode == 1
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == [] and summary["images_per_s"] is None and not summary["ok"]
