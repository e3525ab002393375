"""``python -m streamlib coherence {train,export}``: the book's COCOLA-style coherence model (chapter 9).

Examples::

    python -m streamlib coherence train --data data/synth --out runs/coherence
    python -m streamlib coherence export --state runs/coherence/train_state.pt --data data/synth

``train`` resumes from ``OUT/train_state.pt`` when it exists (exactly: a step's randomness depends on
the seed and the step only) and exports ``checkpoints/coherence/book.safetensors`` + card at the end.
"""

from __future__ import annotations

import argparse

from streamlib.cli import number

DEFAULT_OUT = "checkpoints/coherence/book.safetensors"
DEFAULT_FIXTURE = "tests/fixtures/coherence_fixture.flac"


def _extra(args: argparse.Namespace, data, steps: int) -> dict:
    import json
    import shlex

    recipe = data / "synth.json"
    cmd = ["python", "-m", "streamlib", "coherence", "train", "--data", str(args.data or data), "--out",
           str(args.out), "--steps", str(steps), "--batch-pairs", str(args.batch_pairs), "--lr", str(args.lr),
           "--windows-per-track", str(args.windows_per_track), "--channel-drop", str(args.channel_drop),
           "--seed", str(args.seed), "--threads", "1"]
    return {
        "command": " ".join(shlex.quote(a) for a in cmd),
        "data": json.loads(recipe.read_text()) if recipe.exists() else {"root": str(data)},
        "data_recipe": "train split: windows_per_track random 5 s windows with >= 2 active stems (A.3 rule); "
                       "positives = a random split of the active stems into two disjoint sub-mixes",
    }


def _dataset(args: argparse.Namespace):
    from pathlib import Path

    if args.data:
        return Path(args.data)
    from streamlib.data import book_dataset

    return book_dataset()


def _train(args: argparse.Namespace) -> int:
    import json

    import torch

    from streamlib.metrics.coherence_train import CoherenceTrainConfig, export_coherence, train_coherence
    from streamlib.paths import check_output_dir, check_output_file

    check_output_dir(args.out)
    if args.export:
        check_output_file(args.export, "--export")
        check_output_file(args.fixture, "--fixture")
    torch.set_num_threads(args.threads)
    cfg = CoherenceTrainConfig(steps=args.steps, batch_pairs=args.batch_pairs, lr=args.lr, seed=args.seed,
                               windows_per_track=args.windows_per_track, channel_drop=args.channel_drop)
    data = _dataset(args)
    result = train_coherence(data, args.out, cfg, resume=not args.fresh,
                             max_seconds=args.max_minutes * 60 if args.max_minutes else None)
    print(f"coherence: {result.step} steps, {result.wall_seconds / 60:.1f} min; state {result.state_path}"
          + (" (stopped by --max-minutes; run again to continue)" if result.stopped_early else ""))
    if args.export and not result.stopped_early:
        card = export_coherence(result.state_path, args.export, data, args.fixture, _extra(args, data, result.step))
        print(json.dumps({k: card[k] for k in ("steps", "wall_seconds", "heldout", "fixture", "weights_dtype")},
                         indent=1))
    return 0


def _export(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from streamlib.checkpoint import load_training_state
    from streamlib.metrics.coherence_train import export_coherence
    from streamlib.paths import check_output_file

    check_output_file(args.to, "--to")
    check_output_file(args.fixture, "--fixture")
    data = _dataset(args)
    state = load_training_state(args.state)
    run = argparse.Namespace(data=args.data, out=args.run or str(Path(args.state).parent), **{
        k: state["config"][k] for k in ("batch_pairs", "lr", "seed", "windows_per_track", "channel_drop")})
    card = export_coherence(args.state, args.to, data, args.fixture, _extra(run, data, int(state["step"])))
    print(json.dumps({k: card[k] for k in ("steps", "wall_seconds", "heldout", "fixture", "weights_dtype")}, indent=1))
    return 0


def register(sub) -> None:
    p = sub.add_parser("coherence", help="train and export the COCOLA-style coherence model (chapter 9)")
    what = p.add_subparsers(dest="coherence_command", metavar="{train,export}", required=True)

    t = what.add_parser("train", help="train or resume (atomic checkpoints), then export weights + card")
    t.add_argument("--data", help="Slakh-layout folder (default: the book's synthesised set)")
    t.add_argument("--out", default="runs/coherence", help="run folder holding train_state.pt")
    t.add_argument("--steps", type=number(int, minimum=1), default=2000,
                   help="total steps (a resumed run continues to this)")
    t.add_argument("--batch-pairs", type=number(int, minimum=1), default=32,
                   help="positive pairs per step (the rest are negatives)")
    t.add_argument("--lr", type=number(float, above=0), default=2e-3)
    t.add_argument("--windows-per-track", type=number(int, minimum=1), default=10,
                   help="5 s windows drawn from each training song")
    t.add_argument("--channel-drop", type=float, default=0.5,
                   help="share of steps that zero the percussive or the harmonic channel (trains the sub-scores)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--max-minutes", type=number(float, above=0),
                   help="stop (and checkpoint) after this many minutes of this sitting")
    t.add_argument("--threads", type=number(int, minimum=1), default=1, help="torch threads (the machine is shared: 1)")
    t.add_argument("--fresh", action="store_true", help="ignore an existing train_state.pt")
    t.add_argument("--export", default=DEFAULT_OUT, help="weights to write when training ends ('' to skip)")
    t.add_argument("--fixture", default=DEFAULT_FIXTURE, help="tiny test fixture whose numbers go in the card")
    t.set_defaults(func=_train)

    e = what.add_parser("export", help="write weights + card (held-out AUCs) from a training state")
    e.add_argument("--state", required=True, help="train_state.pt of a run")
    e.add_argument("--to", default=DEFAULT_OUT)
    e.add_argument("--data", help="Slakh-layout folder whose test split is held out (default: the book's set)")
    e.add_argument("--run", help="the run folder named in the card's reproduce command (default: the state's folder)")
    e.add_argument("--fixture", default=DEFAULT_FIXTURE)
    e.set_defaults(func=_export)
