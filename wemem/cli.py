"""Command line: ``wemem reproduce`` runs the notebooks, ``wemem data`` manages datasets.

A user-caused or environment error (bad parameters or arguments, a missing dataset or kernel, an
outputs folder that cannot be written) prints one line and exits with status 2, without a
traceback (``-v`` logs it); nothing is written under ``outputs/`` in that case. Ctrl-C prints one
line and exits with status 130 (the interrupted run's temporary folder is removed).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from wemem.errors import WememError

#: Exception names that, raised inside a notebook, are the user's to fix (exit 2, one line).
USER_ERRORS = {"WememError", "ParamsError", "DatasetMissingError", "DataFormatError"}
EXIT_USER, EXIT_INTERRUPTED = 2, 130


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``wemem: error: …``), like wemem's own."""

    def error(self, message: str):
        self.exit(EXIT_USER, f"wemem: error: {self.prog}: {message} (see {self.prog} --help)\n")


def _jobs(text: str) -> int:
    """``--jobs``: an integer >= 1."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: allowed values are integers >= 1")
    return int(text)


def _folder_args(args: argparse.Namespace) -> dict[str, Path]:
    """The folders of ``wemem reproduce``; an empty one is an error, not the current folder."""
    for flag in ("outputs", "notebooks", "params"):
        if not str(getattr(args, flag)).strip():
            raise WememError(f"--{flag} {getattr(args, flag)!r}: empty; name a folder")
    return {
        "outputs_root": Path(args.outputs),
        "notebooks_dir": Path(args.notebooks),
        "params_dir": Path(args.params),
    }


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from wemem.batch import runner

    dirs = _folder_args(args)
    if args.json and not args.dry_run:
        raise WememError("--json: only with --dry-run (it prints the resolved plan, runs nothing)")
    if args.dry_run:
        from wemem.planning.dry_run import cost_table, render

        rows = runner.plan(args.profile, only=args.only, force=args.force, smoke=args.smoke, **dirs)
        if args.json:
            from wemem.planning.plan_json import dumps, plan_document

            sys.stdout.write(dumps(plan_document(rows, profile=args.profile)) + "\n")
            return 0
        if args.verbose:
            from wemem.planning.dry_run import render_jobs

            sys.stdout.write(render_jobs(rows) + "\n")
        sys.stdout.write(render(cost_table(rows), profile=args.profile) + "\n")
        return 0
    t0 = time.perf_counter()
    results = runner.reproduce(
        args.profile,
        only=args.only,
        kernel_name=args.kernel,
        force=args.force,
        executor=args.executor,
        ray_address=args.ray_address,
        smoke=args.smoke,
        jobs=args.jobs,
        keep_going=args.keep_going,
        wait=args.wait,
        **dirs,
    )
    total = time.perf_counter() - t0  # wall time (runs may overlap under --jobs)
    skipped = sum(r["skipped"] for r in results)
    for r in results:
        logging.getLogger("wemem").info("%s [%s]: %.1f s", r["stem"], r["run_name"], r["seconds"])
    sys.stdout.write(
        f"ran {len(results) - skipped} notebook(s) for profile {args.profile} in {total:.0f} s"
        f"{f', skipped {skipped} unchanged' if skipped else ''}; "
        f"reports: {Path(args.outputs) / 'reports' / 'index.html'}\n"
    )
    return 0


def _cache_root(args: argparse.Namespace) -> Path:
    from wemem.cache import default_cache_dir

    return Path(args.dir) if args.dir else default_cache_dir()


def _cmd_cache_verify(args: argparse.Namespace) -> int:
    from wemem import cache

    root = _cache_root(args)
    report = cache.verify(root, fix=args.fix)
    bad = {k: v for k, v in report.items() if k != "ok" and v}
    sys.stdout.write(f"cache {root}: {len(report['ok'])} entries ok\n")
    for kind, names in bad.items():
        verb = "removed" if args.fix else "found"
        sys.stdout.write(f"  {kind} ({verb}): {len(names)}\n")
        for n in names[:20]:
            sys.stdout.write(f"    {n}\n")
    return 1 if bad and not args.fix else 0


def _cmd_cache_gc(args: argparse.Namespace) -> int:
    import json

    from wemem import cache
    from wemem.batch import locks
    from wemem.errors import WememError

    root = _cache_root(args)
    reachable: set[str] = set()
    records = 0
    for out in args.outputs:
        for record in Path(out).glob("*/*/run.json"):
            entries = json.loads(record.read_text()).get("cache_entries")
            if entries is not None:
                records += 1
                reachable |= set(entries)
    if not records and not args.all:
        raise WememError(
            f"no run under {', '.join(args.outputs)} records its cache entries, so none is "
            "reachable; pass --all to empty the cache, or --outputs to name the run folders"
        )
    if not args.drop_resume_points:
        reachable |= {n for n in cache.entries(root) if n.startswith("round/")}
    with locks.collecting(root):  # refuses while a batch runs on this cache
        removed, freed = cache.gc(root, reachable, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    sys.stdout.write(
        f"cache {root}: {records} recorded runs reach {len(reachable)} entries; "
        f"{verb} {len(removed)} ({freed / 2**20:.1f} MiB)\n"
    )
    return 0


def _cmd_manifest(args: argparse.Namespace) -> int:
    from wemem.batch import manifest, manifest_sync
    from wemem.errors import ParamsError

    if args.refresh_minutes:
        how = manifest_sync.refresh_minutes(
            Path(args.params), Path(args.outputs), Path(args.notebooks)
        )
        for profile, source in how.items():
            sys.stdout.write(f"{profile}: minutes {source}\n")
    m = manifest.load(Path(args.params))
    if args.write_navigation:
        from wemem.batch import navigation

        changed = navigation.write_navigation(m, Path(args.notebooks))
        for path in changed:
            sys.stdout.write(f"{path}: navigation line rewritten\n")
        sys.stdout.write(f"{len(changed)} of {len(m.notebooks)} notebooks' navigation rewritten\n")
    if args.write_readme:
        manifest.write_readme_block(Path(args.readme), manifest.markdown_map(m))
        sys.stdout.write(f"{args.readme}: map rewritten\n")
        return 0
    if args.write_navigation:
        return 0
    if args.markdown:
        sys.stdout.write(manifest.markdown_map(m) + "\n")
        return 0
    problems = manifest_sync.check(m, Path(args.notebooks), Path(args.params))
    if problems:
        raise ParamsError("manifest disagrees with notebooks/ and params/:\n" + "\n".join(problems))
    for profile, runs in m.runs.items():
        minutes = sum(r.minutes or 0 for r in runs)
        sys.stdout.write(
            f"{profile:<6} {len(runs):>3} runs  {minutes:7.0f} min  ({runs[0].hardware})\n"
        )
    return 0


def _cmd_data_list(args: argparse.Namespace) -> int:
    from wemem.data import DATASETS, data_root, is_available
    from wemem.data.registry import is_fixture

    root = Path(args.root) if args.root else data_root()
    sys.stdout.write(f"data root: {root} (set WEMEM_DATA to change)\n")
    for name, info in DATASETS.items():
        where = "ships offline" if info.offline else str(root / name)
        state = "ok" if is_available(name, root) else "missing"
        if state == "ok" and is_fixture(name, root):
            state = "fixture"  # a synthetic stand-in from `wemem data fixtures`
        sys.stdout.write(
            f"  {name:<12} {info.kind:<8} C={info.num_classes:<4} {state:<8} {where}\n"
        )
    return 0


def _cmd_data_fetch(args: argparse.Namespace) -> int:
    from wemem.data import fetch

    path = fetch(args.name, root=Path(args.root) if args.root else None)
    sys.stdout.write(f"{args.name}: ready in {path}\n")
    return 0


def _cmd_data_fixtures(args: argparse.Namespace) -> int:
    import shlex

    from wemem.data.fixtures import describe, write_fixtures

    written = write_fixtures(args.dir, seed=args.seed, per_class=args.per_class, only=args.only)
    for name, path in written.items():
        marker = describe(path)
        rows, covered = marker["rows"], marker["coverage"]["complete"]
        sys.stdout.write(
            f"{name:<12} {path}  rows={rows['train_pool'] + rows['test_pool']} "
            f"(P={rows['train_pool']}, T={rows['test_pool']})  classes={marker['num_classes']}"
            f"{'' if covered else '  (too few rows: some split parts lack classes)'}\n"
        )
    root = shlex.quote(str(Path(args.dir).expanduser().resolve()))
    sys.stdout.write(
        "synthetic stand-ins, not the real datasets; to run on them:\n"
        f"  WEMEM_DATA={root} wemem reproduce --profile paper --smoke\n"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="wemem", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = p.add_subparsers(dest="command", required=True)

    _add_reproduce(sub)
    c = sub.add_parser("cache", help="check or clean the model cache")
    csub = c.add_subparsers(dest="cache_command", required=True)
    cv = csub.add_parser("verify", help="re-hash every entry; report corrupted or truncated ones")
    cv.add_argument("--dir", default=None, help="cache folder (default: as the runs use)")
    cv.add_argument("--fix", action="store_true", help="delete bad entries (they are recomputed)")
    cv.set_defaults(func=_cmd_cache_verify)
    cg = csub.add_parser("gc", help="remove entries no recorded run uses")
    cg.add_argument("--dir", default=None)
    cg.add_argument("--outputs", nargs="+", default=["outputs"], help="run folders to keep for")
    cg.add_argument("--dry-run", action="store_true", help="list, remove nothing")
    cg.add_argument("--drop-resume-points", action="store_true", help="also unfinished runs'")
    cg.add_argument("--all", action="store_true", help="allow emptying the cache")
    cg.set_defaults(func=_cmd_cache_gc)

    m = sub.add_parser("manifest", help="check params/manifest.yaml; print or write the README map")
    m.add_argument("--params", default="params")
    m.add_argument("--notebooks", default="notebooks")
    m.add_argument("--markdown", action="store_true", help="print the README map")
    m.add_argument("--write-readme", action="store_true", help="rewrite the README map")
    m.add_argument("--readme", default="README.md")
    m.add_argument(
        "--write-navigation",
        action="store_true",
        help="rewrite each notebook's navigation line (previous · overview · next) from the "
        "manifest's notebook order",
    )
    m.add_argument(
        "--refresh-minutes",
        action="store_true",
        help="rewrite run minutes: measured batches in --outputs, else the cost model",
    )
    m.add_argument("--outputs", default="outputs")
    m.set_defaults(func=_cmd_manifest)

    _add_data(sub)
    return p


def _add_reproduce(sub) -> None:
    """``wemem reproduce``."""
    r = sub.add_parser("reproduce", help="run the notebooks of a profile with papermill")
    r.add_argument("--profile", default="cpu", help="cpu (default), tiny, paper or params/<name>/")
    r.add_argument(
        "--only",
        default=None,
        help="globs on notebook names ('02_*') or run ids ('06_*.cifar10_*'), comma-separated",
    )
    r.add_argument("--outputs", default="outputs", help="output folder (default: outputs)")
    r.add_argument("--notebooks", default="notebooks")
    r.add_argument("--params", default="params")
    r.add_argument("--kernel", default="python3", help="Jupyter kernel name")
    r.add_argument("--force", action="store_true", help="rerun runs that are unchanged")
    r.add_argument(
        "--jobs",
        type=_jobs,
        default=1,
        help="runs in flight at once, in dependency order (default 1; `make reproduce`: 2)",
    )
    r.add_argument(
        "--keep-going",
        action="store_true",
        help="after a failed run, still run every run that does not need it; list all failures",
    )
    r.add_argument("--wait", action="store_true", help="wait while another batch uses --outputs")
    r.add_argument(
        "--smoke",
        action="store_true",
        help="every run of the profile with only its sizes shrunk (params/smoke.yaml), written "
        "under <outputs>/smoke/; not results (paper: set WEMEM_DATA to `wemem data fixtures DIR`)",
    )
    r.add_argument(
        "--executor",
        default="local",
        choices=("local", "pool", "ray"),
        help="where independent trainings run (pool: worker processes on this machine, "
        "WEMEM_POOL_WORKERS; ray: pip install 'wemem[cluster]')",
    )
    r.add_argument("--ray-address", default=None, help="existing Ray cluster (default: local)")
    r.add_argument(
        "--dry-run",
        action="store_true",
        help="print the runs, models, epochs and estimated time per device class; run nothing",
    )
    r.add_argument(
        "--json",
        action="store_true",
        help="with --dry-run: print the resolved plan (every run's attacks and defense settings, "
        "defaults filled in) as one JSON document instead of the cost table",
    )
    r.set_defaults(func=_cmd_reproduce)


def _add_data(sub) -> None:
    """``wemem data list|fetch|fixtures``."""
    d = sub.add_parser("data", help="list, fetch or write stand-ins of datasets")
    dsub = d.add_subparsers(dest="data_command", required=True)
    dl = dsub.add_parser("list", help="where each dataset is looked for, and whether it is there")
    dl.add_argument("--root", default=None)
    dl.set_defaults(func=_cmd_data_list)
    df = dsub.add_parser("fetch", help="download a paper dataset (network needed)")
    df.add_argument("name")
    df.add_argument("--root", default=None)
    df.set_defaults(func=_cmd_data_fetch)
    dx = dsub.add_parser(
        "fixtures",
        help="write small synthetic stand-ins of the six paper datasets in their real file "
        "formats (offline; for smoke tests, never for results)",
    )
    dx.add_argument("dir", help="data root to write <name>/ folders into (use as WEMEM_DATA)")
    dx.add_argument("--seed", type=int, default=0, help="same seed, byte-identical files")
    dx.add_argument(
        "--per-class", type=int, default=None, help="rows per class (default: per dataset)"
    )
    dx.add_argument("--only", nargs="+", default=None, metavar="NAME", help="datasets to write")
    dx.set_defaults(func=_cmd_data_fixtures)


def _one_line(text: object) -> str:
    """A message of several lines (e.g. every bad params file) as one: lines joined by ``; ``."""
    out = ""
    for line in (part.strip() for part in str(text).splitlines() if part.strip()):
        out += ("" if not out else " " if out.endswith(":") else "; ") + line
    return out


def _fail(message: str, code: int = EXIT_USER) -> int:
    """Print ``message`` as one line on stderr (the traceback only in the ``-v`` log)."""
    logging.getLogger("wemem").info("details of the error below:", exc_info=True)
    sys.stderr.write(f"wemem: {message}\n")
    return code


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help (0), a bad argument (2: one line, _Parser.error)
        return e.code if isinstance(e.code, int) else EXIT_USER
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except WememError as e:
        return _fail(f"error: {_one_line(e)}")
    except KeyboardInterrupt:
        return _fail("interrupted: the unfinished run was discarded", EXIT_INTERRUPTED)
    except OSError as e:  # the environment's (a full disk, a folder made read-only mid-batch)
        where = f": {e.filename}" if e.filename else ""
        return _fail(f"error: {_one_line(e.strerror or e)}{where}")
    except Exception as e:
        # A notebook that stopped on a user-caused error (e.g. a dataset removed mid-batch).
        if type(e).__name__ == "PapermillExecutionError" and e.ename in USER_ERRORS:
            return _fail(f"error: {e.ename}: {_one_line(e.evalue)}")
        raise


if __name__ == "__main__":
    raise SystemExit(main())
