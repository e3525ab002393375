"""``python -m streamlib listening {prepare,analyse}``: a blind pairwise listening study of the shipped systems
(paper A.8; chapter 11).

Examples::

    python -m streamlib listening prepare --out study --clips 6 --participants 24
    python -m streamlib listening prepare --out study --only "masked|tf\\+0_k1|tf\\+50|tf-50"   # some systems
    python -m streamlib listening analyse --study study responses_*.csv

``prepare`` runs every chosen system on the same held-out clips, adds the ground truth and the random-pairing
floor, mixes each with its clip's input (A.9), and writes one blind page per participant
(``participant_NN.html``, audio named only A and B) and the key (``key.csv``: keep it from participants).
``analyse`` joins the answers the pages saved with the key: Kruskal-Wallis, then Wilcoxon signed-rank per pair
with a Bonferroni threshold (the paper's Table 1).
"""

from __future__ import annotations

from streamlib.cli import number


def _prepare(args) -> int:
    import torch

    from streamlib.listening_audio import prepare_study

    torch.set_num_threads(args.threads)
    paths = prepare_study(args.out, clips=args.clips, seconds=args.seconds, participants=args.participants,
                          repeats=args.repeats, seed=args.seed, only=args.only, checkpoints=args.checkpoints)
    pages = [p for name, p in paths.items() if name.startswith("participant_")]
    print(f"{len(pages)} participant pages in {args.out}; the key (keep it hidden): {paths['key']}")
    return 0


def _analyse(args) -> int:
    from streamlib.listening import analyse_study

    result = analyse_study(args.study, args.answers, alpha=args.alpha)
    print(f"Kruskal-Wallis H = {result.kruskal_h:.2f}, p = {result.kruskal_p:.3g}; "
          f"pairs significant below p = {result.alpha:.4g} (Bonferroni)")
    for s in result.ranked():
        print(f"  {s:24s} mean preference {result.mean_preference[s]:.3f}")
    print(result.format_table())
    return 0


def register(sub) -> None:
    from streamlib.commands.sweep import _pattern

    p = sub.add_parser("listening", help="a blind pairwise listening study of the shipped systems (prepare, analyse; "
                                         "chapter 11)")
    jobs = p.add_subparsers(dest="job", metavar="JOB", required=True)
    prep = jobs.add_parser("prepare", help="render every system on held-out clips; blind pages + hidden key")
    prep.add_argument("--out", required=True, help="study folder (pages, audio, key.csv, sources/)")
    prep.add_argument("--clips", type=number(int, minimum=2), default=6, help="held-out clips (default 6)")
    prep.add_argument("--seconds", type=number(above=0), default=10.0, help="seconds per clip (default 10)")
    prep.add_argument("--participants", type=number(int, minimum=1), default=24)
    prep.add_argument("--repeats", type=number(int, minimum=1), default=1, help="times each pair is heard")
    prep.add_argument("--only", type=_pattern, default=None, help="regular expression on checkpoint names to keep")
    prep.add_argument("--checkpoints", default=None, help="folder of checkpoints (default: shipped)")
    prep.add_argument("--seed", type=int, default=0)
    prep.add_argument("--threads", type=number(int, minimum=1), default=1)
    prep.set_defaults(func=_prepare)
    ana = jobs.add_parser("analyse", help="Kruskal-Wallis + Wilcoxon (Bonferroni) on the saved answers")
    ana.add_argument("--study", required=True, help="the folder prepare wrote (its key.csv)")
    ana.add_argument("answers", nargs="+", help="responses_NN.csv files the participant pages saved")
    ana.add_argument("--alpha", type=number(above=0), default=0.05)
    ana.set_defaults(func=_analyse)
