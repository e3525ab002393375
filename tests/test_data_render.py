"""The synthesised set is in tune: FluidSynth renders every pitched program at its written pitch,
and each pitched stem of a synthesised song agrees with its own MIDI (chapter 2)."""

import numpy as np
import pytest

from streamlib.data.render import render_notes
from streamlib.data.synth import Recipe, synthesize
from streamlib.data.tuning import program_cents, render_test_note, stem_agreement
from streamlib.pitch import cents_off

SR = 16_000


def test_every_pitched_program_is_within_20_cents():
    off = program_cents()
    bad = {p: round(c, 1) for p, c in off.items() if abs(c) > 20}
    assert not bad, f"programs out of tune (cents): {bad}"
    assert len(off) >= 90


def test_cents_off_detects_a_semitone():
    """The measurement can fail: a note rendered a semitone above the one asked for is ~100 cents off."""
    assert abs(cents_off(render_test_note(0, 58), 57, SR) - 100) < 20


def test_rendering_is_deterministic_and_exact_length():
    a = render_notes([(0.0, 0.5, 60, 90), (0.25, 0.9, 64, 80)], 0, False, SR, 20_000)
    b = render_notes([(0.0, 0.5, 60, 90), (0.25, 0.9, 64, 80)], 0, False, SR, 20_000)
    assert a.shape == (20_000,) and a.dtype == np.float32 and np.array_equal(a, b) and np.abs(a).max() > 0.01
    drums = render_notes([(0.0, 0.1, 36, 100)], 0, True, SR, 8_000)
    assert np.abs(drums).max() > 0.01


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    out = tmp_path_factory.mktemp("tuned")
    synthesize(out, Recipe(tracks=2, seed=11, min_seconds=20.0, max_seconds=30.0), progress=False)
    return sorted(out.glob("train/Track*"))


def test_pitched_stems_agree_with_their_midi(songs):
    rows = [r for track in songs for r in stem_agreement(track)]
    scores = {f"{r['stem']} {r['part']} {r['program']}": r["agreement"] for r in rows}
    assert len(scores) >= 4
    # in tune: ~0.9 on average (a distorted guitar's strong fifth can lead in a third of its frames);
    # the out-of-tune renderer this replaced scored ~0.3 on average and 0.0 on many stems
    assert np.mean(list(scores.values())) > 0.75, scores
    assert min(scores.values()) > 0.25, scores
