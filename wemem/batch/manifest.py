"""The run manifest ``params/manifest.yaml``: every run of every profile, in dependency order.

It says, per notebook, what it reproduces, which earlier notebooks it needs and what it produces;
per profile, the hardware it is meant for and each run with its minutes (measured or estimated).
:func:`check` holds it to ``notebooks/`` and ``params/``; :func:`markdown_map` generates the README's
map paper artefact → notebook → params → report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from wemem.errors import ParamsError

FILE = "manifest.yaml"
HARDWARE = ("cpu", "gpu")
MAP_START, MAP_END = "<!-- manifest-map:start -->", "<!-- manifest-map:end -->"


@dataclass(frozen=True)
class NotebookEntry:
    stem: str
    reproduces: str
    needs: tuple[str, ...]
    produces: tuple[str, ...]
    reads_outputs: bool = False  # reads the needed runs' outputs (not just their cached models)


@dataclass(frozen=True)
class RunEntry:
    """One run: ``run`` is ``<stem>`` or ``<stem>.<variant>`` (its params file's name)."""

    run: str
    profile: str
    hardware: str
    minutes: float | None

    @property
    def stem(self) -> str:
        return self.run.partition(".")[0]

    @property
    def variant(self) -> str | None:
        return self.run.partition(".")[2] or None


@dataclass(frozen=True)
class Manifest:
    notebooks: dict[str, NotebookEntry]
    runs: dict[str, list[RunEntry]]  # profile → runs in order

    def run(self, profile: str, stem: str, variant: str | None) -> RunEntry | None:
        name = stem if variant is None else f"{stem}.{variant}"
        return next((r for r in self.runs.get(profile, []) if r.run == name), None)


def _fail(path: Path, what: str) -> ParamsError:
    return ParamsError(f"{path}: {what}")


def load(params_dir: Path = Path("params")) -> Manifest:
    """Read and check the shape of ``<params_dir>/manifest.yaml``.

    Raises:
        ParamsError: missing file, invalid YAML, or a field of the wrong shape (named).
    """
    path = Path(params_dir) / FILE
    if not path.exists():
        raise _fail(path, "no run manifest; every profile's runs are listed there")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise _fail(path, f"not valid YAML: {exc}") from None
    if not isinstance(data.get("notebooks"), dict) or not isinstance(data.get("profiles"), dict):
        raise _fail(path, "expected two mappings, 'notebooks' and 'profiles'")
    notebooks = {}
    for stem, entry in data["notebooks"].items():
        keys = {"reproduces", "needs", "produces"}
        if not isinstance(entry, dict) or not keys <= set(entry) <= keys | {"reads_outputs"}:
            raise _fail(
                path, f"notebooks.{stem}: expected keys reproduces, needs, produces [reads_outputs]"
            )
        notebooks[stem] = NotebookEntry(
            stem,
            str(entry["reproduces"]),
            tuple(entry["needs"]),
            tuple(entry["produces"]),
            bool(entry.get("reads_outputs", False)),
        )
    runs: dict[str, list[RunEntry]] = {}
    for profile, entry in data["profiles"].items():
        hardware = entry.get("hardware") if isinstance(entry, dict) else None
        if hardware not in HARDWARE:
            raise _fail(path, f"profiles.{profile}.hardware = {hardware!r}: allowed {HARDWARE}")
        runs[profile] = []
        for i, r in enumerate(entry.get("runs") or []):
            if not isinstance(r, dict) or "run" not in r:
                raise _fail(
                    path, f"profiles.{profile}.runs[{i}]: expected {{run: ..., minutes: ...}}"
                )
            minutes = r.get("minutes")
            if minutes is not None and not isinstance(minutes, int | float):
                raise _fail(path, f"profiles.{profile}.runs[{i}].minutes: a number or null")
            runs[profile].append(RunEntry(str(r["run"]), profile, hardware, minutes))
    return Manifest(notebooks, runs)


def check(manifest: Manifest, notebooks_dir: Path, params_dir: Path) -> list[str]:
    """Every disagreement between the manifest and ``notebooks/`` + ``params/`` (empty: none)."""
    from wemem.batch.runner import discover_runs

    problems = []
    stems = sorted(p.stem for p in Path(notebooks_dir).glob("*.ipynb"))
    for stem in sorted(set(stems) - set(manifest.notebooks)):
        problems.append(f"notebook {stem} is not in the manifest's 'notebooks'")
    for stem in sorted(set(manifest.notebooks) - set(stems)):
        problems.append(f"manifest lists notebook {stem}, which does not exist")
    for stem, entry in manifest.notebooks.items():
        for need in entry.needs:
            if need not in manifest.notebooks or need >= stem:
                problems.append(f"{stem} needs {need}: not an earlier notebook of the manifest")
    for profile in sorted({p.name for p in Path(params_dir).iterdir() if p.is_dir()} | {"cpu"}):
        found = [
            s.stem if s.variant is None else f"{s.stem}.{s.variant}"
            for s in discover_runs(profile, notebooks_dir=notebooks_dir, params_dir=params_dir)
        ]
        listed = [r.run for r in manifest.runs.get(profile, [])]
        for run in sorted(set(found) - set(listed)):
            problems.append(
                f"profile {profile}: run {run} missing; add '- {{run: {run}, minutes: …}}'"
            )
        for run in sorted(set(listed) - set(found)):
            problems.append(f"profile {profile}: run {run} listed but has no params file")
        order = [r for r in listed if r in found]
        if order != sorted(order, key=lambda r: (r.partition(".")[0], "." in r, r)):
            problems.append(f"profile {profile}: runs not in notebook (dependency) order")
    return problems


def order_key(manifest: Manifest, profile: str):
    """Sort key for runs: the manifest's order; unlisted runs after, by name."""
    position = {r.run: i for i, r in enumerate(manifest.runs.get(profile, []))}

    def key(spec) -> tuple:
        name = spec.stem if spec.variant is None else f"{spec.stem}.{spec.variant}"
        return (position.get(name, len(position)), name)

    return key


def _minutes(m: float) -> str:
    if m < 1:
        return f"{m * 60:.0f} s"
    if m < 90:
        return f"{m:.0f} min"
    if m < 2880:
        return f"{m / 60:.1f} h"
    return f"{m / 1440:.1f} d"


def _profile_cells(manifest: Manifest, stem: str) -> str:
    cells = []
    for profile in ("cpu", "paper"):
        runs = [r for r in manifest.runs.get(profile, []) if r.stem == stem]
        if not runs:
            continue
        minutes = sum(r.minutes or 0 for r in runs)
        label = "measured" if profile == "cpu" else "est."
        variants = len(runs)
        runs_text = f"{variants} run{'s' * (variants > 1)}"
        cells.append(f"`{profile}`: {runs_text}, {_minutes(minutes)} {label}")
    return "; ".join(cells)


def markdown_map(manifest: Manifest) -> str:
    """The README's map: paper artefact → notebook → params (runs, minutes) → report."""
    lines = [
        "| paper artefact | notebook | params (runs, time) | report |",
        "|---|---|---|---|",
    ]
    for stem, entry in manifest.notebooks.items():
        lines.append(
            f"| {entry.reproduces} | [`{stem}`](notebooks/{stem}.ipynb) | "
            f"{_profile_cells(manifest, stem)} | `outputs/reports/{stem}-<run>.html` |"
        )
    totals = []
    for profile, runs in manifest.runs.items():
        minutes = sum(r.minutes or 0 for r in runs)
        totals.append(f"`{profile}` {len(runs)} runs, {_minutes(minutes)} on {runs[0].hardware}")
    lines += ["", "Totals: " + "; ".join(totals) + "."]
    return "\n".join(lines)


def readme_block(readme: Path) -> str | None:
    """The text between the map markers of ``readme`` (``None`` when they are missing)."""
    text = Path(readme).read_text(encoding="utf-8")
    m = re.search(re.escape(MAP_START) + r"\n(.*?)" + re.escape(MAP_END), text, re.S)
    return m.group(1).rstrip("\n") if m else None


def write_readme_block(readme: Path, block: str) -> None:
    text = Path(readme).read_text(encoding="utf-8")
    if readme_block(readme) is None:
        raise ParamsError(f"{readme}: markers {MAP_START} … {MAP_END} not found")
    pattern = re.escape(MAP_START) + r"\n.*?" + re.escape(MAP_END)
    new = re.sub(pattern, lambda _: f"{MAP_START}\n{block}\n{MAP_END}", text, flags=re.S)
    Path(readme).write_text(new, encoding="utf-8")


def set_minutes(params_dir: Path, profile: str, minutes: dict[str, float]) -> int:
    """Rewrite the ``minutes`` of the named runs of ``profile`` in place (comments kept).

    Returns the number of runs updated."""
    path = Path(params_dir) / FILE
    lines = path.read_text(encoding="utf-8").splitlines()
    current, changed = None, 0
    for i, line in enumerate(lines):
        m = re.match(r"^  (\w+):\s*$", line)
        if m:
            current = m.group(1)
        m = re.match(r"^(\s+- \{run: )([\w.\-]+)(, minutes: )([^}]*)\}\s*$", line)
        if m and current == profile and m.group(2) in minutes:
            value = round(float(minutes[m.group(2)]), 2)
            lines[i] = f"{m.group(1)}{m.group(2)}{m.group(3)}{value}}}"
            changed += 1
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return changed


#: The device class whose estimate a profile's minutes take when no measured batch exists.
ESTIMATE_CLASS = {"cpu": "cpu-2core", "gpu": "gpu-h100-class"}


def refresh_minutes(
    params_dir: Path = Path("params"),
    outputs_root: Path = Path("outputs"),
    notebooks_dir: Path = Path("notebooks"),
) -> dict[str, str]:
    """Rewrite every run's ``minutes``: measured from ``outputs/reproduce-<profile>.json`` when a
    complete batch of that profile ran there (skipped runs keep their old value), else the cost
    model's expected time (early stopping as measured) on :data:`ESTIMATE_CLASS` of its hardware.

    Returns ``{profile: "measured" | "estimated on <class>"}``.
    """
    import json

    from wemem.batch.runner import discover_runs
    from wemem.planning.costing import estimate_runs

    m = load(params_dir)
    how = {}
    for profile, runs in m.runs.items():
        batch = Path(outputs_root) / f"reproduce-{profile}.json"
        minutes: dict[str, float] = {}
        if batch.exists():
            record = json.loads(batch.read_text())
            for r in record["runs"]:
                if not r.get("skipped"):
                    variant = r["run_name"].removeprefix(profile).removeprefix("-")
                    minutes[r["notebook"] + (f".{variant}" if variant else "")] = r["seconds"] / 60
            how[profile] = "measured"
        else:
            specs = discover_runs(profile, notebooks_dir=notebooks_dir, params_dir=params_dir)
            cls = ESTIMATE_CLASS[runs[0].hardware]
            table = estimate_runs(specs, device_class_names=[cls], expected=True)
            for spec, sec in zip(specs, table[f"seconds {cls}"], strict=True):
                minutes[spec.run_id] = sec / 60
            how[profile] = f"estimated on {cls}"
        set_minutes(params_dir, profile, minutes)
    return how
