"""Every YAML file read as parameters is read strictly (``wemem.params.load_params_file``): a key
written twice, an empty or comment-only file and a top level that is not a mapping are errors that
name the file, before anything trains. Also: every real file under ``params/`` still loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from wemem.batch import manifest, smoke
from wemem.batch.discovery import discover_runs
from wemem.errors import ParamsError
from wemem.params import load_params_file

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
MANIFEST_OK = "notebooks: {}\nprofiles: {}\n"


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _error(load, *args) -> str:
    with pytest.raises(ParamsError) as e:
        load(*args)
    message = str(e.value)
    assert "\n" not in message
    return message


# ----------------------------------------------------------------------------- duplicate keys


@pytest.mark.parametrize(
    ("text", "key", "lines"),
    [
        ("lr: 0.1\nmax_epochs: 3\nlr: 0.2\n", "'lr'", "lines 1 and 3"),
        ("data_options:\n  n_samples: 10\n  n_samples: 20\nlr: 0.1\n", "'n_samples'", "2 and 3"),
        ("data_options: {n_samples: 10, n_samples: 20}\n", "'n_samples'", "lines 1 and 1"),
        ("seeds: [0]\nresources:\n  num_cpus: 1\n  num_cpus: 2\n", "'num_cpus'", "3 and 4"),
    ],
)
def test_duplicate_key_in_a_params_file_names_file_key_and_lines(tmp_path, text, key, lines):
    path = _write(tmp_path, "02_motivation.yaml", text)
    message = _error(load_params_file, path)
    assert str(path) in message and key in message and lines in message
    assert "appears twice" in message and "once per mapping" in message


def test_duplicate_key_fails_discovery_before_any_run(tmp_path):
    params = tmp_path / "params"
    path = _write(params, "tiny/00_hello.yaml", "n: 1\nn: 2\n")
    message = _error(
        lambda: discover_runs("tiny", notebooks_dir=FIXTURES / "notebooks", params_dir=params)
    )
    assert message.startswith(f"{path}: key 'n' appears twice (lines 1 and 2)")


def test_a_merge_key_may_still_be_overridden(tmp_path):
    path = _write(tmp_path, "x.yaml", "base: &b {n: 1, m: 2}\nrun:\n  <<: *b\n  n: 3\n")
    assert load_params_file(path)["run"] == {"n": 3, "m": 2}


@pytest.mark.parametrize(
    ("text", "key", "lines"),
    [
        (MANIFEST_OK + "notebooks: {}\n", "'notebooks'", "lines 1 and 3"),
        (
            "notebooks: {}\nprofiles:\n  tiny:\n    hardware: cpu\n    hardware: gpu\n",
            "'hardware'",
            "lines 4 and 5",
        ),
    ],
)
def test_duplicate_key_in_the_manifest(tmp_path, text, key, lines):
    _write(tmp_path, manifest.FILE, text)
    message = _error(manifest.load, tmp_path)
    assert str(tmp_path / manifest.FILE) in message and key in message and lines in message


@pytest.mark.parametrize(
    ("text", "key", "lines"),
    [
        ("sizes: {max_epochs: 1}\ncaps: {}\nsizes: {max_epochs: 2}\n", "'sizes'", "1 and 3"),
        ("by_notebook:\n  02_a: {n: 1}\n  02_a: {n: 2}\n", "'02_a'", "lines 2 and 3"),
        ("sizes:\n  max_epochs: 1\n  width: 0.5\n  max_epochs: 2\n", "'max_epochs'", "2 and 4"),
    ],
)
def test_duplicate_key_in_the_smoke_file(tmp_path, text, key, lines):
    _write(tmp_path, smoke.SMOKE_FILE, text)
    message = _error(smoke.load, tmp_path)
    assert str(tmp_path / smoke.SMOKE_FILE) in message and key in message and lines in message


# ----------------------------------------------------------------------------- empty, not a mapping


@pytest.mark.parametrize("text", ["", "\n\n", "# nothing to set\n# really\n", "~\n", "null\n"])
def test_an_empty_params_file_is_an_error_that_says_write_braces(tmp_path, text):
    path = _write(tmp_path, "12_paper_tables.yaml", text)
    message = _error(load_params_file, path)
    assert message == f"{path}: empty params file; write `{{}}` to run the notebook's defaults"


def test_an_empty_params_file_fails_discovery(tmp_path):
    params = tmp_path / "params"
    _write(params, "tiny/00_hello.yaml", "# the defaults\n")
    message = _error(
        lambda: discover_runs("tiny", notebooks_dir=FIXTURES / "notebooks", params_dir=params)
    )
    assert "00_hello.yaml: empty params file" in message


def test_empty_manifest_and_smoke_file_are_errors(tmp_path):
    _write(tmp_path, manifest.FILE, "# runs\n")
    assert f"{tmp_path / manifest.FILE}: empty manifest" in _error(manifest.load, tmp_path)
    _write(tmp_path, smoke.SMOKE_FILE, "")
    assert f"{tmp_path / smoke.SMOKE_FILE}: empty smoke file" in _error(smoke.load, tmp_path)


@pytest.mark.parametrize(
    ("text", "kind"), [("- 1\n- 2\n", "list"), ("3\n", "int"), ("just words\n", "str")]
)
def test_a_top_level_that_is_not_a_mapping_is_an_error(tmp_path, text, kind):
    path = _write(tmp_path, "x.yaml", text)
    message = _error(load_params_file, path)
    assert message.startswith(f"{path}: expected a mapping of parameter: value, got {kind}")
    _write(tmp_path, manifest.FILE, text)
    message = _error(manifest.load, tmp_path)
    assert f"{tmp_path / manifest.FILE}: expected two mappings" in message and kind in message
    _write(tmp_path, smoke.SMOKE_FILE, text)
    message = _error(smoke.load, tmp_path)
    assert f"{tmp_path / smoke.SMOKE_FILE}: expected a mapping with keys" in message


def test_invalid_yaml_is_one_line_naming_file_and_line(tmp_path):
    path = _write(tmp_path, "x.yaml", "lr: 0.1\nseeds: [1\n")
    message = _error(load_params_file, path)
    assert message.startswith(f"{path}: not valid YAML: ") and "line 3" in message


def test_braces_are_the_defaults(tmp_path):
    path = _write(tmp_path, "x.yaml", "# the notebook's defaults\n{}\n")
    assert load_params_file(path) == {}
    params = tmp_path / "params"
    _write(params, "tiny/00_hello.yaml", "# the defaults\n{}\n")
    (spec,) = discover_runs(
        "tiny", only="00_*", notebooks_dir=FIXTURES / "notebooks", params_dir=params
    )
    assert spec.params == {}
    _write(tmp_path, smoke.SMOKE_FILE, "{}\n")
    scale = smoke.load(tmp_path)
    assert scale.sizes == scale.caps == scale.by_notebook == scale.data_options == {}


# ----------------------------------------------------------------------------- the real files

PARAMS = REPO / "params"
SPECIAL = {manifest.FILE, smoke.SMOKE_FILE}


@pytest.mark.parametrize(
    "path",
    sorted(p for p in PARAMS.rglob("*.yaml") if p.name not in SPECIAL or p.parent != PARAMS),
    ids=lambda p: str(p.relative_to(PARAMS)),
)
def test_every_real_params_file_loads_strictly(path):
    assert isinstance(load_params_file(path), dict)


def test_the_real_manifest_smoke_file_and_profiles_load_strictly():
    m = manifest.load(PARAMS)
    assert m.notebooks and m.runs
    assert smoke.load(PARAMS).sizes
    for profile in sorted(p.name for p in PARAMS.iterdir() if p.is_dir()):
        runs = discover_runs(profile, notebooks_dir=REPO / "notebooks", params_dir=PARAMS)
        assert runs, profile
