"""Command line: ``wemem reproduce`` runs the notebooks, ``wemem data`` manages datasets.

A user-caused error (bad parameters, a missing dataset) prints one line and exits with status 2;
nothing is written under ``outputs/`` in that case.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from wemem.errors import WememError

#: Exception names that, raised inside a notebook, are the user's to fix (exit 2, one line).
USER_ERRORS = {"WememError", "ParamsError", "DatasetMissingError", "DataFormatError"}


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from wemem import runner

    results = runner.reproduce(
        args.profile,
        only=args.only,
        outputs_root=Path(args.outputs),
        notebooks_dir=Path(args.notebooks),
        params_dir=Path(args.params),
        kernel_name=args.kernel,
    )
    total = sum(r["seconds"] for r in results)
    for r in results:
        logging.getLogger("wemem").info("%s [%s]: %.1f s", r["stem"], r["run_name"], r["seconds"])
    sys.stdout.write(
        f"ran {len(results)} notebook(s) for profile {args.profile} in {total:.0f} s; "
        f"reports: {Path(args.outputs) / 'reports' / 'index.html'}\n"
    )
    return 0


def _cmd_data_list(args: argparse.Namespace) -> int:
    from wemem.data import DATASETS, data_root, is_available

    root = Path(args.root) if args.root else data_root()
    sys.stdout.write(f"data root: {root} (set WEMEM_DATA to change)\n")
    for name, info in DATASETS.items():
        where = "ships offline" if info.offline else str(root / name)
        state = "ok" if is_available(name, root) else "missing"
        sys.stdout.write(
            f"  {name:<12} {info.kind:<8} C={info.num_classes:<4} {state:<8} {where}\n"
        )
    return 0


def _cmd_data_fetch(args: argparse.Namespace) -> int:
    from wemem.data import fetch

    path = fetch(args.name, root=Path(args.root) if args.root else None)
    sys.stdout.write(f"{args.name}: ready in {path}\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wemem", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("reproduce", help="run the notebooks of a profile with papermill")
    r.add_argument("--profile", default="cpu", help="cpu (default), tiny or paper")
    r.add_argument("--only", default=None, help="glob on notebook names, e.g. '02_*'")
    r.add_argument("--outputs", default="outputs", help="output folder (default: outputs)")
    r.add_argument("--notebooks", default="notebooks")
    r.add_argument("--params", default="params")
    r.add_argument("--kernel", default="python3", help="Jupyter kernel name")
    r.set_defaults(func=_cmd_reproduce)

    d = sub.add_parser("data", help="list or fetch datasets")
    dsub = d.add_subparsers(dest="data_command", required=True)
    dl = dsub.add_parser("list", help="where each dataset is looked for, and whether it is there")
    dl.add_argument("--root", default=None)
    dl.set_defaults(func=_cmd_data_list)
    df = dsub.add_parser("fetch", help="download a paper dataset (network needed)")
    df.add_argument("name")
    df.add_argument("--root", default=None)
    df.set_defaults(func=_cmd_data_fetch)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except WememError as e:
        sys.stderr.write(f"wemem: error: {e}\n")
        return 2
    except Exception as e:
        # A notebook that stopped on a user-caused error (e.g. a dataset removed mid-batch).
        if type(e).__name__ == "PapermillExecutionError" and e.ename in USER_ERRORS:
            sys.stderr.write(f"wemem: error: {e.ename}: {e.evalue}\n")
            return 2
        raise


if __name__ == "__main__":
    raise SystemExit(main())
