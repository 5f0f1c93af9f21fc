"""RunFolder: atomic writes, metrics merging and JSON conversion, figures, tables, open_run."""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import struct
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from wemem.report import run_folder as reporting  # noqa: E402
from wemem.report.run_folder import (  # noqa: E402
    RunFolder,
    atomic_write_bytes,
    atomic_write_text,
    find_repo_root,
    open_run,
    to_jsonable,
)


def _strict_json(path: Path):
    def reject(token):
        raise AssertionError(f"non-standard JSON constant {token}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=reject)


# ----------------------------------------------------------------------------- atomic writes


def test_atomic_write_creates_parents_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a" / "b" / "x.txt"
    assert atomic_write_text(target, "héllo") == target
    assert target.read_text(encoding="utf-8") == "héllo"
    atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.txt"]
    umask = os.umask(0o022)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's owner-only 0600


def test_atomic_write_failure_keeps_old_content(tmp_path, monkeypatch):
    target = tmp_path / "x.txt"
    target.write_text("old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(reporting.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


# ----------------------------------------------------------------------------- metrics


def test_update_metrics_merges_nested_sections(tmp_path):
    run = RunFolder(tmp_path)
    assert run.read_metrics() == {}
    run.update_metrics(attack={"auc": 0.6, "roc": [1, 2]}, n=3)
    merged = run.update_metrics(attack={"tpr": 0.1, "roc": [3]}, extra={"ok": True})
    expected = {"attack": {"auc": 0.6, "tpr": 0.1, "roc": [3]}, "n": 3, "extra": {"ok": True}}
    assert merged == expected
    assert run.read_metrics() == expected
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    where: Path


def test_numpy_and_friends_serialise_to_strict_json(tmp_path):
    run = RunFolder(tmp_path)
    run.update_metrics(
        scalars={
            "f32": np.float32(0.5),
            "f64": np.float64(0.25),
            "i64": np.int64(7),
            "u8": np.uint8(255),
            "flag": np.bool_(True),
            "nan": float("nan"),
            "np_inf": np.float64(np.inf),
        },
        arrays={"v": np.arange(3), "m": np.eye(2, dtype=np.float32), "s": pd.Series([1.5, 2.5])},
        other={"t": (1, 2), "p": Path("/a/b"), "c": Color.RED, "d": Point(1, Path("x"))},
    )
    data = _strict_json(run.metrics_path)
    assert data["scalars"] == {
        "f32": 0.5,
        "f64": 0.25,
        "i64": 7,
        "u8": 255,
        "flag": True,
        "nan": None,
        "np_inf": None,
    }
    assert type(data["scalars"]["i64"]) is int and type(data["scalars"]["flag"]) is bool
    assert data["arrays"] == {"v": [0, 1, 2], "m": [[1.0, 0.0], [0.0, 1.0]], "s": [1.5, 2.5]}
    assert data["other"] == {"t": [1, 2], "p": "/a/b", "c": "red", "d": {"x": 1, "where": "x"}}


def test_unserialisable_value_is_refused_and_file_untouched(tmp_path):
    run = RunFolder(tmp_path)
    run.update_metrics(a=1)
    with pytest.raises(TypeError, match="object"):
        run.update_metrics(b=object())
    assert run.read_metrics() == {"a": 1}
    assert to_jsonable({1: np.int32(2)}) == {"1": 2}


# ----------------------------------------------------------------------------- figures, tables


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_save_figure_writes_png_at_150_dpi_and_pdf(tmp_path):
    run = RunFolder(tmp_path)
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [1, 0])
    png = run.save_figure(fig, "roc_curve", close=True)
    assert png == tmp_path / "figures" / "roc_curve.png"
    assert _png_size(png) == (600, 450)
    assert (tmp_path / "figures" / "roc_curve.pdf").read_bytes()[:5] == b"%PDF-"
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
        "roc_curve.pdf",
        "roc_curve.png",
    ]
    assert fig.number not in plt.get_fignums()  # closed: a notebook shows it once


