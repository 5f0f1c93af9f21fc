#!/usr/bin/env bash
# One prepared GPU check of wemem (issue 13, item 6): everything that needs CUDA, in one go.
#
# Usage (from anywhere; it runs in the repository root):
#     bash benchmarks/gpu_check.sh OUTDIR
#     bash benchmarks/gpu_check.sh --summarize OUTDIR   # only step 5, on an earlier OUTDIR
#
# Needs one CUDA GPU (H100/H200 class) and the project's virtualenv with the Jupyter kernel
# `python3` (the smoke runs execute notebooks). Interpreter and CLI: ${PYTHON:-.venv/bin/python}
# and ${WEMEM:-.venv/bin/wemem}, relative to the repository root.
#
# Steps, each under its own `timeout` (a failed or timed-out step is recorded and the next runs):
#   1. pytest_gpu      `pytest -m gpu -q`: the tests that need CUDA (device placement, bf16 training
#                      with fp32 outputs, pinned transfers, DP-SGD on a GroupNorm CNN, the ensemble,
#                      full-fp32 sensitivity); JUnit XML to OUTDIR/pytest-gpu.xml.
#   2. calibrate       `benchmarks/calibrate.py --write --device-class ${DEVICE_CLASS:-gpu-h200}`:
#                      this GPU's (FLOP/s, step overhead) per model family into
#                      params/calibration.yaml, copied to OUTDIR/calibration.yaml.
#   3. gpu_epoch       `benchmarks/gpu_epoch.py --json`: one full-width ResNet18 epoch on 22,500
#                      CIFAR-shaped images; its JSON line to OUTDIR/gpu_epoch.json.
#   4. data_fixtures   `wemem data fixtures OUTDIR/data`, then three `wemem reproduce --profile
#      smoke_*         paper --smoke` runs on CUDA (WEMEM_DATA=OUTDIR/data,
#                      WEMEM_CACHE=OUTDIR/cache, outputs in OUTDIR/outputs): a CNN with DP-SGD
#                      (07_dpsgd_opacus.cifar10_resnet18), a CNN with a WeMem defense
#                      (05_defense_swmr.cifar10_resnet18) and the FC model with the attacks
#                      (08_attacks.location30_fc).
#   5. summary         pass/fail per step, images/s and fraction of the bf16 roofline (gpu_epoch),
#                      whether the calibration was written; printed and written to
#                      OUTDIR/summary.json.
#
# Time: an estimated 5-6 minutes on an H100/H200 (not yet timed on one), at most
# GPU_CHECK_BUDGET_S (default 480 s = 8 min) in all: each step's timeout is its own cap
# (GPU_CHECK_TIMEOUT_<STEP>, seconds) or what is left of the budget, whichever is smaller; a step
# that finds under 15 s left is skipped (and counts as failed).
#
# Writes under OUTDIR: steps.tsv (name, status, exit code, seconds per step), logs/<step>.log,
# device.txt, pytest-gpu.xml, calibration.yaml, gpu_epoch.json, data/, cache/, outputs/ and
# summary.json.
#
# Exit status: 0 every step passed; 1 a step failed, timed out or was skipped; 2 usage or the
# interpreter does not run; 3 no CUDA device (prints "no CUDA device: ..." and runs nothing).

set -u -o pipefail

summarize_only=0
if [[ "${1:-}" == "--summarize" ]]; then
    summarize_only=1
    shift
