"""``python -m streamlib data synth|examples|info``: make the synthesised set and example clips, describe a set.

Chapter 2 (Multitrack data) runs both.
"""

from __future__ import annotations


def register(sub) -> None:
    from streamlib.cli import number
    from streamlib.data.compose import FORM, MIN_PHRASES, longest_song_seconds, shortest_song_seconds
    from streamlib.data.synth import TAIL_SECONDS

    shortest, longest = shortest_song_seconds() + TAIL_SECONDS, longest_song_seconds() + TAIL_SECONDS
    phrases = shortest_song_seconds() / MIN_PHRASES, longest_song_seconds() / len(FORM)  # a 4-bar phrase: s
    p = sub.add_parser("data", help="multitrack data: synthesise a Slakh-format set, describe a data set")
    what = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    s = what.add_parser("synth", help="write a synthesised data set in the Slakh2100 layout (resumable)")
    s.add_argument("--tracks", type=number(int, minimum=1), default=240,
                   help="number of tracks (default 240: the book's set)")
    s.add_argument("--out", required=True, help="output folder (split folders train/validation/test inside)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--sample-rate", type=int, default=16_000, help="16000 (the book codec) or 44100 (Slakh)")
    s.add_argument("--min-seconds", type=number(above=0), default=30.0,
                   help=f"shortest track length in seconds, release tail included (default 30; at most {longest:.1f}). "
                        f"Songs are whole 4-bar phrases of {phrases[0]:g}-{phrases[1]:.1f} s: a range "
                        f"narrower than a phrase gives some shorter tracks")
    s.add_argument("--max-seconds", type=number(above=0), default=60.0,
                   help=f"longest track length in seconds, release tail included (default 60; at least {shortest:g}: "
                        f"two 4-bar phrases at the fastest tempo); always honoured")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_synth)

    e = what.add_parser("examples", help="remake the short clips in data/examples from the book set's test split")
    e.add_argument("--out", default=None, help="folder (default: data/examples)")
    e.set_defaults(func=_examples)

    i = what.add_parser("info", help="count tracks, stems, hours and categories of a Slakh-format folder")
    i.add_argument("root", help="a Slakh2100 / babyslakh / synthesised folder")
    i.add_argument("--split", default=None, help="train, validation, test (default: all)")
    i.set_defaults(func=_info)


def _synth(args) -> int:
    from streamlib.data.synth import Recipe, synthesize
    from streamlib.paths import check_output_dir

    check_output_dir(args.out)
    recipe = Recipe(tracks=args.tracks, seed=args.seed, sample_rate=args.sample_rate,
                    min_seconds=args.min_seconds, max_seconds=args.max_seconds)
    r = synthesize(args.out, recipe, progress=not args.quiet)
    speed = f", {r['x_real_time']:.0f}x real time" if r["x_real_time"] else ""
    print(f"{args.out}: {sum(r['splits'].values())} tracks {r['splits']}, {r['hours']:.2f} h of audio; "
          f"made {r['made']}, skipped {r['skipped']} in {r['wall_seconds']:.1f} s{speed}")
    return 0


def _examples(args) -> int:
    from streamlib.data.examples import EXAMPLES_DIR, make_examples
    from streamlib.paths import check_output_dir

    out = check_output_dir(args.out or EXAMPLES_DIR)
    for name in make_examples(out):
        size = sum(f.stat().st_size for f in (out / name).rglob("*") if f.is_file())
        print(f"{out / name}: {size / 1e6:.2f} MB")
    return 0


def _info(args) -> int:
    from streamlib.data.slakh import SlakhDataset

    ds = SlakhDataset(args.root, split=args.split)
    print(ds.describe())
    return 0
