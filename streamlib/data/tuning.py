"""Chapter 2 (Multitrack data): is the synthesised set in tune?

Two checks, both run by the tests and shown in chapter 2:

* ``program_cents``: one note of every General MIDI program a pitched part can draw, rendered by
  FluidSynth (``streamlib.data.render``), its fundamental measured by librosa's YIN and compared
  with the written note (``streamlib.pitch.cents_off``; octave errors of the estimator folded away);
* ``stem_agreement``: for each pitched stem of a track, the share of its frames whose loudest
  chroma bin is a pitch class its own MIDI sounds (``streamlib.pitch.dominant_class_agreement``),
  and the share of chroma energy on those classes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

from streamlib.data.compose import PROGRAM_POOLS, UNPITCHED_ROLES, pitched_programs
from streamlib.data.render import render_notes
from streamlib.pitch import FRAME_RATE, cents_off, dominant_class_agreement, midi_pitch_classes, pitch_class_share

BASS_PROGRAMS = frozenset(p for _, family in PROGRAM_POOLS["bass"] for p in family)


def check_note(program: int) -> int:
    """The note a program is checked on: A2 for the bass patches, A3 for the rest."""
    return 45 if program in BASS_PROGRAMS else 57


def render_test_note(program: int, pitch: int | None = None, sample_rate: int = 16_000) -> np.ndarray:
    """0.85 s of the sustained part of one note (the attack's first 100 ms left out)."""
    pitch = check_note(program) if pitch is None else pitch
    audio = render_notes([(0.05, 1.05, pitch, 100)], program, False, sample_rate, int(1.2 * sample_rate))
    return audio[int(0.15 * sample_rate): sample_rate]


def program_cents(programs: list[int] | None = None, sample_rate: int = 16_000) -> dict[int, float]:
    """Cents between each program's rendered fundamental and its test note (default: all pitched programs)."""
    programs = pitched_programs() if programs is None else programs
    return {p: cents_off(render_test_note(p, sample_rate=sample_rate), check_note(p), sample_rate) for p in programs}


def stem_agreement(track: str | Path) -> list[dict]:
    """Per pitched stem of a synthesised track: name, part, program, agreement and share (see above)."""
    track = Path(track)
    meta = yaml.safe_load((track / "metadata.yaml").read_text())
    rows = []
    for name, info in sorted(meta["stems"].items()):
        if info.get("part") in UNPITCHED_ROLES or info["is_drum"]:
            continue
        audio, sr = sf.read(str(track / "stems" / f"{name}.flac"), dtype="float32")
        classes = midi_pitch_classes(track / "MIDI" / f"{name}.mid", int(np.ceil(len(audio) * FRAME_RATE / sr)))
        rows.append({"stem": name, "part": info.get("part"), "program": info["program_num"],
                     "agreement": dominant_class_agreement(audio, classes, sr),
                     "share": pitch_class_share(audio, classes, sr)})
    return rows


__all__ = ["BASS_PROGRAMS", "program_cents", "render_test_note", "stem_agreement", "check_note"]
