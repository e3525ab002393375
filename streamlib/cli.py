"""``python -m streamlib``: one entry point for every job of the book.

Each subcommand lives in its own module under ``streamlib/commands/`` with a
``register(subparsers)`` function that adds its parser and sets ``func``; ``--help`` lists the
subcommands that exist.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from streamlib import commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m streamlib",
        description="Streaming generation for music accompaniment: data, codec, model, streaming, evaluation.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"streamlib.commands.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
