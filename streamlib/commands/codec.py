"""``python -m streamlib codec {train,export,eval}``: train, ship and check the causal codec (chapter 3).

Examples::

    python -m streamlib codec train --preset book --data data/synth --out runs/codec-book
    python -m streamlib codec train --out runs/more --resume-from checkpoints/codec/book.train_state.pt --steps 40000
    python -m streamlib codec train --out runs/dec --init-from checkpoints/codec/book.safetensors \
        --train-option decoder_only=true --codec-option decoder_overlap=4   # a better decoder, the same codes
    python -m streamlib codec export --state runs/codec-book/train_state.pt --out checkpoints/codec/book.safetensors
    python -m streamlib codec eval --data data/synth
"""

from __future__ import annotations

import argparse
from pathlib import Path

from streamlib.cli import number


def _train(args: argparse.Namespace) -> int:
    import dataclasses
    import json
    import shlex
    import sys

    import torch

    from streamlib.codec.train import default_train_config, train_codec
    from streamlib.config import get_preset
    from streamlib.paths import check_output_dir

    check_output_dir(args.out)
    torch.set_num_threads(args.threads)
    codec_cfg = _with_options(get_preset(args.preset).codec, args.codec_option, "--codec-option")
    base = _with_options(default_train_config(codec_cfg, gan=args.preset == "paper"), args.train_option,
                         "--train-option")
    overrides = {k: v for k, v in {
        "steps": args.steps, "batch_size": args.batch_size, "excerpt_seconds": args.excerpt_seconds, "lr": args.lr,
        "warmup_steps": args.warmup_steps, "gan": args.gan, "bf16": args.bf16, "seed": args.seed,
        "save_every_seconds": args.save_every,
        "max_seconds": args.max_minutes * 60 if args.max_minutes else None,
    }.items() if v is not None}
    cfg = dataclasses.replace(base, **overrides)
    data = Path(args.data) if args.data else None
    if data is None:
        from streamlib.data import book_dataset

        data = book_dataset()
    recipe = data / "synth.json"
    extra = {
        "preset": args.preset,
        "command": " ".join(shlex.quote(a) for a in ["python", "-m", "streamlib"] + sys.argv[1:]),
        "data": json.loads(recipe.read_text()) if recipe.exists() else {"root": str(data)},
    }
    state = Path(args.out) / "train_state.pt"
    if args.resume_from and not state.exists():
        import shutil

        state.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(args.resume_from, state)  # e.g. checkpoints/codec/book.train_state.pt
    result = train_codec(codec_cfg, cfg, data, args.out, resume=not args.fresh, device=args.device, extra=extra,
                         init_from=args.init_from)
    print(f"codec: {result.step} steps, {result.wall_seconds / 60:.1f} min of training; state {result.state_path}")
    print({k: round(v, 4) for k, v in result.last.items()})
    return 0


