"""One `paper --smoke` run per notebook (issue 13): every dataset, architecture and defense of the
paper profile executes end to end on generated stand-ins in their real file formats, at smoke
scale (params/smoke.yaml), in this test session. The whole profile runs in `make smoke`."""

from __future__ import annotations

import json
from pathlib import Path

import background
import pytest

from wemem.data.fixtures import write_fixtures

ROOT = Path(__file__).resolve().parents[1]

#: One run per notebook, the cheapest that together cover every dataset, architecture and
#: defense of the paper profile (06 compares all of them: Base, PPB, ADV in both modes, DP-SGD at
#: the capped official passes and one pass, RelaxLoss, RSW, RMR, SWMR); 12 builds the paper's
#: tables from whatever ran. Every run of the profile runs in `make smoke`.
SAMPLE = [
    "00_overview",
    "01_memorization_scores.cifar10_densenet121",
    "01_memorization_scores.cifar100_resnet18",
    "02_motivation.cinic10_vgg16bn",
    "03_defense_rsw.location30_fc",
    "04_defense_rmr.location30_fc",
    "05_defense_swmr.location30_fc",
    "06_baselines.location30_fc",
    "07_dpsgd_opacus.location30_fc",
    "08_attacks.purchase100_fc",
    "09_pruning_approaches.location30_fc",
    "10_time_cost.texas100_fc",  # Texas here: 02 on Texas costs more than 10 on Texas and Location
    "11_autotune.location30_fc",
    "12_paper_tables",
]


def start_in_background(root: Path) -> background.Batch:
    """Start ``wemem reproduce --profile paper --smoke --only SAMPLE`` beside the suite
    (:mod:`background`), on fixtures written under ``root``. tests/conftest.py starts it when the
    session collects :func:`test_each_sampled_run_executes_at_smoke_scale`; the test waits."""
    data = root / "fixtures"
    write_fixtures(data)
    return background.start(root, "paper", "--smoke", "--only", ",".join(SAMPLE), data=data)


@pytest.fixture(scope="module")
def smoke_sample(request, tmp_path_factory):
    """The sample's outputs folder and run records, from the background batch (started here if
    conftest did not start it, e.g. when this test is run alone by node id)."""
    started = request.config.wemem_background  # tests/conftest.py
    batch = started.get("smoke_sample")
    if batch is None:
        batch = started["smoke_sample"] = start_in_background(tmp_path_factory.mktemp("smoke"))
    return batch.wait("reproduce-paper.partial.json")


def test_sample_covers_every_dataset_and_architecture():
    from wemem.batch.discovery import discover_runs

    runs = {r.run_id: r for r in discover_runs("paper", notebooks_dir=ROOT / "notebooks",
                                                params_dir=ROOT / "params")}  # fmt: skip
    chosen = [runs[rid].params for rid in SAMPLE]
    assert {p["dataset"] for p in chosen if "dataset" in p} == {
        "cifar10", "cifar100", "cinic10", "texas100", "location30", "purchase100"}  # fmt: skip
    assert {p["arch"] for p in chosen if "arch" in p} == {
        "resnet18",
        "vgg16bn",
        "densenet121",
        "fc",
    }
    stems = {rid.partition(".")[0] for rid in SAMPLE}
    assert stems == {nb.stem for nb in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    sixes = runs["06_baselines.location30_fc"].params  # every defense, each mode beside
    assert sixes["adv_modes"] == ["official", "nasr"] and len(sixes["dp_passes_per_epoch"]) == 2


def test_each_sampled_run_executes_at_smoke_scale(smoke_sample):
    out, results = smoke_sample
    assert sorted(r["run_name"] for r in results) == sorted(
        "paper" if "." not in rid else f"paper-{rid.partition('.')[2]}" for rid in SAMPLE
    )
    for r in results:
        run_dir = out / r["out_dir"]
        record = json.loads((run_dir / "run.json").read_text())
        assert record["smoke"] is not None and record["profile"] == "paper"
        metrics = json.loads((run_dir / "metrics.json").read_text())
        checks = metrics.get("checks", {})
        assert all(checks.values()), (r["notebook"], checks)
        page = (out / r["report"]).read_text()
        assert "smoke scale: sizes shrunk, not results" in page
