"""The run manifest ``params/manifest.yaml``: every run of every profile, in dependency order.

It says, per notebook, what it reproduces, which earlier notebooks it needs and what it produces;
per profile, the hardware it is meant for and each run with its minutes (measured or estimated).
:func:`markdown_map` generates the README's map paper artefact → notebook → params → report;
:mod:`wemem.batch.manifest_sync` holds the manifest to ``notebooks/`` and ``params/`` and refreshes its
minutes, :mod:`wemem.batch.navigation` derives the notebooks' navigation lines from its order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from wemem.errors import ParamsError
from wemem.params import load_params_file

FILE = "manifest.yaml"
HARDWARE = ("cpu", "gpu")
_SHAPE = "two mappings, 'notebooks' and 'profiles'"
MAP_START, MAP_END = "<!-- manifest-map:start -->", "<!-- manifest-map:end -->"


@dataclass(frozen=True)
class NotebookEntry:
    stem: str
    reproduces: str
    needs: tuple[str, ...]
    produces: tuple[str, ...]
    reads_outputs: bool = False  # reads the needed runs' outputs (not just their cached models)
    # when it runs alone in a batch with --jobs N: "always" (it times its trainings), "parallel"
    # (with the Ray executor, whose workers it keeps busy; the pool's workers share the machine's
    # core slots instead, wemem/experiment/slots.py) or "never"
    exclusive: str = "never"


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
    data = load_params_file(
        path,
        expected=_SHAPE,
        empty=f"empty manifest; expected {_SHAPE} (every profile's runs are listed there)",
    )
    if not isinstance(data.get("notebooks"), dict) or not isinstance(data.get("profiles"), dict):
        raise _fail(path, f"expected {_SHAPE}")
    notebooks = {}
    for stem, entry in data["notebooks"].items():
        keys = {"reproduces", "needs", "produces"}
        optional = {"reads_outputs", "exclusive"}
        if not isinstance(entry, dict) or not keys <= set(entry) <= keys | optional:
            raise _fail(
                path,
                f"notebooks.{stem}: expected keys reproduces, needs, produces "
                "[reads_outputs, exclusive]",
            )
        notebooks[stem] = NotebookEntry(
            stem,
            str(entry["reproduces"]),
            tuple(entry["needs"]),
            tuple(entry["produces"]),
            bool(entry.get("reads_outputs", False)),
            _exclusive(path, stem, entry.get("exclusive", "never")),
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


EXCLUSIVE = ("always", "parallel", "never")


def _exclusive(path: Path, stem: str, value) -> str:
    if value not in EXCLUSIVE:
        raise _fail(path, f"notebooks.{stem}.exclusive = {value!r}: allowed {', '.join(EXCLUSIVE)}")
    return value


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
    lines += ["", "Totals (each run's own time, summed; `--jobs N` overlaps runs): "
              + "; ".join(totals) + "."]  # fmt: skip
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
