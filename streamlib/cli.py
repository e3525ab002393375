"""``python -m streamlib``: one entry point for every job of the book.

Each subcommand lives in its own module under ``streamlib/commands/`` with a
``register(subparsers)`` function that adds its parser and sets ``func``; ``--help`` lists the
subcommands that exist.

Errors of ours -- bad options, unusable files, anything raised as one of streamlib's own exception
classes -- are one line on stderr (``error: ...``) and exit code 2, never a traceback. The option
types below, and ``streamlib.paths.check_output_dir`` / ``check_output_file``, let a subcommand refuse
bad input before any long work.
"""

from __future__ import annotations

import argparse
import importlib
import math
import pkgutil
import sys
from typing import Callable, NoReturn

from streamlib import commands


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``error: MESSAGE (see PROG --help)``, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def number(kind: type[int] | type[float] = float, *, minimum: float = -math.inf,
           above: float = -math.inf) -> Callable[[str], int | float]:
    """An argparse ``type``: a finite ``kind`` that is ``>= minimum`` and ``> above``."""
    noun = "a whole number" if kind is int else "a number"

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum:g}, got {text}")
        if value <= above:
            raise argparse.ArgumentTypeError(f"must be more than {above:g}, got {text}")
        return value

    return parse


def target_category(text: str) -> int:
    """argparse type: a category name that may be generated (``Bass``, ``synth lead``) -> its id."""
    from streamlib.tokens.categories import CATEGORIES, TokenError, category_id, is_target_category

    try:
        cat = category_id(text)
    except TokenError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if not is_target_category(cat):
        raise argparse.ArgumentTypeError(f"{CATEGORIES[cat]} is never a target (only inputs)")
    return cat


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="python -m streamlib",
        description="Streaming generation for music accompaniment: data, codec, model, streaming, evaluation.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"streamlib.commands.{info.name}")
        module.register(sub)
    return parser


# Options whose value may start with "-" and is not a plain number ("--tf -1s", "--tf -200ms"): argparse would
# take such a value for an option of its own, so it is attached with "=" before parsing.
SIGNED_VALUE_OPTIONS = ("--tf",)


def attach_signed_values(argv: list[str]) -> list[str]:
    """``["--tf", "-1s"]`` -> ``["--tf=-1s"]`` for the options of ``SIGNED_VALUE_OPTIONS``; the rest as given."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        value = argv[i + 1] if i + 1 < len(argv) else ""
        if argv[i] in SIGNED_VALUE_OPTIONS and value[:1] == "-" and (value[1:2].isdigit() or value[1:2] == "."):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def is_ours(error: BaseException) -> bool:
    """Errors reported in one line: streamlib's own exception classes (raised on purpose, with a message
    that says what is wrong) and file-system errors (a path the user gave). Anything else is a bug and
    keeps its traceback."""
    return isinstance(error, OSError) or any(c.__module__.split(".")[0] == "streamlib" for c in type(error).__mro__)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(attach_signed_values(sys.argv[1:] if argv is None else list(argv)))
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except Exception as error:
        if not is_ours(error):
            raise
        print("error:", " ".join(str(error).split()), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