def _with_options(config, options: list[str] | None, flag: str):
    """``config`` with ``KEY=VALUE`` overrides (VALUE read as JSON when it parses, else as text)."""
    import dataclasses
    import json

    from streamlib.config import ConfigError

    fields = {f.name for f in dataclasses.fields(config)}
    changes = {}
    for option in options or []:
        key, sep, raw = option.partition("=")
        if not sep or key not in fields:
            raise ConfigError(f"{flag} {option!r}: expected KEY=VALUE with KEY one of {sorted(fields)}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        changes[key] = tuple(value) if isinstance(value, list) else value
    return dataclasses.replace(config, **changes)


def _export(args: argparse.Namespace) -> int:
    import json

    from streamlib.codec.export import export_codec
    from streamlib.paths import check_output_file

    check_output_file(args.out, "--out")
    check_output_file(args.fixture, "--fixture")
    card = export_codec(args.state, args.out, args.data, half=args.half, fixture=args.fixture,
                        max_tracks=args.max_tracks, pitch_data=args.pitch_data)
    print(json.dumps({k: card[k] for k in ("steps", "wall_hours", "quality", "fp16_check", "weights_dtype", "pitch",
                                           "speed") if k in card}, indent=1))
    return 0


def _eval(args: argparse.Namespace) -> int:
    import json

    from streamlib.codec import load_codec
    from streamlib.codec.export import heldout_mixes, quality_report

    codec = load_codec(args.checkpoint)
    print(json.dumps(quality_report(codec, heldout_mixes(args.data, codec.sample_rate, max_tracks=args.max_tracks)),
                     indent=1))
    return 0


def _pitch(args: argparse.Namespace) -> int:
    import json

    import torch

    from streamlib.codec import CausalCodec, load_codec
    from streamlib.codec.pitch_eval import load_excerpts, pitch_fidelity
    from streamlib.paths import check_output_file

    if args.json:
        check_output_file(args.json, "--json")
    torch.set_num_threads(args.threads)
    if args.state:
        from streamlib.codec.train import model_from_state

        model, _ = model_from_state(args.state)
        codec = CausalCodec(model.cfg, model)
    else:
        codec = load_codec(args.checkpoint)
    report = pitch_fidelity(codec, load_excerpts(args.data, max_tracks=args.max_tracks), levels=tuple(args.levels))
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


def register(sub) -> None:
    p = sub.add_parser("codec", help="train, export and evaluate the causal codec (chapter 3)")
    what = p.add_subparsers(dest="codec_command", metavar="{train,export,eval,pitch}", required=True)

    t = what.add_parser("train", help="train or resume a codec (checkpoints atomically, logs a CSV)")
    t.add_argument("--preset", default="book", help="codec preset: book (CPU), paper (GPU, GAN on), debug")
    t.add_argument("--data", help="Slakh-layout folder (default: the book's synthesised set)")
    t.add_argument("--out", required=True, help="run folder: train_state.pt and log.csv")
    t.add_argument("--steps", type=number(int, minimum=1), help="total steps (a resumed run continues to this)")
    t.add_argument("--batch-size", type=number(int, minimum=1))
    t.add_argument("--excerpt-seconds", type=number(float, above=0))
    t.add_argument("--lr", type=number(float, above=0))
    t.add_argument("--warmup-steps", type=number(int, minimum=0))
    t.add_argument("--gan", action=argparse.BooleanOptionalAction, default=None,
                   help="adversarial + feature-matching losses (default: on for the paper preset only)")
    t.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None, help="bf16 autocast (default on)")
    t.add_argument("--seed", type=int)
    t.add_argument("--save-every", type=number(float, above=0), help="seconds between checkpoints")
    t.add_argument("--max-minutes", type=number(float, above=0),
                   help="stop (and checkpoint) after this many minutes of this sitting")
    t.add_argument("--threads", type=number(int, minimum=1), default=1, help="torch threads (the machine is shared: 1)")
    t.add_argument("--device", help="cuda / mps / cpu (default: the best available)")
    t.add_argument("--codec-option", action="append", metavar="KEY=VALUE",
                   help="override a field of the preset's CodecConfig, e.g. arch=spectral (repeatable)")
    t.add_argument("--train-option", action="append", metavar="KEY=VALUE",
                   help="override a field of CodecTrainConfig, e.g. semitone_weight=5 (repeatable)")
    t.add_argument("--fresh", action="store_true", help="ignore an existing train_state.pt")
    t.add_argument("--resume-from", help="a saved training state to continue (copied into --out if it has none), "
                                         "e.g. checkpoints/codec/book.train_state.pt")
    t.add_argument("--init-from", help="start a new run from a codec checkpoint's weights (fresh optimiser), e.g. "
                                       "checkpoints/codec/book.safetensors, or from another run's train_state.pt; with "
                                       "--train-option decoder_only=true (a checkpoint only) its decoder alone trains "
                                       "and the codes stay the same")
    t.set_defaults(func=_train)

    e = what.add_parser("export", help="write checkpoints/codec/NAME.safetensors + card with held-out quality")
    e.add_argument("--state", required=True, help="train_state.pt of a run")
    e.add_argument("--out", default="checkpoints/codec/book.safetensors")
    e.add_argument("--data", default="data/synth", help="Slakh-layout folder whose test split is held out")
    e.add_argument("--half", choices=["auto", "yes", "no"], default="auto")
    e.add_argument("--fixture", default="tests/fixtures/codec_fixture.flac",
                   help="where to store the tiny fixture clip the tests check the card against")
    e.add_argument("--max-tracks", type=number(int, minimum=1), default=24)
    e.add_argument("--pitch-data", help="a synthesised set never trained on, for the pitch measurements "
                                        "(e.g. data/synth-heldout: data synth --tracks 24 --seed 7)")
    e.set_defaults(func=_export)

    v = what.add_parser("eval", help="held-out reconstruction quality of a checkpoint")
    v.add_argument("--checkpoint", help="default: the shipped codec")
    v.add_argument("--data", default="data/synth")
    v.add_argument("--max-tracks", type=number(int, minimum=1), default=24)
    v.set_defaults(func=_eval)

    h = what.add_parser("pitch", help="does the codec keep the notes? chroma similarity and probes of its tokens")
    src = h.add_mutually_exclusive_group()
    src.add_argument("--checkpoint", help="a codec .safetensors (default: the shipped codec)")
    src.add_argument("--state", help="a training state (train_state.pt) instead, e.g. of a running experiment")
    h.add_argument("--data", default="data/synth-heldout",
                   help="a synthesised set not used in training (python -m streamlib data synth --tracks 24 "
                        "--seed 7 --out data/synth-heldout)")
    h.add_argument("--max-tracks", type=number(int, minimum=4), default=24)
    h.add_argument("--levels", type=number(int, minimum=1), nargs="+", default=[4], help="RVQ levels to measure")
    h.add_argument("--threads", type=number(int, minimum=1), default=1)
    h.add_argument("--json", help="also write the report to this file")
    h.set_defaults(func=_pitch)
