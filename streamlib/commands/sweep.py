"""``python -m streamlib sweep``: regenerate the (t_f, k) trade-off table and figures (chapter 10).

Streams held-out clips of the book's synthesised test split through every shipped checkpoint
(``checkpoints/models/book_*.safetensors``, the offline prefix decoder included), scores them and
writes a tidy CSV (default ``results/sweep_book.csv``) and one HTML figure per metric::

    python -m streamlib sweep                       # the shipped grid, 8 clips of 10 s
    python -m streamlib sweep --quick               # 2 clips of 2 s (a smoke run)
    python -m streamlib sweep --clips 48 --per-song 2 --control   # the play-along bar: 48 clips, A.2 control
    python -m streamlib sweep --checkpoints runs/bass --targets Bass   # one-instrument models, bass clips only
    python -m streamlib sweep --dataset data/synth480 --temperature 0.5  # another set's test split, cooler sampling
    python -m streamlib sweep --checkpoints runs/bass --targets Bass --guidance 4 --control  # classifier-free guidance
"""

from __future__ import annotations

import argparse
import re

from streamlib.cli import number, target_category


def _pattern(text: str) -> str:
    """An argparse ``type``: a valid regular expression."""
    try:
        re.compile(text)
    except re.error as e:
        raise argparse.ArgumentTypeError(f"not a regular expression ({e})") from None
    return text


def _run(args) -> int:
    import torch

    from streamlib.config import quick_mode
    from streamlib.paths import check_output_file
    from streamlib.sweep import DEFAULT_CSV, sweep_command

    quick = args.quick or quick_mode()
    out = check_output_file(args.out or (DEFAULT_CSV.with_name("sweep_quick.csv") if quick else DEFAULT_CSV), "--out")
    torch.set_num_threads(args.threads)
    rows, figures = sweep_command(
        out, checkpoints=args.checkpoints, clips=args.clips or (2 if quick else 8),
        seconds=args.seconds or (2.0 if quick else 10.0), seed=args.seed, codec_path=args.codec,
        figures=not args.no_figures, only=args.only, control=args.control, per_song=args.per_song,
        targets=args.targets, dataset=args.dataset, temperature=args.temperature, guidance=args.guidance,
        progress_bars=not args.quiet,
    )
    print(f"{out}: {len(rows)} rows")
    for f in figures:
        print(f"  figure: {f}")
    if args.control:
        from streamlib.playalong import play_along_bar

        print("the play-along bar (chapter 10):")
        for c in play_along_bar(rows):
            mark = {True: "holds", False: "NOT MET", None: "n/a"}[c["holds"]]
            print(f"  {mark:8s} {c['check']}: {c['systems']} {c['numbers']}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("sweep", help="stream test clips through the (t_f, k) grid; tidy CSV + figures")
    p.add_argument("--checkpoints", default=None, help="folder with book_tf*_k*.safetensors (default: shipped)")
    p.add_argument("--only", type=_pattern, default=None, help="regular expression on checkpoint names to keep")
    p.add_argument("--clips", type=number(int, minimum=1), default=None, help="test clips (default 8; quick 2)")
    p.add_argument("--seconds", type=number(above=0), default=None,
                   help="evaluated seconds per clip (default 10; quick 2)")
    p.add_argument("--out", default=None, help="CSV path (default results/sweep_book.csv; quick: sweep_quick.csv)")
    p.add_argument("--quick", action="store_true", help="tiny smoke run (also STREAMLIB_QUICK=1)")
    p.add_argument("--no-figures", action="store_true", help="skip the HTML figures")
    p.add_argument("--control", action="store_true",
                   help="also stream every model with another song's input (paper A.2; kind random_input)")
    p.add_argument("--per-song", type=number(int, minimum=1), default=1,
                   help="clips drawn per test song at most (more clips than songs; intervals resample songs)")
    p.add_argument("--targets", type=target_category, nargs="+", metavar="CATEGORY", default=None,
                   help="draw only clips whose target is one of these categories (e.g. Bass), for accompanists "
                        "trained with train --targets")
    p.add_argument("--dataset", default=None,
                   help="Slakh-layout set whose test split the clips come from (default: the book set)")
    p.add_argument("--temperature", type=number(above=0), default=1.0,
                   help="sampling temperature of the models (default 1, the paper's; top-k 200 either way)")
    p.add_argument("--guidance", type=number(minimum=0.0), default=1.0,
                   help="classifier-free guidance scale of the autoregressive models (default 1: none; models trained "
                        "with train --input-dropout; doubles the decoder's work)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--codec", default=None, help="codec checkpoint (default: the one each model's card names)")
    p.add_argument("--threads", type=number(int, minimum=1), default=1)
    p.set_defaults(func=_run)
