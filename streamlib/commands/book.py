"""``python -m streamlib book build``: execute the chapters and write the static HTML site (``streamlib.site``)."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    from streamlib.cli import number

    p = sub.add_parser("book", help="the rendered book: execute the chapters, write a static HTML site (offline)")
    what = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    b = what.add_parser("build", help="execute chapters (nbclient, per-cell timeout) and write the site")
    b.add_argument("--out", default="_site", help="site folder (default _site)")
    b.add_argument("--quick", action="store_true", help="execute in quick mode (STREAMLIB_QUICK=1)")
    b.add_argument("--chapters", nargs="+", metavar="NN", help="only these chapters, e.g. --chapters 01 04")
    b.add_argument("--timeout", type=number(int, minimum=1), default=900, help="seconds per cell (default 900)")
    b.add_argument("--executed", default=None, metavar="DIR",
                   help="also save the executed notebooks there, with PNG fallbacks of the figures (e.g. book/executed)")
    b.add_argument("--no-exercises", action="store_true", help="leave out the exercise notebooks")
    b.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import time

    from streamlib.paths import check_output_dir
    from streamlib.site import build

    out = check_output_dir(args.out)
    if args.executed:
        check_output_dir(args.executed, "--executed")
    start = time.perf_counter()
    builds = build(out, selected=args.chapters, quick=args.quick, timeout=args.timeout, executed_dir=args.executed,
                   exercises=not args.no_exercises)
    print(f"built {len(builds)} pages in {time.perf_counter() - start:.0f} s ({'quick' if args.quick else 'full'} "
          f"mode): open {out / 'index.html'}")
    return 0
