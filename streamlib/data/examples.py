"""Chapter 2 (Multitrack data): short held-out clips shipped in ``data/examples/`` for the other chapters.

A clip is a folder ``data/examples/NAME/`` with ``mix.flac`` (the sum of the stems), ``stems/SNN.flac``
(16 kHz mono) and ``clip.json`` (source track, start, categories, ground-truth beats inside the clip).
``load_example(NAME)`` reads one; ``python -m streamlib data examples`` remakes them from the test split
of the book's synthesised set (deterministically).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from streamlib.config import FRAME_RATE
from streamlib.paths import REPO_ROOT

EXAMPLES_DIR = REPO_ROOT / "data" / "examples"


@dataclass
class ExampleClip:
    name: str
    sample_rate: int
    mix: np.ndarray
    stems: dict[str, np.ndarray]  # "S01" -> audio
    categories: dict[str, int]  # "S01" -> category id
    info: dict  # the rest of clip.json


def load_example(name: str = "test_clip", root: Path | None = None) -> ExampleClip:
    """Read ``data/examples/NAME`` (mix, stems, categories, beats)."""
    from streamlib.audio import load_audio

    folder = Path(root or EXAMPLES_DIR) / name
    if not (folder / "clip.json").exists():
        raise FileNotFoundError(f"{folder}: no example clip (run `python -m streamlib data examples`)")
    info = json.loads((folder / "clip.json").read_text())
    sr = info["sample_rate"]
    mix, _ = load_audio(folder / "mix.flac", sr)
    stems = {s: load_audio(folder / "stems" / f"{s}.flac", sr)[0] for s in info["stems"]}
    return ExampleClip(name, sr, mix, stems, {s: v["category"] for s, v in info["stems"].items()}, info)


def export_clip(track, start_frame: int, frames: int, out: Path, max_stems: int | None = None) -> dict:
    """Write ``frames`` 50 Hz frames of ``track`` from ``start_frame`` as a clip folder; returns clip.json."""
    import soundfile as sf

    start, dur = start_frame / FRAME_RATE, frames / FRAME_RATE
    n = frames * track.rate // FRAME_RATE
    stems = track.stems[:max_stems] if max_stems else track.stems
    audio = {s.name: track.load_stem(s.name, start, dur)[:n] for s in stems}
    (out / "stems").mkdir(parents=True, exist_ok=True)
    for name, a in audio.items():
        sf.write(str(out / "stems" / f"{name}.flac"), a, track.rate, subtype="PCM_16")
    sf.write(str(out / "mix.flac"), np.clip(np.sum(list(audio.values()), axis=0), -1, 1), track.rate, subtype="PCM_16")
    synth = track.metadata.get("synth", {})
    info = {
        "source": f"{track.split}/{track.name}",
        "start_seconds": start,
        "seconds": dur,
        "sample_rate": track.rate,
        "tempo": synth.get("tempo"),
        "beats": [round(b - start, 4) for b in synth.get("beats", []) if start <= b < start + dur],
        "downbeats": [round(b - start, 4) for b in synth.get("downbeats", []) if start <= b < start + dur],
        "chords": [[round(max(a, start) - start, 4), round(min(b, start + dur) - start, 4), label]
                   for a, b, label in synth.get("chords", []) if a < start + dur and b > start],
        "stems": {s.name: {"category": s.category, "category_name": s.category_name, "program": s.program,
                           "is_drum": s.is_drum} for s in stems},
    }
    (out / "clip.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def make_examples(out: Path = EXAMPLES_DIR, seconds: float = 10.0, max_stems: int = 4) -> list[str]:
    """The shipped clips: from the book set's test split, the window where most stems play together."""
    from streamlib.data.slakh import SlakhDataset
    from streamlib.data.synth import book_dataset

    ds = SlakhDataset(book_dataset(quick=False), split="test", sample_rate=16_000)
    frames = int(seconds * FRAME_RATE)
    track = next(t for t in ds if len(t.stems) >= max_stems and t.stems[0].is_drum)
    masks = np.stack([track.active(s.name) for s in track.stems[:max_stems]])
    playing = np.convolve(masks.all(0).astype(float), np.ones(frames), mode="valid")
    start = int(np.argmax(playing[::FRAME_RATE]) * FRAME_RATE)  # whole seconds
    export_clip(track, start, frames, Path(out) / "test_clip", max_stems)
    return ["test_clip"]
