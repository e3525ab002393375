"""``python -m streamlib demo``: stream the bundled example clip through a shipped checkpoint (chapter 8).

The clip's first stem is held out: the others are mixed as the input stream, the model plays the
held-out stem's instrument, and the A.9 mix puts the accompaniment over the input stems.
"""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    from streamlib.commands.stream import print_report, stream_kwargs
    from streamlib.paths import check_output_dir
    from streamlib.stream import demo_stream

    check_output_dir(args.out)
    result, paths = demo_stream(args.example, checkpoint=args.checkpoint, target=args.target, out=args.out,
                                codec_path=args.codec, category=args.category, threads=args.threads,
                                **stream_kwargs(args))
    print(f"{result.info['example']}: input = {result.info['input_stems']}, generated "
          f"{result.info['category_name']} with {result.info['checkpoint']}")
    print_report(result, paths)
    print(demo_verdict(result))
    return 0


def demo_verdict(result) -> str:
    """The one-line play-along verdict of a ``demo_stream`` result (``streamlib.playalong.verdict_line``)."""
    from streamlib.data.examples import load_example
    from streamlib.playalong import stem_report, verdict_line

    clip = load_example(result.info["example"])
    truth = clip.stems[result.info["target_stem"]]
    n = min(len(truth), len(result.accompaniment))
    report = stem_report(result.accompaniment[:n], truth[:n], clip.sample_rate, chords=clip.info.get("chords"),
                         beats=clip.info.get("beats"))
    return verdict_line(report, f"the generated {result.info['category_name']}")


def register(sub) -> None:
    from streamlib.commands.stream import add_stream_arguments

    p = sub.add_parser("demo", help="stream the bundled example clip through a shipped checkpoint")
    p.add_argument("--example", default="test_clip", help="a clip folder in data/examples (default test_clip)")
    p.add_argument("--checkpoint", default=None,
                   help="accompanist checkpoint (default: the shipped streaming model with the smallest lead)")
    p.add_argument("--target", default=None, help="stem to hold out and regenerate (default: the first non-drum stem)")
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    add_stream_arguments(p)
    p.set_defaults(func=_run)
