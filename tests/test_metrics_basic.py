"""Known-answer tests for streamlib.metrics (mixing, FAD, pairing, beat F1)."""

import numpy as np
import pytest

from streamlib.audio import AudioError
from streamlib.metrics import bootstrap_ci, fad, frechet_distance, loudness, mix_tracks, random_pairing
from streamlib.metrics.pairing import PairingError

SR = 16000


def test_mix_is_minus18_lufs_and_silent_target_kept_silent():
    t = np.arange(2 * SR) / SR
    a, b = 0.05 * np.sin(2 * np.pi * 220 * t), 0.6 * np.sin(2 * np.pi * 330 * t)
    assert abs(loudness(mix_tracks([a], b, SR), SR) + 18) < 0.05
    assert np.allclose(mix_tracks([a], np.zeros_like(a), SR), mix_tracks([a * 3], np.zeros_like(a), SR), atol=1e-6)
    assert not mix_tracks([np.zeros_like(a)], np.zeros_like(a), SR).any()
    with pytest.raises(AudioError):
        mix_tracks([a[:100]], b[:100], SR)


def test_frechet_closed_form_and_identity():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50000, 2))
    b = rng.normal(size=(50000, 2)) * 2 + 1  # mu diff^2 = 2, each dim: 1 + 4 - 2*2 = 1
    assert frechet_distance(a, a) < 1e-9
    assert abs(frechet_distance(a, b) - 4.0) < 0.1


def test_fad_noise_raises_and_reports_n():
    rng = np.random.default_rng(1)
    x = [0.1 * rng.normal(size=SR).astype(np.float32) for _ in range(3)]
    same = fad(x, x, SR)
    noisy = fad(x, [xx + 0.3 * rng.normal(size=SR).astype(np.float32) for xx in x], SR)
    assert same["fad"] < 1e-6 and noisy["fad"] > 1.0
    assert same["embedding"] == "logmel64-16k" and same["n_generated"] == same["n_reference"] > 0


def test_pairing_and_bootstrap():
    p = random_pairing([0, 0, 1, 1, 1], seed=0)
    assert all(p[i] != i for i in range(5)) and set(p[:2]) <= {0, 1} and set(p[2:]) <= {2, 3, 4}
    with pytest.raises(PairingError):
        random_pairing([0, 1])
    lo, hi = bootstrap_ci(np.random.default_rng(0).normal(5, 1, 400))
    assert lo < 5 < hi and hi - lo < 0.3


def test_beat_f1_click_tracks():
    from streamlib.metrics.beats import beat_f1, beat_f1_from_beats, click_track, track_beats

    a = click_track(120, 10, SR)
    assert beat_f1_from_beats(np.arange(0, 10, 0.5), track_beats(a, SR)) > 0.9
    assert beat_f1(a, a, SR) > 0.95
    assert beat_f1(a, click_track(120, 10, SR, offset_s=0.25), SR) < 0.2
