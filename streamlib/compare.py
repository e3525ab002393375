"""Comparing trained accompanists on the same targets, with and without their input (chapter 7).

A loss ordering between models means something only when

* every model is scored on the *same* targets (``common_frame_losses``): a model with t_f > 1 gives up
  the last t_f - 1 frames of a window to its output padding, and late frames are the easy ones;
* the models actually read their input (``input_reliance``: the loss with another song's input minus
  the loss with its own);
* the difference is larger than its noise: ``paired_difference`` compares two models window by window
  and takes its standard error over *tracks*, because the windows of one song are not independent.

``python -m streamlib compare`` runs all of this on shipped checkpoints (``compare_models``) and writes
the per-window losses (``write_window_losses``) that ``docs/first_codec_training_log.md`` reads back
(``read_window_losses``). Chapter 7 (section 7.7) measures ``input_reliance`` and
``reliance_by_frame_type`` on the model it trains.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from streamlib.config import ConfigError
from streamlib.model.accompanist import Accompanist
from streamlib.tokens.visibility import predicted_frames
from streamlib.train import aligned_batch, batch_loss, score_windows


def common_frames(models: dict[str, Accompanist], window: int) -> int:
    """How many output frames (from the first) every model predicts at every level in a ``window``-frame layout."""
    frames = min(predicted_frames(window, 0 if m.spec is None else m.spec.tf, m.cfg.n_q) for m in models.values())
    if frames < 1:
        raise ConfigError(f"no output frame is predicted by every model in a {window}-frame window")
    return frames


def common_frame_losses(models: dict[str, Accompanist], windows: dict[str, torch.Tensor], window: int) -> dict[str, float]:
    """Validation loss of each model on the *same* targets: the output frames that every model predicts
    at every level in a ``window``-frame layout. A model with t_f > 1 gives up the last ``t_f - 1`` frames
    of each window to its output padding, and late frames (long history) are the easy ones, so its card
    loss is not comparable with a t_f <= 0 model's; this is."""
    if not models:
        return {}
    frames = common_frames(models, window)
    return {name: score_windows(m, windows, window, frames) for name, m in models.items()}


@torch.no_grad()
def window_losses(models: dict[str, Accompanist], windows: dict[str, torch.Tensor], window: int,
                  batch_size: int = 8, frames: int | None = None) -> dict[str, np.ndarray]:
    """``common_frame_losses`` window by window: ``[n_windows]`` losses per k = 1 model on the same targets,
    for a paired comparison (every window has the same number of common targets, so their mean is
    ``common_frame_losses``). ``frames``: the targets of output frames ``< frames`` instead (e.g. those common
    to a larger set of models, some of which are not at hand)."""
    if not models:
        return {}
    frames = common_frames(models, window) if frames is None else frames
    cropped = {key: (v[..., :window] if v.dim() == 3 else v) for key, v in windows.items()}
    n = cropped["input"].shape[0]
    out = {}
    for name, m in models.items():
        if m.offline or m.spec is None or m.spec.k != 1:
            raise ConfigError(f"{name}: window_losses scores k = 1 streaming models only")
        was = m.training
        m.eval()
        parts = []
        for lo in range(0, n, batch_size):
            part = {key: v[lo : lo + batch_size] for key, v in cropped.items()}
            s, c = batch_loss(m, aligned_batch(part, m.spec.tf, False, torch.device("cpu")), 1, None, frames,
                              per_window=True)
            parts.append((s / c).double().numpy())
        m.train(was)
        out[name] = np.concatenate(parts)
    return out


def swap_inputs(windows: dict[str, torch.Tensor], shift: int | None = None) -> dict[str, torch.Tensor]:
    """The same windows, each with the input of the window ``shift`` places before it (default half the set
    away: windows listed track by track then get another song's input, not another mix of their own)."""
    n = windows["input"].shape[0]
    if n < 2:
        raise ValueError("swapping inputs needs at least 2 windows")
    shift = n // 2 if shift is None else int(shift)
    if shift % n == 0:
        raise ValueError(f"a shift of {shift} gives every one of the {n} windows its own input back")
    swapped = dict(windows, input=windows["input"].roll(shift, dims=0))
    if "input_chroma" in windows:  # the chroma path hears the same other song
        swapped["input_chroma"] = windows["input_chroma"].roll(shift, dims=0)
    return swapped


def input_reliance(acc: Accompanist, windows: dict[str, torch.Tensor], window: int) -> float:
    """How much the model listens: validation loss with every window's input swapped for another
    window's (``swap_inputs``), minus the loss with its own input (nats per token; ~0 means the
    input is ignored)."""
    return score_windows(acc, swap_inputs(windows), window) - score_windows(acc, windows, window)


