"""``python -m streamlib compare``: score accompanists side by side on the same targets (chapter 7).

Example (the first codec's k = 1 trio on every window of the book's validation split, run in a work tree of
the commit ``docs/first_codec_training_log.md`` names)::

    python -m streamlib compare checkpoints/models/book_tf-50_k1.safetensors \\
        checkpoints/models/book_tf+0_k1.safetensors checkpoints/models/book_tf+50_k1.safetensors \\
        --tokens data/tokens/book --csv results/lookahead_trio.csv \\
        --windows-csv results/lookahead_trio_windows.csv --threads 2

Prints, per model, its steps and seed, its card's validation loss, the loss on the targets every
k = 1 model predicts (with each window's own input and with another song's) and the input
reliance: read that column before reading any ordering of the others. Then each k = 1 model's
paired difference to the t_f = 0 model, with its standard error over tracks when the windows come
from a token cache. Without ``--tokens`` the windows are the committed test fixture the cards name (32
windows of their codec's tokens: too few to resolve differences of a few thousandths of a nat). The models
must share a codec: tokens of one codec mean nothing to a model trained on another's. ``--curves`` also
writes each card's validation curve (model, seed, tf, k, step, val_loss) for plotting runs side by side.

``--by-frame-type`` (with ``--tokens``) splits the input reliance by frame type of the target (note
onsets, chord changes, sustained, silent) and by RVQ level (``streamlib.compare.reliance_by_frame_type``).
``--play-along N`` also lets every model generate N held-out clips (the book set's test split, two per
song at most) with its own input and with another song's, and scores them against the song
(``streamlib.playalong``: harmonic agreement with its chords, beat F1 against its beats) next to the
true stem and the random-pairing floor; ``--play-along-csv`` keeps those rows (the sweep's layout).
``--play-along-prompt SECONDS`` scores continuations instead: the true stem is teacher-forced for that long,
and every row is scored on the rest of the clip (a model that keeps the key but ignores its input shows as
one whose control, another song's input after the same prompt, scores the same)::

    python -m streamlib compare runs/a.safetensors runs/b.safetensors --play-along 48 \
        --play-along-csv results/listening/a_vs_b.csv
"""

from __future__ import annotations

from streamlib.cli import number, target_category

COLUMNS = ("model", "tf", "k", "offline", "steps", "seed", "card_val_loss", "windows", "common_loss",
           "common_loss_swapped", "reliance")


def _fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _windows(args, window: int, n_q: int, card: dict, chroma: bool = False):
    """(windows, per-window info or None) from ``--tokens``, ``--fixture`` or the fixture ``card`` names;
    a token cache of another codec than the card's is refused."""
    import json
    from pathlib import Path

    from streamlib.config import ConfigError
    from streamlib.train import card_fixture, load_val_fixture, split_windows

    if args.tokens:
        if args.max_windows is not None and args.max_windows < 2:
            raise ConfigError("--max-windows must be at least 2 (a swapped input needs another window)")
        if not Path(args.tokens, args.split).is_dir():
            raise ConfigError(f"no split {args.split!r} in the token cache {args.tokens}")
        meta = Path(args.tokens, "meta.json")
        made_by = json.loads(meta.read_text()).get("codec_sha256") if meta.exists() else None
        if made_by not in (None, card["codec_sha256"]):
            raise ConfigError(f"the token cache {args.tokens} holds codec {made_by}'s tokens, the models were "
                              f"trained on codec {card['codec_sha256']}'s")
        return split_windows(args.tokens, window, n_q, args.max_windows, split=args.split, chroma=chroma,
                             targets=args.targets)
    if args.targets:
        raise ConfigError("--targets picks windows of a token cache: pass --tokens (a fixture's windows are fixed)")
    fixture = Path(args.fixture) if args.fixture else card_fixture(card)
    if fixture is None:
        raise ConfigError("the models' cards name no validation windows (pass --fixture or --tokens)")
    if not fixture.exists():
        raise ConfigError(f"no validation windows at {fixture} (pass --fixture or --tokens)")
    return load_val_fixture(fixture), None


