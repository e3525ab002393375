"""Harmonic agreement (chapter 9): known answers with an independent renderer (FluidSynth)."""

import numpy as np
import pytest

from streamlib.data.render import render_notes
from streamlib.metrics.harmony import harmonic_agreement
from streamlib.pitch import parse_chord

SR = 16_000


def _chord(pitches, seconds=2.0, program=0):
    return render_notes([(0.0, seconds, p, 90) for p in pitches], program, False, SR, int(seconds * SR))


def test_a_chord_agrees_with_itself_and_not_with_a_tritone_away():
    c_major = _chord([48, 52, 55, 60])
    assert harmonic_agreement(c_major, [[0.0, 2.0, "C:maj"]], SR) > 0.45  # harmonics and decay spill over
    assert harmonic_agreement(c_major, [[0.0, 2.0, "F#:maj"]], SR) < 0.2


def test_chord_changes_and_offsets_are_followed():
    audio = np.concatenate([_chord([45, 52, 57, 60]), _chord([43, 50, 55, 59])])  # A minor, then G major
    chords = [[10.0, 12.0, "A:min"], [12.0, 14.0, "G:maj"]]
    assert harmonic_agreement(audio, chords, SR, offset_seconds=10.0) > 0.45
    swapped = [[10.0, 12.0, "G:maj"], [12.0, 14.0, "A:min"]]
    assert harmonic_agreement(audio, swapped, SR, offset_seconds=10.0) < harmonic_agreement(audio, chords, SR, 10.0) - 0.2


def test_chord_labels():
    assert parse_chord("A:min") == (9, (9, 0, 4))
    assert parse_chord("Bb:7") == (10, (10, 2, 5, 8))
    assert parse_chord("N") == (-1, ())
    with pytest.raises(ValueError, match="quality"):
        parse_chord("C:sus13")
