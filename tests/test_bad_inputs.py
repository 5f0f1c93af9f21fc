"""Bad input at the command line fails before anything trains: one line on stderr naming the field
or value, exit status 2 (130 for Ctrl-C), no traceback and nothing written under the outputs
folder. The CLI runs in-process (``wemem.cli.main``) on the real ``notebooks/`` with a params
folder of the test's own; ``papermill.execute_notebook`` fails the test if a row reaches it.

To add a case, add a row to ``ROWS``: an id, the params files of the profile ``mine``, the
arguments after ``reproduce`` (``{out}``, ``{file}`` are filled in) and what stderr must say.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import nbformat
import papermill
import pytest
import torch

from wemem import cli
from wemem.batch import preflight

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = "02_motivation"  # a notebook whose setup cell validates its parameters
OK = {f"{NOTEBOOK}.yaml": "{}\n"}


def _params(body: str) -> dict[str, str]:
    return {f"{NOTEBOOK}.yaml": body}


def _nb(stem: str, body: str) -> dict[str, str]:
    return {f"{stem}.yaml": body}


# (id, params files of profile "mine", arguments, substrings of the one stderr line)
ROWS = [
    # the outputs folder
    ("outputs-is-a-file", OK, ["--outputs", "{file}"], ["not-a-folder.txt", "is a file"]),
    ("outputs-under-a-file", OK, ["--outputs", "{file}/out"], ["is under", "a file"]),
    ("outputs-empty", OK, ["--outputs", ""], ["--outputs ''", "empty"]),
    ("outputs-blank", OK, ["--outputs", "  "], ["--outputs '  '", "empty"]),
    ("outputs-read-only", OK, ["--outputs", "{readonly}/out"], ["not writable", "read-only"]),
    ("outputs-is-read-only", OK, ["--outputs", "{readonly}"], ["readonly' is not writable"]),
    ("outputs-file-dry-run", OK, ["--outputs", "{file}", "--dry-run"], ["is a file"]),
    ("notebooks-empty", OK, ["--notebooks", ""], ["--notebooks ''", "empty"]),
    ("params-empty", OK, ["--params", ""], ["--params ''", "empty"]),
    ("notebooks-missing", OK, ["--notebooks", "{out}/nope"], ["nope", "no notebook"]),
    # the kernel, the executor, --json
    (
        "kernel-unknown",
        OK,
        ["--kernel", "nosuch"],
        ["'nosuch'", "no such Jupyter kernel", "python3"],
    ),
    ("executor-unknown", OK, ["--executor", "dask"], ["--executor", "'dask'", "local"]),
    ("json-without-dry-run", OK, ["--json"], ["--json", "--dry-run"]),
    # the profile
    ("profile-unknown", OK, ["--profile", "nope"], ["profile 'nope' unknown", "mine"]),
    ("profile-path", OK, ["--profile", "../mine"], ["profile '../mine' not allowed", "letters"]),
    ("profile-empty", OK, ["--profile", ""], ["profile '' not allowed"]),
    # --only and --jobs
    ("only-no-notebook", OK, ["--only", "99_*"], ["only='99_*' matches no notebook", NOTEBOOK]),
    ("only-unknown-notebook", OK, ["--only", "99_nosuch"], ["99_nosuch", "matches no notebook"]),
    ("only-empty", OK, ["--only", ""], ["only=''", "matches no"]),
    ("only-no-run", OK, ["--only", "02_*.nosuch"], ["02_*.nosuch", "matches no run"]),
    ("only-other-notebook", OK, ["--only", "03_*"], ["only='03_*' matches no run", "mine"]),
    ("jobs-zero", OK, ["--jobs", "0"], ["--jobs", "'0'", ">= 1"]),
    ("jobs-negative", OK, ["--jobs", "-1"], ["--jobs", "'-1'", ">= 1"]),
    ("jobs-not-a-number", OK, ["--jobs", "x"], ["--jobs", "'x'", ">= 1"]),
    ("jobs-fraction", OK, ["--jobs", "1.5"], ["--jobs", "'1.5'", ">= 1"]),
    # params files
    (
        "params-duplicate-key",
        _params("lr: 0.1\nlr: 0.2\n"),
        [],
        ["'lr' appears twice", "lines 1 and 2"],
    ),
    ("params-empty-file", _params(""), [], [f"{NOTEBOOK}.yaml", "empty params file"]),
    ("params-comments-only", _params("# nothing\n"), [], ["empty params file"]),
    ("params-not-a-mapping", _params("- 1\n- 2\n"), [], ["expected a mapping", "list"]),
    ("params-bad-yaml", _params("lr: [1\n"), [], [f"{NOTEBOOK}.yaml", "not valid YAML"]),
    ("pruning-rate-zero", _params("pruning_rate: 0\n"), [], ["'pruning_rate' = 0", "(0.0, 1.0)"]),
    ("pruning-rate-one", _params("pruning_rate: 1\n"), [], ["'pruning_rate' = 1", "(0.0, 1.0)"]),
    ("pruning-rate-nan", _params("pruning_rate: .nan\n"), [], ["'pruning_rate' = nan", "finite"]),
    ("width-infinite", _params("width: .inf\n"), [], ["'width' = inf", "finite"]),
    ("unknown-parameter", _params("pruning_ratee: 0.5\n"), [], ["'pruning_ratee'", "allowed"]),
    ("wrong-type", _params("max_epochs: ten\n"), [], ["'max_epochs' = 'ten'", "an integer"]),
    ("wrong-type-bool", _params("width: true\n"), [], ["'width' = True", "a number"]),
    ("bad-choice", _params("arch: resnet50\n"), [], ["'arch' = 'resnet50'", "resnet18"]),
    ("seeds-empty", _params("seeds: []\n"), [], ["'seeds'", "non-empty list"]),
    ("reserved-parameter", _params("output_dir: /elsewhere\n"), [], ["'output_dir'", "runner"]),
    ("names-no-notebook", {"99_nosuch.yaml": "{}\n"}, [], ["99_nosuch.yaml", "names no notebook"]),
    ("yml-extension", {f"{NOTEBOOK}.yml": "{}\n"}, [], [f"{NOTEBOOK}.yml", "'.yaml'"]),
    ("bad-variant", {f"{NOTEBOOK}.a.b.yaml": "{}\n"}, [], ["variant 'a.b' not allowed"]),
    ("resources-bad", _params("resources: {gpus: 1}\n"), [], ["resources", "num_cpus"]),
    ("dry-run-bad-value", _params("pruning_rate: 0\n"), ["--dry-run"], ["'pruning_rate' = 0"]),
    (
        "data-options-typo",
        _params("data_options: {n_sample: 100}\n"),
        [],
        ["'data_options'", "n_sample", "allowed"],
    ),
    # notebook parameters outside the shared settings (wemem.studies.parameters), issue 14's cases
    (
        "attack-misspelled",
        _nb("03_defense_rsw", "attacks: [conf, entrr]\n"),
        [],
        ["'attacks'", "entrr"],
    ),
    ("tau-share-above-one", _nb("04_defense_rmr", "tau_share: 1.5\n"), [], ["'tau_share' = 1.5"]),
    ("lambdas-negative", _nb("04_defense_rmr", "lambdas: [-0.1]\n"), [], ["'lambdas'", "-0.1"]),
    ("lambda-r-negative", _nb("05_defense_swmr", "lambda_r: -1.0\n"), [], ["'lambda_r' = -1.0"]),
    ("steps-zero", _nb("03_defense_rsw", "widths: [10]\nsteps: [0]\n"), [], ["'steps'", "[0]"]),
    ("widths-without-steps", _nb("03_defense_rsw", "widths: [10]\n"), [], ["widths", "steps"]),
    ("sigmas-negative", _nb("07_dpsgd_opacus", "sigmas: [-1.0]\n"), [], ["'sigmas'", "-1.0"]),
    ("no-dp-row", _nb("07_dpsgd_opacus", "sigmas: []\ntarget_epsilons: []\n"), [], ["DP"]),
    (
        "reuse-epochs-negative",
        _nb("02_motivation", "reuse_epochs: [-1, 0]\n"),
        [],
        ["'reuse_epochs'"],
    ),
    (
        "orders-unknown",
        _nb("03_defense_rsw", "orders: [H2L, sideways]\n"),
        [],
        ["'orders'", "sideways"],
    ),
    (
        "window-mode-unknown",
        _nb("05_defense_swmr", "window_mode: clipped\n"),
        [],
        ["'window_mode'", "clipped"],
    ),
    ("attack-epochs-zero", _nb("08_attacks", "attack_epochs: 0\n"), [], ["'attack_epochs' = 0"]),
    (
        "convergence-ks-above-models",
        _nb("01_memorization_scores", "convergence_ks: [2, 64]\nmemscore_models: 8\n"),
        [],
        ["convergence_ks", "memscore_models"],
    ),
]


@pytest.fixture(autouse=True)
def _no_kernel(monkeypatch):
    def refuse(*args, **kwargs):
        pytest.fail("a notebook started although the input was bad")

    monkeypatch.setattr(papermill, "execute_notebook", refuse)


def _tree(tmp_path: Path, files: dict[str, str], monkeypatch) -> dict[str, Path]:
    params = tmp_path / "params"
    (params / "mine").mkdir(parents=True)
    for name, text in files.items():
        (params / "mine" / name).write_text(text, encoding="utf-8")
    file = tmp_path / "not-a-folder.txt"
    file.write_text("a file\n")
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    readonly.chmod(0o555)
    real_access = os.access

    def access(path, mode, **kwargs):  # root may write anywhere: pretend it may not write here
        return False if Path(path) == readonly else real_access(path, mode, **kwargs)

    monkeypatch.setattr(preflight.os, "access", access)
    return {"params": params, "out": tmp_path / "outputs", "file": file, "readonly": readonly}


def _main(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _written(tmp_path: Path) -> list[str]:
    """Everything under tmp_path but the inputs the test wrote."""
    inputs = {"params", "not-a-folder.txt", "readonly"}
    return sorted(
        p.relative_to(tmp_path).as_posix()
        for p in tmp_path.rglob("*")
        if p.relative_to(tmp_path).parts[0] not in inputs
    )


if not torch.cuda.is_available():  # on a GPU machine `device: cuda` is a legal value
    ROWS.append(("device-cuda-without-gpu", _params("device: cuda\n"), [], ["device", "no CUDA"]))


@pytest.mark.parametrize(("files", "args", "says"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path, capsys, monkeypatch, files, args, says
):
    paths = _tree(tmp_path, files, monkeypatch)
    fill = {k: str(v) for k, v in paths.items()}
    argv = ["reproduce", "--profile", "mine", "--params", fill["params"], "--notebooks",
            str(ROOT / "notebooks"), "--outputs", fill["out"]]  # fmt: skip
    argv += [a.format(**fill) for a in args]  # a later --outputs etc. wins
    code, out, err = _main(capsys, argv)
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("wemem: error: "), err
    assert "Traceback" not in err and out == ""
    for text in says:
        assert text in err, (text, err)
    assert _written(tmp_path) == []
    assert paths["file"].read_text() == "a file\n" and list(paths["readonly"].iterdir()) == []


def test_the_table_has_enough_rows():
    assert len(ROWS) >= 25 and len({r[0] for r in ROWS}) == len(ROWS)


def test_verbose_logs_the_details_but_stderr_keeps_one_line(tmp_path, capsys, monkeypatch):
    paths = _tree(tmp_path, OK, monkeypatch)
    argv = ["-v", "reproduce", "--profile", "mine", "--params", str(paths["params"]),
            "--notebooks", str(ROOT / "notebooks"), "--kernel", "nosuch"]  # fmt: skip
    code, _, err = _main(capsys, [*argv, "--outputs", str(paths["out"])])
    assert code == 2 and err.strip().splitlines()[-1].startswith("wemem: error: kernel 'nosuch'")


# ----------------------------------------------------------------------------- while running


def _fake(exc: BaseException):
    def execute(input_path, output_path, *, parameters, cwd, **kwargs):
        nbformat.write(nbformat.read(input_path, as_version=4), output_path)
        Path(os.environ["WEMEM_RUN_DIR"], "partial.txt").write_text("half")
        raise exc

    return execute


@pytest.mark.parametrize(
    ("exc", "code", "says"),
    [
        (KeyboardInterrupt(), 130, "wemem: interrupted: "),
        (
            OSError(errno.ENOSPC, "No space left on device", "/x/metrics.json"),
            2,
            "wemem: error: No space left on device: /x/metrics.json",
        ),
        (
            PermissionError(errno.EACCES, "Permission denied", "/x/out"),
            2,
            "wemem: error: Permission denied: /x/out",
        ),
    ],
    ids=["ctrl-c", "disk-full", "permission"],
)
def test_errors_while_running_are_one_line_and_leave_no_temp_folder(
    tmp_path, capsys, monkeypatch, exc, code, says
):
    paths = _tree(tmp_path, {"00_overview.yaml": "{}\n"}, monkeypatch)
    monkeypatch.setattr(papermill, "execute_notebook", _fake(exc))
    argv = ["reproduce", "--profile", "mine", "--params", str(paths["params"]),
            "--notebooks", str(ROOT / "notebooks"), "--outputs", str(paths["out"])]  # fmt: skip
    got, out, err = _main(capsys, argv)
    assert got == code and says in err and len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    assert not (paths["out"] / "00_overview").exists()  # the run's temp folder is gone
    kept = sorted(p.name for p in (paths["out"] / "failed").glob("*")) if code == 2 else []
    assert kept == (["00_overview-mine.ipynb"] if code == 2 else [])  # not kept on Ctrl-C
