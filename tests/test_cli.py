"""User-caused errors: one line on stderr, exit status 2, nothing written under outputs/."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from wemem import cli

ROOT = Path(__file__).resolve().parents[1]


def _tree(tmp_path, profile, files):
    params = tmp_path / "params"
    (params / profile).mkdir(parents=True)
    for name, text in files.items():
        (params / profile / name).write_text(text)
    nbs = tmp_path / "notebooks"
    shutil.copytree(ROOT / "notebooks", nbs)
    return params, nbs, tmp_path / "outputs"


def _run(capsys, params, nbs, out, profile):
    code = cli.main(
        [
            "reproduce",
            "--profile",
            profile,
            "--params",
            str(params),
            "--notebooks",
            str(nbs),
            "--outputs",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    return code, err


def test_unknown_key_exits_2_and_writes_nothing(tmp_path, capsys):
    params, nbs, out = _tree(tmp_path, "mine", {"02_motivation.yaml": "pruning_ratee: 0.5\n"})
    code, err = _run(capsys, params, nbs, out, "mine")
    assert code == 2 and "pruning_ratee" in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_bad_value_exits_2_and_names_field_and_allowed(tmp_path, capsys):
    params, nbs, out = _tree(tmp_path, "mine", {"02_motivation.yaml": "arch: resnet50\n"})
    code, err = _run(capsys, params, nbs, out, "mine")
    assert code == 2
    assert "'arch'" in err and "resnet50" in err and "resnet18" in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())


def test_missing_dataset_exits_2_with_how_to_obtain(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WEMEM_DATA", str(tmp_path / "nodata"))
    params, nbs, out = _tree(
        tmp_path,
        "mine",
        {"02_motivation.yaml": "dataset: cifar10\narch: resnet18\ndata_options: {}\n"},
    )
    code, err = _run(capsys, params, nbs, out, "mine")
    assert code == 2 and "cifar10" in err and "wemem data fetch cifar10" in err
    assert str(tmp_path / "nodata") in err
    assert not out.exists() or not any(out.iterdir())


def test_unknown_profile_exits_2(tmp_path, capsys):
    params, nbs, out = _tree(tmp_path, "mine", {})
    code, err = _run(capsys, params, nbs, out, "nope")
    assert code == 2 and "nope" in err


def test_data_list_shows_offline_sets(capsys):
    assert cli.main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and "synthetic" in out and "missing" in out


def test_data_fetch_unknown_name_exits_2(capsys):
    assert cli.main(["data", "fetch", "imagenet"]) == 2
    assert "imagenet" in capsys.readouterr().err


def test_json_without_dry_run_exits_2_and_runs_nothing(tmp_path, capsys):
    out = tmp_path / "outputs"
    code = cli.main(["reproduce", "--profile", "tiny", "--json", "--outputs", str(out)])
    captured = capsys.readouterr()
    assert code == 2 and "--json" in captured.err and "--dry-run" in captured.err
    assert captured.out == "" and not out.exists()


def test_dry_run_json_prints_one_json_document(tmp_path, capsys):
    argv = ["reproduce", "--profile", "tiny", "--dry-run", "--json"]
    argv += ["--outputs", str(tmp_path), "--params", str(ROOT / "params")]
    assert cli.main([*argv, "--notebooks", str(ROOT / "notebooks")]) == 0
    doc = json.loads(capsys.readouterr().out)  # stdout holds the document and nothing else
    assert doc["profile"] == "tiny" and doc["runs"]
    assert {r["notebook"] for r in doc["runs"]} >= {"03_defense_rsw", "06_baselines"}