def compare_models(models: dict[str, Accompanist], windows: dict[str, torch.Tensor], window: int) -> list[dict]:
    """One row per model, the numbers to read before any loss ordering: steps and seed from its card, the
    card's validation loss, and for k = 1 models the loss on the targets all k = 1 models predict with each
    window's own input and with another's (``swap_inputs``), also window by window (``per_window``,
    ``per_window_swapped``); ``reliance`` is the difference (``input_reliance`` over its own targets for the
    other models)."""
    k1 = {name: m for name, m in models.items() if m.spec is not None and m.spec.k == 1 and not m.offline}
    own = window_losses(k1, windows, window)
    other = window_losses(k1, swap_inputs(windows), window)
    rows = []
    for name, m in models.items():
        card = getattr(m, "card", None) or {}
        row = {"model": name, "tf": None if m.offline or m.spec is None else m.spec.tf,
               "k": None if m.offline or m.spec is None else m.spec.k, "offline": bool(m.offline),
               "steps": card.get("steps"), "seed": (card.get("run") or {}).get("seed"),
               "card_val_loss": card.get("val_loss"), "windows": int(windows["input"].shape[0]),
               "common_loss": float(own[name].mean()) if name in k1 else None,
               "common_loss_swapped": float(other[name].mean()) if name in k1 else None,
               "per_window": own.get(name), "per_window_swapped": other.get(name)}
        row["reliance"] = (row["common_loss_swapped"] - row["common_loss"]) if name in k1 else \
            input_reliance(m, windows, window)
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- where the model listens

FRAME_TYPES = ("onset", "chord change", "sustained", "silent")


