"""Compare every run's ``metrics.json`` of two output folders, timing fields aside.

Usage: python benchmarks/compare_metrics.py BEFORE_OUTPUTS AFTER_OUTPUTS [--profile cpu] [--json]

Walks ``<root>/<notebook>/<profile>*/metrics.json`` in both folders and compares the two JSON trees
value by value. Fields that measure wall-clock time (names containing ``second``, ``time``,
``speedup``, ``ratio_to_base``, ``duration``, ...) and the temporary ``output_dir`` setting are
ignored, as are values derived from them (listed in ``TIMING``); every other value must be equal
(floats bit for bit). Prints one line per differing value and a summary; exit 1 on any difference
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


def runs(root: Path, profile: str) -> dict[str, Path]:
    """``<notebook>/<run>`` → its metrics.json, for the runs of ``profile`` (variants included)."""
    out = {}
    for path in sorted(root.glob("*/*/metrics.json")):
        run = path.parent.name
        if run == profile or run.startswith(f"{profile}-"):
            out[f"{path.parent.parent.name}/{run}"] = path
    return out


def diff(a, b, path: str = "") -> tuple[list[str], list[str]]:
    """(differences, ignored timing paths) between two JSON values."""
    if isinstance(a, dict) and isinstance(b, dict):
        diffs, ignored = [], []
        for k in sorted(set(a) | set(b)):
            p = f"{path}.{k}"
            if TIMING.search(str(k)):
                ignored.append(p)
                continue
            if k not in a or k not in b:
                diffs.append(f"{p}: only in {'after' if k not in a else 'before'}")
                continue
            d, i = diff(a[k], b[k], p)
            diffs += d
            ignored += i
        return diffs, ignored
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items before, {len(b)} after"], []
        diffs, ignored = [], []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            d, g = diff(x, y, f"{path}[{i}]")
            diffs += d
            ignored += g
        return diffs, ignored
    if a != b or type(a) is not type(b):
        return [f"{path}: {a!r:.60} before, {b!r:.60} after"], []
    return [], []


def compare(before: Path, after: Path, profile: str) -> dict:
    ra, rb = runs(before, profile), runs(after, profile)
    report: dict = {"runs": {}, "missing": sorted(set(ra) ^ set(rb))}
    for name in sorted(set(ra) & set(rb)):
        a = json.loads(ra[name].read_text(encoding="utf-8"))
        b = json.loads(rb[name].read_text(encoding="utf-8"))
        diffs, ignored = diff(a, b)
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
    ap.add_argument("--json", action="store_true", help="print the whole report as JSON")
    args = ap.parse_args(argv)
    report = compare(args.before, args.after, args.profile)
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
        n = len(report["runs"])
        print(
            f"{n} runs compared: {'all equal apart from timing' if report['equal'] else 'DIFFER'}"
        )
    return 0 if report["equal"] else 1


if __name__ == "__main__":
    sys.exit(main())
