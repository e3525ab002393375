"""``python -m streamlib compare``: score accompanists side by side on the same targets (chapter 7).

Example::

    python -m streamlib compare checkpoints/models/book_tf-50_k1.safetensors \\
        checkpoints/models/book_tf+0_k1.safetensors checkpoints/models/book_tf+50_k1.safetensors \\
        --csv runs/compare.csv --curves runs/compare_curves.csv

Prints, per model, its steps and seed, its card's validation loss, the loss on the targets every
k = 1 model predicts (with each window's own input and with another window's) and the input
reliance: read the last column before reading any ordering of the others. ``--curves`` also writes
each card's validation curve (model, seed, tf, k, step, val_loss) for plotting runs side by side.
"""

from __future__ import annotations

DEFAULT_FIXTURE = "tests/fixtures/model_val_windows.npz"
COLUMNS = ("model", "tf", "k", "offline", "steps", "seed", "card_val_loss", "common_loss", "common_loss_swapped",
           "reliance")


def _fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _run(args) -> int:
    from pathlib import Path

    import torch

    from streamlib.checkpoint import write_csv
    from streamlib.config import get_preset
    from streamlib.model import load_accompanist
    from streamlib.train import compare_models, load_val_fixture

    torch.set_num_threads(args.threads)
    fixture = Path(args.fixture)
    if not fixture.exists():
        raise SystemExit(f"compare: no validation windows at {fixture} (pass --fixture)")
    models = {}
    for path in map(Path, args.models):
        if not path.exists():
            raise SystemExit(f"compare: no checkpoint at {path}")
        if path.stem in models:
            raise SystemExit(f"compare: two checkpoints named {path.stem}; rename one")
        models[path.stem] = load_accompanist(path, device="cpu")
    window = args.window or get_preset("book").train.window_frames
    rows = compare_models(models, load_val_fixture(fixture), window)
    widths = [max(len(c), *(len(_fmt(r[c])) for r in rows)) for c in COLUMNS]
    print("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths)))
    for r in rows:
        print("  ".join(_fmt(r[c]).ljust(w) for c, w in zip(COLUMNS, widths)))
    if args.csv:
        print("wrote", write_csv(args.csv, COLUMNS, ({c: r[c] for c in COLUMNS} for r in rows)))
    if args.curves:
        curves = ({"model": r["model"], "seed": r["seed"], "tf": r["tf"], "k": r["k"], "step": step, "val_loss": loss}
                  for r in rows for step, loss in (getattr(models[r["model"]], "card", None) or {}).get("val_curve", []))
        print("wrote", write_csv(args.curves, ("model", "seed", "tf", "k", "step", "val_loss"), curves))
    return 0


def register(sub) -> None:
    p = sub.add_parser("compare", help="score accompanists on the same targets, with and without their input",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", help="accompanist checkpoints (.safetensors with their .json cards)")
    p.add_argument("--fixture", default=DEFAULT_FIXTURE, help=f"validation windows (default {DEFAULT_FIXTURE})")
    p.add_argument("--window", type=int, default=None, help="layout length in frames (default: the book preset's)")
    p.add_argument("--csv", default=None, help="also write the table here")
    p.add_argument("--curves", default=None, help="also write every card's validation curve here")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.set_defaults(func=_run)
