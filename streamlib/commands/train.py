"""``python -m streamlib train``: train (or resume) an accompanist and optionally ship it (chapter 7).

Examples::

    python -m streamlib train --tf -1s --k 20ms --tokens data/tokens/book --out runs/tf-50_k1 --steps 1000
    python -m streamlib train --offline --tokens data/tokens/book --out runs/offline
    python -m streamlib train --tf 0 --k 0.1 --out runs/x --export checkpoints/models/book_tf+0_k5.safetensors
    torchrun --nproc_per_node 2 -m streamlib train --preset paper --tf 0 --k 0.02 --tokens /data/tokens --out runs/p

t_f and k take seconds (``-1``, ``0.2``), or unit strings (``-1s``, ``200ms``, ``10f``).
Running the same command again resumes from ``OUT/train_state.pt``.
"""

from __future__ import annotations

import argparse

from streamlib.cli import number, target_category


def _run(args: argparse.Namespace) -> int:
    import dataclasses
    import shlex
    import sys

    import torch

    from streamlib.config import get_preset, to_frames
    from streamlib.paths import check_output_dir, check_output_file, data_dir
    from streamlib.train import Run, export_model, train

    check_output_dir(args.out)
    if args.export:
        check_output_file(args.export, "--export")
    torch.set_num_threads(args.threads)
    preset = get_preset(args.preset)
    if args.batch_size:
        preset = preset.replace(train=dataclasses.replace(preset.train, batch_size=args.batch_size))
    if args.window_seconds:
        preset = preset.replace(train=dataclasses.replace(preset.train, window_seconds=args.window_seconds))
    run = Run(tokens=args.tokens or str(data_dir() / "tokens" / "book"), out=args.out,
              tf=to_frames(args.tf, name="tf"), k=to_frames(args.k, name="k"), offline=args.offline,
              steps=args.steps, seed=args.seed, policy=args.policy, val_every=args.val_every,
              save_every_s=args.save_every, max_minutes=args.max_minutes, init_from=args.init_from,
              history_noise=args.history_noise, contrast_weight=args.contrast_weight, input_dropout=args.input_dropout,
              null_input=args.null_input,
              contrast_margin=args.contrast_margin, input_chroma=args.input_chroma, present_input=args.present_input,
              history_noise_from=args.history_noise_from, own_history=args.own_history,
              all_chunks=args.all_chunks, targets=tuple(args.targets) if args.targets else None)
    command = " ".join(shlex.quote(a) for a in ["python", "-m", "streamlib"] + sys.argv[1:])
    codec = None
    if args.codec:
        from streamlib.codec import load_codec

        codec = load_codec(args.codec)  # e.g. a paper-preset codec whose tokens are in --tokens
    try:
        result = train(run, preset, codec=codec, device=args.device, command=command)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: train() saved the state on its way out
        print(f"stopped: the state is saved in {args.out}/train_state.pt; run the same command to resume",
              file=sys.stderr)
        return 130
    print(f"{result['step']}/{result['total']} steps, {result['wall_seconds'] / 60:.1f} min; "
          f"validation loss {result['val_loss']}")
    if args.export and result["step"] >= result["total"]:
        card = export_model(f"{args.out}/train_state.pt", args.export, fixture=args.fixture)
        print(f"wrote {args.export}: validation loss {card['val_loss']}, fixture {card['fixture']}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("train", help="train or resume an accompanist: k=1, k>1 prefix decoder, offline (chapter 7)")
    p.add_argument("--preset", default="book", help="book (CPU), paper (GPU), debug")
    p.add_argument("--tokens", help="token cache (default: data/tokens/book)")
    p.add_argument("--out", required=True, help="run folder: train_state.pt and log.csv; resumes if present")
    p.add_argument("--tf", default="0", help="future visibility: seconds or '-1s' / '200ms' / '10f'")
    p.add_argument("--k", default="1f", help="chunk: seconds or '20ms' / '5f' (default one frame)")
    p.add_argument("--offline", action="store_true", help="the offline prefix decoder baseline (ignores --tf, --k)")
    p.add_argument("--steps", type=number(int, minimum=1), help="total steps (default: the preset's)")
    p.add_argument("--batch-size", type=number(int, minimum=1), help="global batch (default: the preset's)")
    p.add_argument("--window-seconds", type=number(float, above=0),
                   help="training window (default: the preset's; shorter windows make cheap experiments)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--policy", choices=["paper", "public", "both"], default="paper", help="input mixtures")
    p.add_argument("--targets", type=target_category, nargs="+", metavar="CATEGORY",
                   help="train on targets of these categories only, e.g. Bass (a one-instrument accompanist; "
                        "default: every target category)")
    p.add_argument("--val-every", type=number(int, minimum=1), default=100)
    p.add_argument("--save-every", type=number(float, above=0), default=120.0, help="seconds between checkpoints")
    p.add_argument("--max-minutes", type=number(float, above=0),
                   help="stop (and checkpoint) after this long; run again to resume")
    p.add_argument("--threads", type=number(int, minimum=1), default=1, help="torch threads")
    p.add_argument("--device", help="cuda / mps / cpu (default: the best available)")
    p.add_argument("--codec", help="codec checkpoint that made --tokens (default: the shipped book codec, "
                                   "checked against the cache's hash)")
    p.add_argument("--init-from", help="start from a shipped model's weights with a fresh optimiser (train a "
                                       "shipped model longer: its training state is not shipped; or warm-start "
                                       "another t_f, or a k > 1 prefix decoder from a k = 1 model: same architecture "
                                       "required)")
    levers = p.add_argument_group("listening levers (docs/listening_experiments.md; 0 = the paper's recipe)")
    levers.add_argument("--history-noise", type=number(float, minimum=0.0), default=0.0,
                        help="share of teacher-forced output codes replaced by random codes, in [0, 1)")
    levers.add_argument("--history-noise-from", type=number(float, minimum=0.0), default=None,
                        help="a curriculum: the history-noise share starts here (1 = no usable history) and falls "
                             "linearly to --history-noise at half the steps")
    levers.add_argument("--own-history", type=number(float, minimum=0.0), default=0.0,
                        help="share of teacher-forced output codes replaced by the model's own samples (scheduled "
                             "sampling; one extra pass without gradients per step), in [0, 1]")
    levers.add_argument("--contrast-weight", type=number(float, minimum=0.0), default=0.0,
                        help="weight of a margin loss preferring the true input over another window's")
    levers.add_argument("--contrast-margin", type=number(float, minimum=0.0), default=0.1,
                        help="nats per token the true input should beat another window's by")
    levers.add_argument("--input-dropout", type=number(float, minimum=0.0), default=0.0,
                        help="share of windows trained without their input, in [0, 1): enables classifier-free "
                             "guidance at sampling (compare --play-along --guidance)")
    levers.add_argument("--null-input", choices=("pad", "zero"), default="pad",
                        help="what a window trained without its input reads: pad (default: the learned no-input "
                             "embedding, as before a song starts) or zero (no input term: the first recipe, which "
                             "stalls training from scratch)")
    levers.add_argument("--input-chroma", action="store_true",
                        help="a second input path: the input's causal chroma next to its codec codes (beyond the "
                             "paper; the token cache needs mix_chroma: re-run tokenize to add it)")
    levers.add_argument("--present-input", action="store_true",
                        help="t_f > 0: also read the input frame sounding with the prediction, not only the newest "
                             "one t_f ahead (beyond the paper)")
    levers.add_argument("--all-chunks", action="store_true",
                        help="k > 1: a loss on every chunk of each window in one pass over twice its length (the "
                             "paper trains one chunk per window: k of its positions); beyond the paper")
    p.add_argument("--export", help="when finished, write this .safetensors + card (e.g. checkpoints/models/...)")
    p.add_argument("--fixture", default="tests/fixtures/model_val_windows.npz",
                   help="validation windows the card's fixture loss is measured on (made if missing)")
    p.set_defaults(func=_run)