fi
if [[ $# -ne 1 || -z "$1" ]]; then
    echo "usage: bash benchmarks/gpu_check.sh [--summarize] OUTDIR" >&2
    exit 2
fi
case "$1" in
    /*) OUT=$1 ;;
    *) OUT=$PWD/$1 ;;
esac
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
PYTHON=${PYTHON:-.venv/bin/python}
WEMEM=${WEMEM:-.venv/bin/wemem}
DEVICE_CLASS=${DEVICE_CLASS:-gpu-h200}
BUDGET=${GPU_CHECK_BUDGET_S:-480}

# ---- 5. summary (also `--summarize OUTDIR`) --------------------------------------------------
summarize() {
    "$PYTHON" - "$OUT" "$DEVICE_CLASS" <<'PY'
import json, sys
from pathlib import Path

out, device_class = Path(sys.argv[1]), sys.argv[2]
steps = []
tsv = out / "steps.tsv"
for line in (tsv.read_text().splitlines() if tsv.exists() else []):
    name, status, rc, seconds = line.split("\t")
    steps.append({"step": name, "status": status, "rc": int(rc), "seconds": int(seconds),
                  "log": f"logs/{name}.log"})
epoch = None
if (out / "gpu_epoch.json").is_file():
    try:
        epoch = json.loads((out / "gpu_epoch.json").read_text())
    except ValueError:
        epoch = None
cal_log = out / "logs" / "calibrate.log"
cal_copy = out / "calibration.yaml"
written = (
    any(s["step"] == "calibrate" and s["status"] == "pass" for s in steps)
    and cal_log.is_file() and f"wrote {device_class} to" in cal_log.read_text()
    and cal_copy.is_file() and f"{device_class}:" in cal_copy.read_text()
)
device = (out / "device.txt").read_text().strip() if (out / "device.txt").is_file() else None
ok = bool(steps) and all(s["status"] == "pass" for s in steps)
summary = {
    "ok": ok,
    "device": device,
    "steps": steps,
    "failed": [s["step"] for s in steps if s["status"] != "pass"],
    "total_seconds": sum(s["seconds"] for s in steps),
    "images_per_s": epoch.get("images_per_s") if epoch else None,
    "roofline_fraction": epoch.get("roofline_fraction") if epoch else None,
    "gpu_epoch": epoch,
    "calibration_written": written,
    "device_class": device_class,
    "calibration_file": "calibration.yaml" if cal_copy.is_file() else None,
}
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
print(f"gpu check on {device or 'an unknown device'}: {'PASS' if ok else 'FAIL'}")
for s in steps:
    print(f"  {s['step']:<16} {s['status']:<8} rc {s['rc']:>3} {s['seconds']:>5} s")
if not steps:
    print("  (no steps recorded)")
ips, frac = summary["images_per_s"], summary["roofline_fraction"]
print(f"  resnet18 epoch: {ips if ips is not None else 'n/a'} images/s, "
      f"{f'{frac:.1%}' if frac is not None else 'n/a'} of the bf16 roofline")
print(f"  calibration {device_class}: {'written' if written else 'NOT written'}")
print(f"  summary: {out / 'summary.json'}")
sys.exit(0 if ok else 1)
PY
}

if [[ $summarize_only -eq 1 ]]; then
    summarize
    exit $?
fi

# ---- CUDA first: nothing runs without it -----------------------------------------------------
device=$("$PYTHON" - 2>&1 <<'PY'
import sys
import warnings

warnings.simplefilter("ignore")  # one clear line, not torch's driver warnings
import torch
if not torch.cuda.is_available():
    print(f"torch {torch.__version__} (CUDA build {torch.version.cuda}) sees none: "
          "torch.cuda.is_available() is False; nothing was run", end="")
    sys.exit(3)
name = torch.cuda.get_device_name(0)
print(f"{name}; torch {torch.__version__}, CUDA {torch.version.cuda}", end="")
PY
)
rc=$?
if [[ $rc -eq 3 ]]; then
    echo "no CUDA device: $device"
    exit 3
elif [[ $rc -ne 0 ]]; then
    echo "cannot run $PYTHON (exit $rc): $device" >&2
    exit 2
fi

mkdir -p "$OUT/logs" || exit 2
: > "$OUT/steps.tsv"
echo "$device" > "$OUT/device.txt"
echo "gpu check on $device -> $OUT (budget ${BUDGET} s)"
start=$SECONDS

# step NAME CAP_S CMD...: run CMD under timeout min(CAP_S, budget left), log to logs/NAME.log
step() {
    local name=$1 cap=$2
    shift 2
    local left=$((BUDGET - (SECONDS - start)))
    local limit=$((cap < left ? cap : left))
    local log="$OUT/logs/$name.log" t0=$SECONDS rc status
    if [[ $left -lt 15 ]]; then
        echo "== $name: skipped, ${left} s of the ${BUDGET} s budget left"
        echo "skipped: ${left} s of the ${BUDGET} s budget left" > "$log"
        printf '%s\t%s\t%s\t%s\n' "$name" skipped -1 0 >> "$OUT/steps.tsv"
        return 0
    fi
    echo "== $name (timeout ${limit} s): $*"
    timeout --kill-after=10 "$limit" "$@" > "$log" 2>&1
    rc=$?
    if [[ $rc -eq 0 ]]; then
        status=pass
    elif [[ $rc -eq 124 || $rc -eq 137 ]]; then
        status=timeout
    else
        status=fail
    fi
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$((SECONDS - t0))" >> "$OUT/steps.tsv"
    echo "   $status (exit $rc, $((SECONDS - t0)) s), log: $log"
    if [[ $status != pass ]]; then
        tail -n 8 "$log" | sed 's/^/   | /'
    fi
    return 0
}

# 1. the CUDA tests (the last -m wins over pyproject's addopts)
step pytest_gpu "${GPU_CHECK_TIMEOUT_PYTEST:-120}" \
    "$PYTHON" -m pytest -m gpu -q -p no:cacheprovider --junitxml="$OUT/pytest-gpu.xml"

# 2. calibration of this device class
step calibrate "${GPU_CHECK_TIMEOUT_CALIBRATE:-150}" \
    "$PYTHON" benchmarks/calibrate.py --write --device-class "$DEVICE_CLASS"
if [[ -f params/calibration.yaml ]]; then
    cp params/calibration.yaml "$OUT/calibration.yaml"
fi

# 3. one ResNet18 epoch against the bf16 roofline
step gpu_epoch "${GPU_CHECK_TIMEOUT_EPOCH:-90}" "$PYTHON" benchmarks/gpu_epoch.py --json
grep '^{' "$OUT/logs/gpu_epoch.log" 2>/dev/null | tail -n 1 > "$OUT/gpu_epoch.json"
[[ -s "$OUT/gpu_epoch.json" ]] || rm -f "$OUT/gpu_epoch.json"

# 4. paper-profile smoke runs on CUDA, on the fixture datasets
step data_fixtures "${GPU_CHECK_TIMEOUT_FIXTURES:-60}" "$WEMEM" data fixtures "$OUT/data"
smoke() {  # smoke NAME CAP_S RUN_ID
    step "$1" "$2" env WEMEM_DATA="$OUT/data" WEMEM_CACHE="$OUT/cache" \
        "$WEMEM" -v reproduce --profile paper --smoke --only "$3" --outputs "$OUT/outputs" \
        --kernel python3 --executor local
}
smoke smoke_dpsgd_cnn "${GPU_CHECK_TIMEOUT_SMOKE_DP:-180}" '07_dpsgd_opacus.cifar10_resnet18'
smoke smoke_swmr_cnn "${GPU_CHECK_TIMEOUT_SMOKE_SWMR:-150}" '05_defense_swmr.cifar10_resnet18'
smoke smoke_attacks_fc "${GPU_CHECK_TIMEOUT_SMOKE_FC:-90}" '08_attacks.location30_fc'

# 5.
echo
summarize
exit $?