@torch.no_grad()
def token_losses(acc: Accompanist, windows: dict[str, torch.Tensor], window: int,
                 batch_size: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cross entropy of every target token: ``(ce [N, Q, L], mask [N, Q, L], frame [Q, L])``, ``frame``
    the output frame each target belongs to (-1: none), for a k = 1 streaming model."""
    from streamlib.tokens.categories import CODE_OFFSET

    if acc.offline or acc.spec is None or acc.spec.k != 1:
        raise ConfigError("token_losses scores k = 1 streaming models only")
    was = acc.training
    acc.eval()
    cropped = {key: (v[..., :window] if v.dim() == 3 else v) for key, v in windows.items()}
    ces, masks, frames = [], [], None
    for lo in range(0, cropped["input"].shape[0], batch_size):
        part = {key: v[lo : lo + batch_size] for key, v in cropped.items()}
        a = aligned_batch(part, acc.spec.tf, False, torch.device("cpu"))
        logits = acc(a.input_codes, a.input_pad_mask, a.output_tokens, input_features=a.input_features)
        codes = (a.targets - CODE_OFFSET).clamp(min=0)
        ce = torch.nn.functional.cross_entropy(logits.float().permute(0, 3, 1, 2), codes, reduction="none")
        ces.append(ce.numpy())
        masks.append(a.loss_mask.numpy())
        frames = a.target_frames.numpy()
    acc.train(was)
    return np.concatenate(ces), np.concatenate(masks), frames


def frame_labels(info: Sequence[dict], tokens: str | Path, window: int, dataset: str | Path | None = None,
                 split: str = "validation") -> dict[str, np.ndarray]:
    """Bool ``[N, window]`` per frame type of each window's target (``split_windows`` info):

    * ``onset``: the frame of a note onset of the target stem and the next one (its MIDI);
    * ``chord change``: the first 5 frames (0.1 s) of a chord of the song (``metadata.yaml`` -> ``synth``);
    * ``sustained``: the target sounds, no onset;  ``silent``: the target is silent (token cache ``active``).

    The types overlap (an onset on a chord change is both). ``dataset``: the songs (default: the
    token cache's ``meta.json`` -> ``dataset``)."""
    import json

    import pretty_midi

    from streamlib.config import FRAME_RATE
    from streamlib.data.slakh import read_track

    root = Path(dataset or json.loads((Path(tokens) / "meta.json").read_text())["dataset"])
    out = {name: np.zeros((len(info), window), dtype=bool) for name in FRAME_TYPES}
    cache: dict[str, tuple] = {}
    for i, w in enumerate(info):
        if w["track"] not in cache:
            track = read_track(root / split / w["track"], split)
            with np.load(Path(tokens) / split / f"{w['track']}.npz") as z:
                active = z["active"].copy()
            cache[w["track"]] = (track, active)
        track, active = cache[w["track"]]
        stem, start = track.stems[int(w["target_stem"])], int(w["start"])
        span = slice(start, start + window)
        on = np.zeros(active.shape[1] + 2, dtype=bool)
        if stem.midi_path is not None:
            for inst in pretty_midi.PrettyMIDI(str(stem.midi_path)).instruments:
                for note in inst.notes:
                    f = int(note.start * FRAME_RATE)
                    on[f : f + 2] = True
        change = np.zeros_like(on)
        for a, _, _ in (track.metadata.get("synth") or {}).get("chords") or []:
            f = int(round(float(a) * FRAME_RATE))
            change[f : f + 5] = True
        sounding = active[int(w["target_stem"])]
        n = len(sounding[span])
        out["onset"][i, :n] = on[span][:n]
        out["chord change"][i, :n] = change[span][:n]
        out["sustained"][i, :n] = sounding[span] & ~on[span][:n]
        out["silent"][i, :n] = ~sounding[span]
    return out


def reliance_by_frame_type(acc: Accompanist, windows: dict[str, torch.Tensor], info: Sequence[dict],
                           tokens: str | Path, window: int, dataset: str | Path | None = None) -> list[dict]:
    """Input reliance split by frame type (``frame_labels``) and by RVQ level: for every target token, its
    loss with another song's input (``swap_inputs``) minus with its own, averaged over the tokens of each
    (type, level); ``share`` is the type's part of all reliance (types overlap, shares need not sum to 1).
    Rows ``{type, level ("all" or 0..Q-1), reliance, tokens, share}``; type "all" is the overall figure."""
    own, mask, frames = token_losses(acc, windows, window)
    other, _, _ = token_losses(acc, swap_inputs(windows), window)
    diff = other - own
    labels = frame_labels(info, tokens, window, dataset)
    f = np.clip(frames, 0, window - 1)  # [Q, L]
    total = float((diff * mask).sum())
    rows = []
    for name in ("all",) + FRAME_TYPES:
        sel = mask.copy() if name == "all" else mask & labels[name][:, f] & (frames >= 0)[None]
        for level in ["all"] + list(range(diff.shape[1])):
            m = sel if level == "all" else sel & (np.arange(diff.shape[1]) == level)[None, :, None]
            n = int(m.sum())
            rows.append({"type": name, "level": level, "tokens": n,
                         "reliance": float((diff * m).sum() / n) if n else float("nan"),
                         "share": float((diff * m).sum() / total) if total else float("nan")})
    return rows


def paired_difference(a: Sequence[float], b: Sequence[float], groups: Sequence | None = None) -> dict:
    """Mean of ``a - b`` over windows, and how sure we are of it. With ``groups`` (the track of each
    window), the standard error and the ``higher`` count come from the per-group mean differences, since
    windows of one song share tempo, key and instruments; without, every window counts as independent.

    Returns ``mean``, ``se``, ``n`` (groups or windows), ``higher`` (how many of them have ``a > b``).
    """
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.ndim != 1 or len(d) < 2 or not np.all(np.isfinite(d)):
        raise ValueError("paired_difference needs two equal-length 1-d arrays of at least 2 finite values")
    units = d
    if groups is not None:
        g = np.asarray(groups)
        if len(g) != len(d):
            raise ValueError(f"{len(g)} groups for {len(d)} windows")
        units = np.array([d[g == key].mean() for key in dict.fromkeys(g.tolist())])
        if len(units) < 2:
            raise ValueError("paired_difference needs windows from at least 2 groups")
    return {"mean": float(d.mean()), "se": float(units.std(ddof=1) / np.sqrt(len(units))),
            "n": int(len(units)), "higher": int((units > 0).sum())}


WINDOW_COLUMNS = ("row", "track", "start")


def write_window_losses(path: str | Path, info: list[dict], rows: list[dict]) -> Path:
    """Per-window CSV of ``compare_models`` rows: ``row, track, start`` (``streamlib.train.split_windows``),
    then ``<model>`` and ``<model>:swapped`` for every k = 1 model."""
    from streamlib.checkpoint import write_csv

    k1 = [r for r in rows if r["per_window"] is not None]
    columns = (*WINDOW_COLUMNS, *(f"{r['model']}{tag}" for r in k1 for tag in ("", ":swapped")))
    lines = []
    for i, where in enumerate(info):
        line = {c: where[c] for c in WINDOW_COLUMNS}
        for r in k1:
            line[r["model"]], line[f"{r['model']}:swapped"] = float(r["per_window"][i]), float(r["per_window_swapped"][i])
        lines.append(line)
    return write_csv(path, columns, lines)


def read_window_losses(path: str | Path) -> tuple[list[dict], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``write_window_losses``'s file back: window info, per-model losses with own input and swapped input."""
    with Path(path).open(newline="") as f:
        lines = list(csv.DictReader(f))
    if not lines:
        raise ValueError(f"{path} has no windows")
    info = [{"row": int(r["row"]), "track": r["track"], "start": int(r["start"])} for r in lines]
    models = [c for c in lines[0] if c not in WINDOW_COLUMNS and not c.endswith(":swapped")]
    own = {m: np.array([float(r[m]) for r in lines]) for m in models}
    swapped = {m: np.array([float(r[f"{m}:swapped"]) for r in lines]) for m in models}
    return info, own, swapped


__all__ = ["common_frame_losses", "common_frames", "compare_models", "input_reliance", "paired_difference",
           "read_window_losses", "swap_inputs", "window_losses", "write_window_losses"]
