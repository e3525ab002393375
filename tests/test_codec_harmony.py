"""The codec's harmony ceiling (chapter 3, ``streamlib.codec.pitch_eval.harmony_ceiling``): known answers
with FluidSynth-rendered chords and stand-in codecs whose reconstructions are known."""

import numpy as np
import pytest
import torch

from streamlib.codec.pitch_eval import Excerpt, harmony_ceiling
from streamlib.data.render import render_notes

SR = 16_000
HOP = SR // 50


def _chord(pitches, seconds=2.0):
    return render_notes([(0.0, seconds, p, 90) for p in pitches], 0, False, SR, int(seconds * SR)).astype(np.float32)


class StandIn:
    """A "codec" whose codes name the excerpt and whose decoder returns ``decode(audio)`` of it."""

    sample_rate = SR

    def __init__(self, excerpts, decode):
        self.audio = [e.audio for e in excerpts]
        self._decode = decode

    def encode(self, x, sample_rate=None):
        i = next(j for j, a in enumerate(self.audio) if np.array_equal(a, x.reshape(-1).numpy()))
        return torch.full((1, 4, x.shape[-1] // HOP), i, dtype=torch.long)

    def decode(self, codes):
        return torch.from_numpy(self._decode(self.audio[int(codes[0, 0, 0])]))[None, None]


def _excerpts():
    chords = {"c": [[0.0, 20.0, "C:maj"]], "fs": [[0.0, 20.0, "F#:maj"]]}
    out = []
    for i, (song, pitches) in enumerate([("c", [48, 52, 55]), ("fs", [54, 58, 61])] * 4):
        out.append(Excerpt(f"Track{i}", "comp", _chord(pitches), 10.0, {"synth": {"chords": chords[song]}}))
    return out


def test_a_lossless_codec_keeps_the_harmony_and_the_floor_is_lower():
    ex = _excerpts()
    h = harmony_ceiling(StandIn(ex, lambda a: a), ex)
    assert h["stem_q4"] == h["stem_original"] > 0.45
    assert h["stem_other_song"] < 0.2  # index + 7 is the other key's song


def test_a_codec_that_smears_the_pitch_loses_harmony():
    ex = _excerpts()
    rng = np.random.default_rng(0)
    noisy = lambda a: (a + 3 * np.std(a) * rng.standard_normal(a.shape)).astype(np.float32)  # noqa: E731
    h = harmony_ceiling(StandIn(ex, noisy), ex)
    assert h["stem_q4"] < h["stem_original"] - 0.15
    assert h["by_part"]["comp"]["n"] == len(ex)  # every excerpt here is a comp part
    assert h["by_part"]["comp"]["q4"] == pytest.approx(h["stem_q4"])
    assert h["by_part"]["comp"]["original"] == pytest.approx(h["stem_original"])
