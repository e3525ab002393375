"""The audio of a listening study from the book's real systems (chapter 11; paper A.8-A.9).

``prepare_study`` draws held-out clips (``streamlib.sweep.load_clips``), runs every chosen system on each
(the shipped streaming models, the offline prefix decoder, the masked model of chapter 12), adds the
ground-truth stem and the random-pairing floor, mixes each accompaniment with its clip's input tracks the
paper's way (A.9, ``streamlib.metrics.mixing.mix_tracks``) and hands the mixes to
``streamlib.listening.design_trials`` and ``write_study``: participant pages, audio under anonymous names
and the hidden key. ``python -m streamlib listening prepare`` runs it; ``listening analyse`` reads the
answers back.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from streamlib.config import FRAME_RATE
from streamlib.listening import StudyError, design_trials, write_study

GROUND_TRUTH = "ground truth"
RANDOM_PAIRING = "random pairing"


def _slug(system: str) -> str:
    return re.sub(r"[^A-Za-z0-9+-]+", "_", system).strip("_")


def render_study_audio(entries: Sequence, clips: Sequence, out: str | Path, *, codec=None, seed: int = 0,
                       log: Callable[[str], None] = print) -> dict[str, dict[str, Path]]:
    """Write ``out/sources/clipNN/<system>.wav``: the A.9 mix of each clip's input tracks with each system's
    accompaniment (``entries``: ``streamlib.stream.ModelEntry``; ``codec`` None: the codec each card names),
    the ground truth and the random-pairing floor; and ``out/sources/clips.json`` (where each clip comes
    from). Returns ``audio[example][system] -> path``, the input of ``design_trials``."""
    from streamlib.audio import save_audio
    from streamlib.metrics.mixing import mix_tracks
    from streamlib.sweep import generate, random_pairing

    if not clips:
        raise StudyError("no clips to render")
    labels = [e.label for e in entries]
    if len(set(labels)) != len(labels) or {GROUND_TRUTH, RANDOM_PAIRING} & set(labels):
        raise StudyError(f"system names must be unique and not {GROUND_TRUTH!r} / {RANDOM_PAIRING!r}: {labels}")
    hops = [c.sample_rate // FRAME_RATE for c in clips]
    stems = {GROUND_TRUTH: [c.target[: c.frames * h] for c, h in zip(clips, hops)],
             RANDOM_PAIRING: random_pairing(clips, seed)}
    for e in entries:
        stems[e.label], speed = generate(e, clips, codec, seed=seed)
        log(f"{e.label}: {len(clips)} clips ({speed:.2f}x real time)")
    root = Path(out) / "sources"
    audio: dict[str, dict[str, Path]] = {}
    for i, clip in enumerate(clips):
        example = f"clip{i:02d}"
        audio[example] = {}
        for system, generated in stems.items():
            n = min(len(generated[i]), *(len(s) for s in clip.input_stems))
            mix = mix_tracks([s[:n] for s in clip.input_stems], np.asarray(generated[i][:n], np.float32),
                             clip.sample_rate)
            path = root / example / f"{_slug(system)}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            save_audio(path, mix, clip.sample_rate)
            audio[example][system] = path
    where = {f"clip{i:02d}": {"clip": c.name, "target": c.info.get("target"), "inputs": c.info.get("inputs")}
             for i, c in enumerate(clips)}
    (root / "clips.json").write_text(json.dumps(where, indent=1) + "\n")
    return audio


def prepare_study(out: str | Path, *, clips: int = 6, seconds: float = 10.0, participants: int = 24,
                  repeats: int = 1, seed: int = 0, only: str | None = None, checkpoints: str | Path | None = None,
                  log: Callable[[str], None] = print) -> dict[str, Path]:
    """What ``listening prepare`` does: the shipped systems (``only``: a regular expression on checkpoint
    names) on ``clips`` held-out clips of ``seconds``, the ground truth and the floor, then the blind pages and
    the key (``write_study``). Returns the written paths (``key``, ``participant_NN``)."""
    from streamlib.sweep import clip_lookahead, load_clips, select_models

    entries = select_models(checkpoints, only)
    drawn = load_clips(clips, seconds, clip_lookahead(entries), seed=seed)
    audio = render_study_audio(entries, drawn, out, seed=seed, log=log)
    trials = design_trials(audio, participants=participants, repeats=repeats, seed=seed)
    return write_study(trials, out)
