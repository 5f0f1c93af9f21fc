"""The cost model of ``wemem reproduce --dry-run``: FLOPs, per-notebook plans, estimates, calibration."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from wemem.batch.discovery import discover_runs
from wemem.planning import costing
from wemem.planning.jobs import Job
from wemem.planning.workload import PLANNERS, plan_run

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS, PARAMS = ROOT / "notebooks", ROOT / "params"
PROFILES = sorted(p.name for p in PARAMS.iterdir() if p.is_dir())


def _runs(profile: str):
    return discover_runs(profile, notebooks_dir=NOTEBOOKS, params_dir=PARAMS)


@pytest.mark.parametrize("width", [1.0, 0.5])
def test_fc_flops_are_the_linear_layers(width):
    hidden = [round(256 * width), round(128 * width)]
    dims = [600, *hidden, 50]
    forward = sum(2 * a * b for a, b in zip(dims, dims[1:], strict=False))
    assert costing.forward_flops_per_sample("fc", width, (600,), 50) == forward
    assert costing.train_flops_per_sample("fc", width, (600,), 50) == 3 * forward
    # images are flattened by the FC model: 1x8x8 digits are 64 features
    assert costing.forward_flops_per_sample("fc", 1.0, (1, 8, 8), 10) == 2 * (
        64 * 256 + 256 * 128 + 128 * 10
    )


def test_cnn_flops_grow_with_width_and_lose_the_stem_pool():
    small = costing.forward_flops_per_sample("resnet18", 0.5, (3, 32, 32), 10)
    full = costing.forward_flops_per_sample("resnet18", 1.0, (3, 32, 32), 10)
    no_pool = costing.forward_flops_per_sample("resnet18", 1.0, (3, 32, 32), 10, stem_maxpool=False)
    assert 3 < full / small < 5  # channels halved: ≈ 4x fewer multiply-adds
    assert 3 < no_pool / full < 5  # 32x32 instead of 16x16 maps after the stem


def test_tiny_memscores_plan_matches_a_hand_count():
    params = yaml.safe_load((PARAMS / "tiny" / "01_memorization_scores.yaml").read_text())
    jobs = plan_run("01_memorization_scores", params)
    assert params["dataset"] == "digits"  # 1,797 images, seeded 80/20 pool split
    n_train = 1797 - math.ceil(0.2 * 1797)
    assert n_train == 1437
    k, r, epochs = params["memscore_models"], params["memscore_ratio"], params["memscore_epochs"]
    folds = params["kfold_models"]
    fz, kfold = jobs
    assert (fz.n_models, fz.samples, fz.epochs) == (k, math.floor(r * n_train + 0.5), epochs)
    assert (fz.n_models, fz.samples, fz.epochs) == (8, 719, 80)
    assert (kfold.n_models, kfold.samples, kfold.epochs) == (folds, math.ceil(n_train / folds), 80)
    assert all(j.arch == "fc" and j.input_shape == (1, 8, 8) and j.num_classes == 10 for j in jobs)
    assert fz.sample_epochs == 8 * 719 * 80
    assert len(set(fz.cache_keys) | set(kfold.cache_keys)) == k + folds


def test_every_notebook_has_a_plan():
    stems = {p.stem for p in NOTEBOOKS.glob("*.ipynb")}
    assert stems <= set(PLANNERS), f"notebooks without a cost plan: {sorted(stems - set(PLANNERS))}"
    with pytest.raises(ValueError, match="no cost plan"):
        plan_run("99_unknown", {})


@pytest.mark.parametrize("profile", PROFILES)
def test_every_run_of_every_profile_is_planned(profile):
    for spec in _runs(profile):
        jobs = plan_run(spec.stem, spec.params, notebooks_dir=NOTEBOOKS)
        if PLANNERS[spec.stem] is None:
            assert jobs == [], spec.stem
            continue
        trainings = [j for j in jobs if j.samples]
        assert trainings, f"{spec.stem} [{spec.run_name}] plans no training"
        assert all(j.epochs > 0 and j.n_models > 0 for j in trainings), spec.run_name
        assert all(len(j.cache_keys) in (0, j.n_models) for j in jobs), spec.run_name


def test_window_epochs_follow_the_slide():
    # cpu profile: 1,296 victim members in 30 classes, n_c = 43.2
    jobs = plan_run("03_defense_rsw", {"widths": [29], "steps": [10], "orders": ["L2H"]})
    (rsw,) = [j for j in jobs if j.samples and "5-round RSW" in j.what]
    # epochs e = 0..4 (10·e < 43.2) take ranks [10e, 10e + 29) of each class, clipped at 43.2:
    # 29 + 29 + 23.2 + 13.2 + 3.2 = 97.6 rows per class over the round
    assert rsw.epochs == 5 * 5  # 5 rounds of 5 epochs
    assert rsw.samples == round(30 * 97.6 / 5) == 586  # 585.6 rows per epoch


def test_cache_sharing_counts_a_model_once():
    def job(keys, fresh=False):
        return Job("x", "fc", 1.0, (10,), 2, len(keys), 100, 1, cache_keys=keys, fresh=fresh)

    jobs = [job(("a", "b")), job(("b", "c")), job(()), job(("a",), fresh=True)]
    assert costing.new_shares(jobs) == [1.0, 0.5, 1.0, 1.0]
    assert costing.new_shares(jobs, cached={"a", "b", "c"}) == [0.0, 0.0, 1.0, 1.0]


def test_job_seconds_is_the_two_term_roofline():
    cal = {
        "early_stopping": {"dense": {"fraction": 0.5}},
        "device_classes": {
            "toy": {"families": {"fc": {"flops_per_s": 1e9, "step_overhead_s": 1e-3}}}
        },
    }
    j = Job("d", "fc", 1.0, (600,), 50, 2, samples=256, epochs=3, eval_samples=100)
    j = replace(j, early_stopping="dense")
    fwd = 2 * (600 * 256 + 256 * 128 + 128 * 50)
    steps = 2 * 3 * 2  # models x epochs x ceil(256 / 128)
    want = steps * 1e-3 + (3 * fwd * 2 * 256 * 3 + fwd * 2 * 100) / 1e9
    assert costing.job_seconds(j, "toy", calibration=cal) == pytest.approx(want)
    assert costing.job_seconds(j, "toy", calibration=cal, expected=True) == pytest.approx(want / 2)
    with pytest.raises(ValueError, match="device class 'gpu' unknown"):
        costing.job_seconds(j, "gpu", calibration=cal)


CURVE = [[1.0, 10.0], [2.0, 50.0], [10.0, 90.0]]  # GFLOP per step, ms per step


@pytest.mark.parametrize(
    ("gflop", "ms"),
    [(0.1, 10.0), (1.0, 10.0), (1.5, 30.0), (2.0, 50.0), (6.0, 70.0), (10.0, 90.0), (14.0, 110.0)],
)
def test_step_curve_interpolates_its_probes(gflop, ms):
    # exact at the probes, linear between, the last segment extended above, the smallest probe's
    # time below (a step never costs less than the smallest probe's fixed cost)
    assert costing.step_seconds(CURVE, gflop * 1e9) == pytest.approx(ms / 1e3)
    assert costing.step_seconds(list(reversed(CURVE)), gflop * 1e9) == pytest.approx(ms / 1e3)


def test_step_curve_needs_two_points():
    with pytest.raises(ValueError, match="step_curve: got .*two or more points"):
        costing.step_seconds([[1.0, 10.0]], 1e9)


def test_job_seconds_follows_the_step_curve_where_one_is_measured():
    shape, classes = (3, 32, 32), 10
    fwd = costing.forward_flops_per_sample("densenet121", 0.0625, shape, classes)
    g = 3 * fwd * 128 / 1e9  # GFLOP of one training step of 128 rows
    curve = [[g / 2, 10.0], [g, 50.0], [2 * g, 90.0]]
    fam = {"flops_per_s": 1e12, "step_overhead_s": 0.0, "step_curve": curve}
    cal = {"device_classes": {"toy": {"families": {"densenet121": fam}}}}
    # 2 models x 3 epochs x 2 full batches of 128: 12 steps at the middle probe's 50 ms
    j = Job("t", "densenet121", 0.0625, shape, classes, 2, samples=256, epochs=3)
    assert costing.job_seconds(j, "toy", calibration=cal) == pytest.approx(12 * 0.050)
    # forward-only rows: a third of a training step of the same rows, per batch of 128
    e = Job("e", "densenet121", 0.0625, shape, classes, 2, samples=0, epochs=0, eval_samples=640)
    assert costing.job_seconds(e, "toy", calibration=cal) == pytest.approx(10 * 0.050 / 3)
    # without a curve: the two-term line
    line = {"densenet121": {"flops_per_s": 1e12, "step_overhead_s": 0.0}}
    cal_line = {"device_classes": {"toy": {"families": line}}}
    assert costing.job_seconds(e, "toy", calibration=cal_line) == pytest.approx(
        2 * 640 * fwd / 1e12
    )


def test_cpu_calibration_has_a_step_curve_for_every_cnn():
    cal = costing.load_calibration()
    for family in ("resnet18", "vgg16", "densenet121"):
        curve = cal["device_classes"]["cpu-2core"]["families"][family]["step_curve"]
        assert len(curve) == 3, family
        gflops, ms = zip(*sorted(curve), strict=True)
        assert all(b > a for a, b in zip(ms, ms[1:], strict=False)), (family, curve)


def test_paper_estimates_are_positive_for_every_run_and_device_class():
    table = costing.estimate_table("paper", notebooks_dir=NOTEBOOKS, params_dir=PARAMS)
    classes = costing.device_classes()
    assert len(table) == len(_runs("paper"))
    for name in classes:
        assert (table[f"seconds {name}"] > 0).all(), name
    trains = table.notebook.map(lambda s: PLANNERS[s] is not None)
    assert (table.loc[trains, "tflops"] > 0).all()
    assert (table.loc[trains, "epochs"] > 0).all()


def test_calibration_entries_say_where_they_come_from():
    cal = yaml.safe_load(costing.CALIBRATION_FILE.read_text())
    assert set(cal["early_stopping"]) == {"dense", "finetune"}
    entries = list(cal["early_stopping"].values())
    for name, dev in cal["device_classes"].items():
        assert set(costing.FAMILIES.values()) <= set(dev["families"]), name
        entries += [dev["notebook_overhead"], *dev["families"].values()]
    for entry in entries:
        assert ("measured_on" in entry) != ("estimated_from" in entry), entry
        if "measured_on" in entry:
            assert entry["benchmark"].startswith("benchmarks/calibrate.py"), entry
    assert any(
        "measured_on" in f for d in cal["device_classes"].values() for f in d["families"].values()
    )
