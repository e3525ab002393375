"""Chapter 9 (Evaluation): does a generated stem play the song's chords? (beyond the paper)

``harmonic_agreement(audio, chords)``: the share of the stem's chroma energy (``streamlib.pitch``)
that lies on the tones of the chord sounding at that moment, over the frames that have a chord.
The synthesised set knows its chords (``metadata.yaml`` -> ``synth.chords``); for Slakh2100 they
can be read off the MIDI. Reference points: the true stem of the song (the ceiling) and a stem
of another song (the random-pairing floor). A triad covers 3 of 12 pitch classes, so a stem with
flat chroma scores 0.25 and one playing only chord tones approaches 1 (less the harmonics that
fall outside the chord).
"""

from __future__ import annotations

import numpy as np

from streamlib.pitch import FRAME_RATE, chord_frames, pitch_class_share


def harmonic_agreement(audio, chords: list, sample_rate: int, offset_seconds: float = 0.0) -> float:
    """Share of chroma energy on the current chord's tones; ``chords`` as ``[[start_s, end_s, label], ...]``
    in song time, ``audio`` starting ``offset_seconds`` into the song."""
    n = int(np.ceil(np.asarray(audio).shape[-1] * FRAME_RATE / sample_rate))
    offset = int(round(offset_seconds * FRAME_RATE))
    _, tones = chord_frames(chords, offset + n)
    return pitch_class_share(audio, tones[:, offset:], sample_rate)


__all__ = ["harmonic_agreement"]
