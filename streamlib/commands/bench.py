"""``python -m streamlib bench WHAT``: benchmarks that print ratios measured side by side in one run.

Each benchmark is a module ``streamlib/bench/WHAT.py`` with ``add_arguments(parser)`` (optional)
and ``run(args) -> int``.
"""

from __future__ import annotations

import importlib
import pkgutil


def register(sub) -> None:
    from streamlib import bench

    p = sub.add_parser("bench", help="benchmarks: data, codec, model, stream (side-by-side ratios, one run)")
    what = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    for info in sorted(pkgutil.iter_modules(bench.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"streamlib.bench.{info.name}")
        q = what.add_parser(info.name, help=(module.__doc__ or "").strip().splitlines()[0])
        if hasattr(module, "add_arguments"):
            module.add_arguments(q)
        q.set_defaults(func=module.run)
