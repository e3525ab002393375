"""``python -m streamlib tokenize --dataset DIR --out DIR``: encode stems and sampled mixtures once (chapter 3).

The cache layout is described in ``streamlib.codec.tokenize``; finished tracks are skipped, so an
interrupted run resumes.
"""

from __future__ import annotations

import argparse

from streamlib.cli import number


def _run(args: argparse.Namespace) -> int:
    import json

    import torch

    from streamlib.codec import load_codec
    from streamlib.codec.tokenize import SPLITS, tokenize_dataset
    from streamlib.paths import check_output_dir

    check_output_dir(args.out)
    torch.set_num_threads(args.threads)
    codec = load_codec(args.codec, device=args.device)
    meta = tokenize_dataset(args.dataset, args.out, codec, seed=args.seed, paper_mixes=args.paper_mixes,
                            splits=tuple(args.splits or SPLITS), max_tracks=args.max_tracks,
                            workers=args.workers, codec_path=args.codec)
    print(json.dumps(meta, indent=1))
    return 0


def register(sub) -> None:
    p = sub.add_parser("tokenize", help="encode a Slakh-layout data set into a token cache (chapter 3)")
    p.add_argument("--dataset", required=True, help="Slakh-layout folder with train/validation/test")
    p.add_argument("--out", required=True, help="cache folder (e.g. data/tokens/book)")
    p.add_argument("--codec", help="codec checkpoint (default: checkpoints/codec/book.safetensors)")
    p.add_argument("--seed", type=int, default=0, help="seed of the mixture draws")
    p.add_argument("--paper-mixes", type=number(int, minimum=0), default=2,
                   help="paper-policy mixtures per target stem")
    p.add_argument("--splits", nargs="+", choices=["train", "validation", "test"])
    p.add_argument("--max-tracks", type=number(int, minimum=1), help="only the first N tracks (for a quick look)")
    p.add_argument("--threads", type=number(int, minimum=1), default=1)
    p.add_argument("--workers", type=number(int, minimum=1), default=1,
                   help="processes (one thread each) encoding tracks in parallel")
    p.add_argument("--device")
    p.set_defaults(func=_run)