def _run(args) -> int:
    from pathlib import Path

    import torch

    from streamlib.checkpoint import write_csv
    from streamlib.compare import compare_models, paired_difference, write_window_losses
    from streamlib.config import ConfigError, get_preset
    from streamlib.model import load_accompanist
    from streamlib.paths import check_output_file

    if args.windows_csv and not args.tokens:
        raise ConfigError("--windows-csv needs --tokens (the fixture does not record where its windows come from)")
    if (args.guidance != [1.0] or args.temperature != [1.0] or args.play_along_prompt) and not args.play_along:
        raise ConfigError("--guidance, --temperature and --play-along-prompt apply to --play-along generation")
    if args.play_along and args.play_along_prompt >= args.play_along_seconds:
        raise ConfigError(f"--play-along-prompt ({args.play_along_prompt:g} s) must be shorter than "
                          f"--play-along-seconds ({args.play_along_seconds:g} s)")
    for option, path in (("--csv", args.csv), ("--windows-csv", args.windows_csv), ("--curves", args.curves),
                         ("--play-along-csv", args.play_along_csv), ("--frame-type-csv", args.frame_type_csv)):
        if path:
            check_output_file(path, option)
    torch.set_num_threads(args.threads)
    models = {}
    for path in map(Path, args.models):
        if path.stem in models:
            raise ConfigError(f"two checkpoints named {path.stem}; rename one")
        models[path.stem] = load_accompanist(path, device="cpu")
    if len({m.cfg.n_q for m in models.values()}) != 1:
        raise ConfigError("the models predict different numbers of codebook levels")
    codecs = sorted({str(m.card["codec_sha256"]) for m in models.values()})
    if len(codecs) != 1:
        raise ConfigError(f"the models were trained on different codecs ({', '.join(codecs)}); compare models of one")
    first = next(iter(models.values()))
    if args.codec and not args.play_along:
        raise ConfigError("--codec applies to --play-along generation")
    play_codec = _play_codec(args.codec, models) if args.play_along else None
    window = args.window or get_preset("book").train.window_frames
    windows, info = _windows(args, window, first.cfg.n_q, first.card,
                             chroma=any(m.cfg.input_chroma for m in models.values()))
    rows = compare_models(models, windows, window)
    widths = [max(len(c), *(len(_fmt(r[c])) for r in rows)) for c in COLUMNS]
    print("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths)))
    for r in rows:
        print("  ".join(_fmt(r[c]).ljust(w) for c, w in zip(COLUMNS, widths)))
    reference = next((r for r in rows if r["tf"] == 0 and r["k"] == 1), None)
    groups = None if info is None else [w["track"] for w in info]
    for r in rows:
        if reference is not None and r is not reference and r["per_window"] is not None:
            d = paired_difference(r["per_window"], reference["per_window"], groups)
            unit = "tracks" if groups else "windows"
            print(f"{r['model']} minus {reference['model']}: {d['mean']:+.4f} nats per token (standard error "
                  f"{d['se']:.4f} over {d['n']} {unit}; higher in {d['higher']} of them)")
    if args.csv:
        print("wrote", write_csv(args.csv, COLUMNS, ({c: r[c] for c in COLUMNS} for r in rows)))
    if args.windows_csv:
        print("wrote", write_window_losses(args.windows_csv, info, rows))
    if args.by_frame_type:
        _by_frame_type(args, models, windows, info, window)
    if args.play_along:
        _play_along(args, models, play_codec)
    if args.curves:
        curves = ({"model": r["model"], "seed": r["seed"], "tf": r["tf"], "k": r["k"], "step": step, "val_loss": loss}
                  for r in rows for step, loss in (getattr(models[r["model"]], "card", None) or {}).get("val_curve", []))
        print("wrote", write_csv(args.curves, ("model", "seed", "tf", "k", "step", "val_loss"), curves))
    return 0


def _by_frame_type(args, models: dict, windows, info, window: int) -> None:
    """Print (and with ``--frame-type-csv`` write) each k = 1 model's reliance by frame type and level."""
    from streamlib.checkpoint import write_csv
    from streamlib.compare import reliance_by_frame_type
    from streamlib.config import ConfigError

    if info is None:
        raise ConfigError("--by-frame-type needs --tokens (frame types come from the songs of the token cache)")
    rows = []
    for name, m in models.items():
        if m.offline or m.spec is None or m.spec.k != 1:
            continue
        for r in reliance_by_frame_type(m, windows, info, args.tokens, window):
            rows.append({"model": name, **r})
    print("\ninput reliance by frame type (nats per token; share of all reliance), levels 0..3 after '|':")
    for name in dict.fromkeys(r["model"] for r in rows):
        for t in dict.fromkeys(r["type"] for r in rows):
            mine = [r for r in rows if r["model"] == name and r["type"] == t]
            overall = next(r for r in mine if r["level"] == "all")
            levels = " ".join(f"{r['reliance']:+.4f}" for r in mine if r["level"] != "all")
            print(f"{name:<28} {t:<13} {overall['reliance']:+.4f} ({overall['share']:5.0%} of it, "
                  f"{overall['tokens']} tokens) | {levels}")
    if args.frame_type_csv:
        print("wrote", write_csv(args.frame_type_csv, ("model", "type", "level", "tokens", "reliance", "share"), rows))


def _play_codec(path: str | None, models: dict):
    """The codec that decodes the play-along stems: ``path`` (checked to make the models' codes), else the
    codec the models' cards name."""
    from streamlib.codec import codec_for, load_codec

    if path is None:
        return codec_for(next(iter(models.values())))
    codec = load_codec(path)
    for acc in models.values():
        acc.check_codec(codec)  # the same codes; its decoder may differ
    return codec


def _play_along(args, models: dict, codec) -> None:
    """Generate and score ``--play-along`` clips per model (own input and another song's), decoded by ``codec``."""
    from streamlib.config import FRAME_RATE
    from streamlib.metrics.scorer import MetricScorer
    from streamlib.playalong import PLAY_ALONG_METRICS, play_along, verdict
    from streamlib.sweep import load_clips, write_csv
    from streamlib.tokens.delay import added_latency_frames

    first = next(iter(models.values()))
    lookahead = max([m.spec.tf for m in models.values() if m.spec is not None] + [0]) + added_latency_frames(first.cfg.n_q)
    clips = load_clips(args.play_along, args.play_along_seconds, lookahead, root=args.dataset, seed=args.seed,
                       sample_rate=codec.sample_rate, per_song=2, targets=args.targets)
    systems, sampling = {}, {}
    for g in args.guidance:  # every model at every guidance scale and temperature (1, 1: plain sampling)
        for temp in args.temperature:
            for label, acc in models.items():
                name = label + (f" (guidance {g:g})" if g != 1 else "") + (f" (temperature {temp:g})" if temp != 1 else "")
                systems[name], sampling[name] = acc, {"guidance": g, "temperature": temp}
    scorer = MetricScorer(metrics=PLAY_ALONG_METRICS + ("active_share",))  # + a diagnostic: does it fall silent?
    rows = play_along(systems, clips, codec, scorer, seed=args.seed, sampling=sampling,
                      prompt_frames=int(round(args.play_along_prompt * FRAME_RATE)))
    for r in rows:
        print(f"{r['system']:<48} {r['metric']:<20} {r['value']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] n={r['n']}")
    for v in verdict(rows):
        gap = "" if v["gap"] is None else f"; listening gap {v['gap']:+.3f}, above 0: {v['listens']}"
        print(f"{v['system']}: {v['metric']} above the floor: {v['above_floor']}, above another song's input: "
              f"{v['above_control']}{gap}")
    if args.play_along_csv:
        print("wrote", write_csv(rows, args.play_along_csv))


def register(sub) -> None:
    p = sub.add_parser("compare", help="score accompanists on the same targets, with and without their input",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help="accompanist checkpoints (.safetensors with their .json cards)")
    p.add_argument("--tokens", default=None, help="score windows of this token cache instead of the fixture")
    p.add_argument("--split", default="validation", help="split of --tokens (default validation)")
    p.add_argument("--max-windows", type=int, default=None,
                   help="with --tokens: at most this many windows, spread over the split (default: all)")
    p.add_argument("--fixture", default=None, help="validation windows (default: the fixture the models' cards name)")
    p.add_argument("--window", type=int, default=None, help="layout length in frames (default: the book preset's)")
    p.add_argument("--csv", default=None, help="also write the table here")
    p.add_argument("--windows-csv", default=None, help="with --tokens: also write every window's losses here")
    p.add_argument("--curves", default=None, help="also write every card's validation curve here")
    p.add_argument("--threads", type=number(int, minimum=1), default=1, help="torch threads (default 1)")
    p.add_argument("--by-frame-type", action="store_true",
                   help="with --tokens: split the input reliance by frame type (onsets, chord changes, "
                        "sustained, silent) and RVQ level")
    p.add_argument("--frame-type-csv", default=None, help="write the --by-frame-type rows here")
    p.add_argument("--targets", type=target_category, nargs="+", metavar="CATEGORY",
                   help="only windows and play-along clips whose target is of these categories, e.g. Bass "
                        "(default: every target category)")
    p.add_argument("--play-along", type=number(int, minimum=2), default=0,
                   help="also generate this many held-out clips per model and score them against the song")
    p.add_argument("--play-along-seconds", type=number(float, above=0), default=10.0, help="clip length (s)")
    p.add_argument("--play-along-csv", default=None, help="write the play-along rows here (the sweep's layout)")
    p.add_argument("--play-along-prompt", type=number(float, minimum=0.0), default=0.0,
                   help="score continuations: teacher-force the true stem for this many seconds, then score the "
                        "rest of each clip (default 0: free generation)")
    p.add_argument("--guidance", type=number(float, minimum=0.0), nargs="+", default=[1.0],
                   help="with --play-along: classifier-free guidance scales to sample at (1: none; models trained "
                        "with --input-dropout), e.g. --guidance 1 2 3")
    p.add_argument("--temperature", type=number(float, above=0), nargs="+", default=[1.0],
                   help="with --play-along: sampling temperatures (1: the model's distribution; lower: more "
                        "conservative), e.g. --temperature 1 0.7")
    p.add_argument("--dataset", default=None, help="songs of the play-along clips (default: the book set)")
    p.add_argument("--codec", default=None,
                   help="decode the play-along stems with this codec checkpoint (default: the codec the models' "
                        "cards name); it must make the models' codes, e.g. the same codes through another decoder")
    p.add_argument("--seed", type=int, default=0, help="clip draw and sampling seed of --play-along")
    p.set_defaults(func=_run)
