"""Compare each run's plan (``wemem reproduce --dry-run``) with the cache entries the run used.

Usage: python benchmarks/plan_vs_cache.py OUTPUTS_DIR [--profile cpu] [--cache DIR] [--full]

For every published run of ``--profile`` under OUTPUTS_DIR (``<notebook>/<run>/run.json``), reads
the cache entries the run loaded or saved (``cache_entries``, logged through ``$WEMEM_CACHE_LOG``)
and their specs from the cache's sidecars, and compares them with the entries its plan lists
(:func:`wemem.planning.workload.planned_entries`), data digests replaced by placeholders on both
sides (:mod:`wemem.planning.verify`). Prints one line per run, ``equal`` or its differences (``-``
planned but not used, ``+`` used but not planned; ``--full`` prints whole specs), and a summary.
Exit 1 when a run with an exact plan differs or an entry's sidecar is gone (e.g. after
``wemem cache gc``).

The cache is ``--cache``, else each run's ``cache_dir`` setting, ``$WEMEM_CACHE`` or the default
(``.wemem_cache/`` at the repository root): the one the batch ran with. Issue 11 uses it after a
full ``cpu`` batch to show that the plan is what ran.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from wemem.planning.verify import APPROXIMATE, compare_run, run_dirs

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("outputs", type=Path, help="the batch's outputs folder")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--cache", type=Path, default=None, help="cache folder the batch used")
    ap.add_argument("--notebooks", type=Path, default=ROOT / "notebooks")
    ap.add_argument("--full", action="store_true", help="print whole specs of the differences")
    args = ap.parse_args(argv)

    dirs = run_dirs(args.outputs, args.profile)
    if not dirs:
        print(f"no run of profile {args.profile!r} under {args.outputs}", file=sys.stderr)
        return 1
    equal = approximate = failed = 0
    for run_dir in dirs:
        result = compare_run(run_dir, cache_root=args.cache, notebooks_dir=args.notebooks)
        print("\n".join(result.lines(full=args.full)))
        if result.equal:
            equal += 1
        elif result.stem in APPROXIMATE and not result.unreadable:
            approximate += 1
        else:
            failed += 1
    print(
        f"{len(dirs)} runs of profile {args.profile}: {equal} equal, {approximate} differ where "
        f"the plan is approximate, {failed} differ"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