def test_save_figure_leaves_the_figure_open_by_default(tmp_path):
    fig = plt.figure(figsize=(1, 1))
    RunFolder(tmp_path).save_figure(fig, "f")
    assert fig.number in plt.get_fignums()
    plt.close(fig)


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".hidden", "a b"])
def test_bad_file_names_are_refused(tmp_path, name):
    run = RunFolder(tmp_path)
    with pytest.raises(ValueError, match="not allowed"):
        run.save_table(pd.DataFrame({"a": [1]}), name)
    assert not (tmp_path / "tables").exists()


def test_save_table_writes_csv_and_latex(tmp_path):
    run = RunFolder(tmp_path)
    df = pd.DataFrame({"method": ["rsw", "rmr"], "auc": [0.512345678, 0.6]})
    csv = run.save_table(df, "table_3")
    assert csv == tmp_path / "tables" / "table_3.csv"
    pd.testing.assert_frame_equal(pd.read_csv(csv), df)
    tex = (tmp_path / "tables" / "table_3.tex").read_text()
    assert "\\begin{tabular}" in tex and "\\toprule" in tex
    assert "0.5123" in tex and "0.512345678" not in tex


def test_save_table_latex_fallback_without_jinja2(tmp_path, monkeypatch):
    def no_jinja(self, *args, **kwargs):
        raise ImportError("Missing optional dependency 'Jinja2'")

    monkeypatch.setattr(pd.DataFrame, "to_latex", no_jinja)
    df = pd.DataFrame({"top_3_nn": ["a&b", "c"], "auc": [0.5, 0.75]})
    RunFolder(tmp_path).save_table(df, "t")
    tex = (tmp_path / "tables" / "t.tex").read_text()
    assert tex.startswith("\\begin{tabular}{ll}")
    assert "top\\_3\\_nn & auc \\\\" in tex
    assert "a\\&b & 0.5 \\\\" in tex and "\\bottomrule" in tex


# ----------------------------------------------------------------------------- open_run


@dataclasses.dataclass(frozen=True)
class Settings:
    epochs: int
    lr: float


def test_open_run_uses_output_dir_and_records_settings(tmp_path):
    out = tmp_path / "given"
    run = open_run("02_motivation", profile="tiny", output_dir=str(out), settings=Settings(2, 0.1))
    assert run.path == out.resolve() and out.is_dir()
    assert run.read_metrics() == {"settings": {"epochs": 2, "lr": 0.1}}


def test_open_run_interactive_folder_under_repo_root(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    run = open_run("02_motivation.ipynb", profile="cpu", settings={"a": 1, "b": 2})
    assert run.path == tmp_path.resolve() / "outputs" / "02_motivation" / "cpu-interactive"
    run.update_metrics(result={"x": 1})
    again = open_run("02_motivation", profile="cpu", settings={"a": 5})
    assert again.read_metrics() == {"settings": {"a": 5}, "result": {"x": 1}}


def test_find_repo_root_walks_up_then_falls_back(tmp_path):
    root = tmp_path.resolve() / "repo"
    deep = root / "notebooks" / "sub"
    deep.mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\n")
    assert find_repo_root(deep) == root
    if not any((p / "pyproject.toml").exists() for p in tmp_path.resolve().parents):
        assert find_repo_root(tmp_path) == tmp_path.resolve()


def test_open_run_refuses_other_settings(tmp_path):
    with pytest.raises(TypeError, match="dataclass or a mapping"):
        open_run("00_x", profile="cpu", output_dir=str(tmp_path), settings=[1, 2])


def test_memscore_grid_shows_rgb_and_grey_images():
    """Channels-first normalised images (CIFAR: 3x32x32, digits: 1x8x8) become what imshow takes."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np

    from wemem.report import plots

    rng = np.random.default_rng(0)
    for shape in ((3, 32, 32), (1, 8, 8)):
        images = rng.normal(size=(20, *shape)).astype(np.float32)
        fig = plots.memscore_grid(images, rng.random(20), np.arange(20) % 5, np.arange(20) % 5, k=3)
        shown = fig.axes[0].images[0].get_array()
        assert shown.shape == (shape[1], shape[2], 3) if shape[0] == 3 else (shape[1], shape[2])
        assert 0 <= shown.min() and shown.max() <= 1 if shape[0] == 3 else True
