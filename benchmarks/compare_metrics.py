"""Compare every run's ``metrics.json`` of two output folders, timing fields aside.

Usage: python benchmarks/compare_metrics.py BEFORE_OUTPUTS AFTER_OUTPUTS [--profile cpu]
       [--ignore .settings.defense ...] [--json]

Walks ``<root>/<notebook>/<profile>*/metrics.json`` in both folders and compares the two JSON trees
value by value. Fields that measure wall-clock time (names containing ``second``, ``time``,
``speedup``, ``ratio_to_base``, ``duration``, ...) and the temporary ``output_dir`` setting are
ignored, as are values derived from them (listed in ``TIMING``) and the numbers of table rows
labelled as timings (``ROW_LABELS``); every other value must be equal
(floats bit for bit). ``--ignore PATH`` names a field removed or added on purpose (a dotted path
from the file's root, e.g. ``.settings.defense``); it is listed, not counted. Prints one line per differing value and a summary; exit 1 on any difference
or on a run present in only one folder. Issue 11 uses it to show the restructuring changed no
result.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

#: A key matching this names a timing field (or one computed from timings); it is not compared.
TIMING = re.compile(
    r"(second|time|speedup|ratio_to_base|duration|elapsed|started|finished|wall|per_epoch_s"
    r"|faster|slower|cuts_finetuning|output_dir)",
    re.IGNORECASE,
)


#: A table row (a dict in a list) whose label fields name a timing (notebook 12's T-time rows,
#: ``quantity: "fine-tuning time / Base"``, or a claim keyed on ``mean_speedup_vs_base``) has its
#: numbers ignored; its strings (a claim's status) are still compared.
ROW_LABELS = ("quantity", "key")


def _timing_row(d: dict) -> bool:
    return any(isinstance(d.get(k), str) and TIMING.search(d[k]) for k in ROW_LABELS)


def runs(root: Path, profile: str) -> dict[str, Path]:
    """``<notebook>/<run>`` → its metrics.json, for the runs of ``profile`` (variants included)."""
    out = {}
    for path in sorted(root.glob("*/*/metrics.json")):
        run = path.parent.name
        if run == profile or run.startswith(f"{profile}-"):
            out[f"{path.parent.parent.name}/{run}"] = path
    return out


def diff(a, b, path: str = "", skip: frozenset[str] = frozenset()) -> tuple[list[str], list[str]]:
    """(differences, ignored timing paths) between two JSON values; paths in ``skip`` are ignored."""
    if isinstance(a, dict) and isinstance(b, dict):
        diffs, ignored = [], []
        timing_row = _timing_row(a) and _timing_row(b)
        for k in sorted(set(a) | set(b)):
            p = f"{path}.{k}"
            number = isinstance(a.get(k), int | float) and not isinstance(a.get(k), bool)
            if TIMING.search(str(k)) or p in skip or (timing_row and number):
                ignored.append(p)
                continue
            if k not in a or k not in b:
                diffs.append(f"{p}: only in {'after' if k not in a else 'before'}")
                continue
            d, i = diff(a[k], b[k], p, skip)
            diffs += d
            ignored += i
        return diffs, ignored
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items before, {len(b)} after"], []
        diffs, ignored = [], []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            d, g = diff(x, y, f"{path}[{i}]", skip)
            diffs += d
            ignored += g
        return diffs, ignored
    if a != b or type(a) is not type(b):
        return [f"{path}: {a!r:.60} before, {b!r:.60} after"], []
    return [], []


def compare(before: Path, after: Path, profile: str, skip: frozenset[str] = frozenset()) -> dict:
    ra, rb = runs(before, profile), runs(after, profile)
    report: dict = {"runs": {}, "missing": sorted(set(ra) ^ set(rb)), "ignored": sorted(skip)}
    for name in sorted(set(ra) & set(rb)):
        a = json.loads(ra[name].read_text(encoding="utf-8"))
        b = json.loads(rb[name].read_text(encoding="utf-8"))
        diffs, ignored = diff(a, b, skip=skip)
        report["runs"][name] = {"differences": diffs, "timing_fields_ignored": len(set(ignored))}
    report["equal"] = not report["missing"] and all(
        not r["differences"] for r in report["runs"].values()
    )
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", type=Path)
    ap.add_argument("after", type=Path)
    ap.add_argument("--profile", default="cpu")
    ap.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="PATH",
        help="a field changed on purpose, e.g. .settings.defense (repeatable)",
    )
    ap.add_argument("--json", action="store_true", help="print the whole report as JSON")
    args = ap.parse_args(argv)
    report = compare(args.before, args.after, args.profile, frozenset(args.ignore))
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        for name, r in report["runs"].items():
            state = "equal" if not r["differences"] else f"{len(r['differences'])} differences"
            print(f"{name}: {state} ({r['timing_fields_ignored']} timing fields ignored)")
            for d in r["differences"][:20]:
                print(f"    {d}")
        for name in report["missing"]:
            print(f"{name}: present in only one folder")
        if report["ignored"]:
            print(f"ignored on purpose: {', '.join(report['ignored'])}")
        n = len(report["runs"])
        print(
            f"{n} runs compared: {'all equal apart from timing' if report['equal'] else 'DIFFER'}"
        )
    return 0 if report["equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
