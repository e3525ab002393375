"""``python -m streamlib doctor``: versions, threads, bf16, device, free disk and a short speed check that
predicts whether chapter 8's streaming and ``jam`` keep real time here (``streamlib.doctor``)."""

from __future__ import annotations

import argparse
import json


def register(sub) -> None:
    from streamlib.cli import number

    p = sub.add_parser("doctor", help="check this machine: versions, threads, bf16, disk, real-time speed")
    p.add_argument("--seconds", type=number(minimum=0), default=2.0,
                   help="streamed seconds per path in the speed check (default 2, about 10 s in all; 0 skips it)")
    p.add_argument("--threads", type=number(int, minimum=1), default=1, help="torch threads for the speed check")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from streamlib.doctor import format_report, report

    rep = report(args.seconds, args.threads)
    print(json.dumps(rep, indent=2) if args.json else format_report(rep))
    return 0
