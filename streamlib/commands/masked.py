"""``python -m streamlib masked {train,export,generate}``: the offline ceiling, a StemGen-style masked
model with classifier-free guidance (chapter 12).

Examples::

    python -m streamlib masked train --tokens data/tokens/book --out runs/masked --steps 2000 --threads 1
    python -m streamlib masked train --tokens data/tokens/book --out runs/masked --max-minutes 60   # resumes
    python -m streamlib masked export --state runs/masked/train_state.pt --out checkpoints/models/book_masked.safetensors
    python -m streamlib masked generate --input song.wav --category Bass --out bass.wav --cfg-scale 2

Running the same ``train`` command again resumes from ``OUT/train_state.pt``.
"""

from __future__ import annotations

import argparse

from streamlib.cli import number


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole numbers separated by commas (e.g. 16,8,4,4), got {text!r}") from None


def _float_list(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas (e.g. 8,8,4,4), got {text!r}") from None


def _command_line() -> str:
    import shlex
    import sys

    return " ".join(shlex.quote(a) for a in ["python", "-m", "streamlib"] + sys.argv[1:])


def _train(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from streamlib.masked_train import MaskedRun, export_masked, train_masked
    from streamlib.model.masked import masked_preset
    from streamlib.paths import check_output_dir, check_output_file, data_dir

    check_output_dir(args.out)
    if args.export:
        check_output_file(args.export, "--export")
    torch.set_num_threads(args.threads)
    preset = masked_preset(args.preset)
    if args.batch_size:
        preset = dataclasses.replace(preset, train=dataclasses.replace(preset.train, batch_size=args.batch_size))
    run = MaskedRun(tokens=args.tokens or str(data_dir() / "tokens" / "book"), out=args.out, steps=args.steps,
                    seed=args.seed, policy=args.policy, val_every=args.val_every, val_windows=args.val_windows,
                    save_every_s=args.save_every, max_minutes=args.max_minutes)
    codec = None
    if args.codec:
        from streamlib.codec import load_codec

        codec = load_codec(args.codec)
    try:
        result = train_masked(run, preset, codec=codec, device=args.device, command=_command_line())
    except KeyboardInterrupt:
        import sys

        print(f"stopped: the state is saved in {args.out}/train_state.pt; run the same command to resume",
              file=sys.stderr)
        return 130
    print(f"{result['step']}/{result['total']} steps, {result['wall_seconds'] / 60:.1f} min; "
          f"validation loss {result['val_loss']}")
    if args.export and result["step"] >= result["total"]:
        card = export_masked(f"{args.out}/train_state.pt", args.export)
        print(f"wrote {args.export}: validation loss {card['val_loss']}, generation {card['generation']}")
    return 0


def _export(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import torch

    from streamlib.config import ConfigError
    from streamlib.masked_train import export_masked
    from streamlib.paths import check_output_file

    check_output_file(args.out, "--out")
    torch.set_num_threads(args.threads)
    if args.fixture and not Path(args.fixture).exists():
        raise ConfigError(f"--fixture {args.fixture} does not exist (committed windows: tests/fixtures/*.npz)")
    card = export_masked(args.state, args.out, half=args.half, timing=not args.no_timing, fixture=args.fixture)
    print(json.dumps({k: card[k] for k in ("steps", "wall_seconds", "val_loss", "val_loss_by_level", "fp16_check",
                                           "generation", "weights_dtype", "fixture") if k in card}, indent=1))
    return 0


def _generate(args: argparse.Namespace) -> int:
    import time

    import torch

    from streamlib.audio import load_audio, save_audio
    from streamlib.codec import codec_for
    from streamlib.model.masked import generate_masked, load_masked
    from streamlib.paths import check_output_file
    from streamlib.tokens.categories import category_id

    check_output_file(args.out, "--out")
    torch.set_num_threads(args.threads)
    model = load_masked(args.model)
    codec = codec_for(model, args.codec)  # checked against the model's codebooks
    category = category_id(args.category)
    audio, sr = load_audio(args.input, codec.sample_rate, duration=args.seconds)
    codes = codec.encode(torch.from_numpy(audio)[None, None], n_q=model.n_q)[0]
    started = time.perf_counter()
    out = generate_masked(model, codes, category, steps=args.steps, temperatures=args.temperatures,
                          cfg_scale=args.cfg_scale, seed=args.seed, progress=True)
    seconds = time.perf_counter() - started
    stem = codec.decode(out[None]).reshape(-1).cpu().numpy()[: len(audio)]
    save_audio(args.out, stem, sr)
    if args.mix:
        check_output_file(args.mix, "--mix")
        n = min(len(stem), len(audio))
        save_audio(args.mix, 0.5 * (stem[:n] + audio[:n]), sr)
    clip = len(audio) / sr
    print(f"wrote {args.out}: {clip:.1f} s of {args.category} in {seconds:.1f} s "
          f"({clip / seconds:.2f}x real time, {torch.get_num_threads()} thread(s))")
    return 0


def register(sub) -> None:
    p = sub.add_parser("masked", help="the offline ceiling: a StemGen-style masked model (train, export, generate; chapter 12)")
    jobs = p.add_subparsers(dest="job", metavar="JOB", required=True)

    t = jobs.add_parser("train", help="train or resume the masked model on a token cache")
    t.add_argument("--preset", default="book", help="book (CPU), paper (GPU), debug")
    t.add_argument("--tokens", help="token cache (default: data/tokens/book)")
    t.add_argument("--out", required=True, help="run folder: train_state.pt and log.csv; resumes if present")
    t.add_argument("--steps", type=number(int, minimum=1), help="total steps (default: the preset's)")
    t.add_argument("--batch-size", type=number(int, minimum=1), help="batch (default: the preset's)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--policy", choices=["paper", "public", "both"], default="paper", help="input mixtures")
    t.add_argument("--val-every", type=number(int, minimum=1), default=100)
    t.add_argument("--val-windows", type=number(int, minimum=1), default=16)
    t.add_argument("--save-every", type=number(float, above=0), default=120.0, help="seconds between checkpoints")
    t.add_argument("--max-minutes", type=number(float, above=0), help="stop (and checkpoint) after this long; run again to resume")
    t.add_argument("--threads", type=number(int, minimum=1), default=1, help="torch threads")
    t.add_argument("--device", help="cuda / mps / cpu (default: the best available)")
    t.add_argument("--codec", help="codec checkpoint that made --tokens (default: the shipped book codec)")
    t.add_argument("--export", help="when finished, write this .safetensors + card (e.g. checkpoints/models/book_masked.safetensors)")
    t.set_defaults(func=_train)

    e = jobs.add_parser("export", help="ship a trained masked model: safetensors + card")
    e.add_argument("--state", required=True, help="the run's train_state.pt")
    e.add_argument("--out", required=True, help="e.g. checkpoints/models/book_masked.safetensors")
    e.add_argument("--half", choices=["auto", "yes", "no"], default="auto",
                   help="fp16 weights: auto = when the validation loss moves by < 1e-3 nats")
    e.add_argument("--no-timing", action="store_true", help="skip timing one generated window for the card")
    e.add_argument("--fixture", help="committed windows of the same codec's tokens to score for the card, e.g. "
                                     "tests/fixtures/model_val_windows_v2.npz (a test re-scores them)")
    e.add_argument("--threads", type=number(int, minimum=1), default=1, help="torch threads")
    e.set_defaults(func=_export)

    g = jobs.add_parser("generate", help="accompany a whole audio file offline (not real time)")
    g.add_argument("--model", help="masked checkpoint (default: checkpoints/models/book_masked.safetensors)")
    g.add_argument("--codec", help="codec checkpoint (default: the one the model's card names)")
    g.add_argument("--input", required=True, help="audio file to accompany")
    g.add_argument("--category", required=True, help="instrument category to play, e.g. Bass, Piano, Guitar")
    g.add_argument("--out", required=True, help="the generated stem (.wav)")
    g.add_argument("--mix", help="also write input + stem here (.wav)")
    g.add_argument("--seconds", type=number(float, above=0), default=10.0, help="read this much of the input")
    g.add_argument("--steps", type=_int_list, help="iterations per level, e.g. 16,8,4,4 (default: the model's)")
    g.add_argument("--temperatures", type=_float_list, help="noise temperature per level, e.g. 8,8,4,4 (default: the model's)")
    g.add_argument("--cfg-scale", type=number(float, minimum=0), help="guidance scale (default: the model's, 2.0; 1 = none)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--threads", type=number(int, minimum=1), default=1, help="torch threads")
    g.set_defaults(func=_generate)
