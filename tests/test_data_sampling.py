"""Silence filter and example sampler against hand-computed cases; determinism across workers."""

import numpy as np
import pytest
import torch

from streamlib.data.sampling import (
    ExampleDataset, SamplingError, active_frames, choose_inputs, draw_example, frame_rms_db, make_loader,
    overlap_fraction, windows_overlap_ok)
from streamlib.data.slakh import SlakhDataset
from streamlib.data.synth import Recipe, synthesize

SR = 16_000


def _sine(freq, amp, seconds=3.0):
    t = np.arange(int(seconds * SR)) / SR
    return amp * np.sin(2 * np.pi * freq * t)


def test_rms_of_sines_matches_hand_computation():
    # a 1 kHz sine (A-weighting 0 dB) of amplitude a has RMS a/sqrt(2)
    for amp in (0.5, 0.01):
        db = frame_rms_db(_sine(1000, amp), SR)
        assert len(db) == 150
        assert np.allclose(db[5:-5], 20 * np.log10(amp / np.sqrt(2)), atol=0.02)
    # 100 Hz is attenuated by 19.1 dB under A-weighting, not without it (the Hann window spreads the
    # tone over the 75 / 100 / 125 Hz bins of a 640-point FFT, so the measured weight is ~0.25 dB off)
    low = frame_rms_db(_sine(100, 0.5), SR)[75]
    assert abs(low - (20 * np.log10(0.5 / np.sqrt(2)) - 19.14)) < 0.3
    assert abs(frame_rms_db(_sine(100, 0.5), SR, a_weighting=False)[75] - 20 * np.log10(0.5 / np.sqrt(2))) < 0.05


def test_threshold_and_frame_alignment():
    quiet = _sine(1000, np.sqrt(2) * 10 ** (-63 / 20))  # -63 dB: silent
    loud = _sine(1000, np.sqrt(2) * 10 ** (-57 / 20))  # -57 dB: active
    assert not active_frames(quiet, SR).any() and active_frames(loud, SR)[1:-1].all()
    assert active_frames(quiet, SR, threshold_db=-70)[1:-1].all()
    # sound in [1 s, 2 s): hop cells 50..99, plus the two half-overlapping neighbours (n_fft = 2 hops)
    x = np.zeros(3 * SR)
    x[SR:2 * SR] = _sine(1000, 0.5, 1.0)
    assert np.flatnonzero(active_frames(x, SR)).tolist() == list(range(49, 101))
    assert len(active_frames(np.ones(SR + 1), SR)) == 51  # ceil(samples / hop)
    with pytest.raises(ValueError, match="multiple"):
        active_frames(x, 22_051)


def test_overlap_rule():
    a = np.array([1, 1, 0, 0], bool)
    b = np.array([1, 0, 1, 0], bool)
    assert overlap_fraction(a, b) == 0.25
    assert not windows_overlap_ok(a, b) and windows_overlap_ok(a, b, min_overlap=0.25)
    assert windows_overlap_ok(a, a)  # exactly 50 % is accepted
    with pytest.raises(ValueError):
        overlap_fraction(a, b[:3])


def test_choose_inputs():
    rng = np.random.default_rng(0)
    assert choose_inputs(rng, 5, 2, "public") == (0, 1, 3, 4)
    sizes = set()
    for _ in range(300):
        chosen = choose_inputs(rng, 5, 2, "paper")
        assert 2 not in chosen and 1 <= len(chosen) <= 4 and len(set(chosen)) == len(chosen)
        sizes.add(len(chosen))
    assert sizes == {1, 2, 3, 4}  # N_in ~ U{1..N-1}
    with pytest.raises(ValueError, match="policy"):
        choose_inputs(rng, 3, 0, "both")
    with pytest.raises(SamplingError):
        choose_inputs(rng, 1, 0)


def test_draw_example_hand_cases():
    n = 300
    always = np.ones(n, bool)
    early = np.zeros(n, bool)
    early[:100] = True  # the target plays in frames 0..99 only
    for seed in range(20):
        ex = draw_example(np.random.default_rng(seed), [16, 17, 4], [always, always, early], 100, max_retries=100)
        assert ex.target == 2 and ex.category == 4  # Vocal (16) / Unknown (17) are never targets
        assert ex.start <= 50 and ex.overlap == (100 - ex.start) / 100 >= 0.5
    # the same generator state gives the same example
    a = draw_example(np.random.default_rng(3), [0, 4, 3], [always] * 3, 100)
    b = draw_example(np.random.default_rng(3), [0, 4, 3], [always] * 3, 100)
    assert a == b
    silent = np.zeros(n, bool)
    with pytest.raises(SamplingError, match="5 tries"):
        draw_example(np.random.default_rng(0), [0, 4], [silent, always], 100, max_retries=5)
    with pytest.raises(SamplingError, match="window needs"):
        draw_example(np.random.default_rng(0), [0, 4], [always, always], 400)
    with pytest.raises(SamplingError, match="target category"):
        draw_example(np.random.default_rng(0), [16, 17], [always, always], 100)


def test_draw_example_keeps_to_the_allowed_targets():
    """A one-instrument accompanist (``train --targets Bass``) is evaluated on its instrument only."""
    always = np.ones(300, bool)
    cats = [0, 4, 3, 14]
    drawn = {draw_example(np.random.default_rng(s), cats, [always] * 4, 100).category for s in range(40)}
    assert drawn == set(cats)
    for s in range(20):
        ex = draw_example(np.random.default_rng(s), cats, [always] * 4, 100, allowed=(4,))
        assert ex.target == 1 and ex.category == 4 and 1 not in ex.inputs
    with pytest.raises(SamplingError, match=r"allowed here: \[5\]"):
        draw_example(np.random.default_rng(0), cats, [always] * 4, 100, allowed=(5,))


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("sampling") / "set"
    synthesize(root, Recipe(tracks=3, seed=2, min_seconds=8.0, max_seconds=10.0), progress=False)
    return SlakhDataset(root, sample_rate=SR)


def test_example_dataset_deterministic_and_workers(tiny_set):
    ds = ExampleDataset(tiny_set, window_seconds=4.0, length=6, seed=1)
    item = ds[0]
    assert item["input"].shape == item["target"].shape == (1, 4 * SR)
    assert item["input"].abs().max() > 0 and item["target"].abs().max() > 0
    again = ExampleDataset(tiny_set, window_seconds=4.0, length=6, seed=1)[0]
    assert torch.equal(item["input"], again["input"]) and item["category"] == again["category"]
    ex = ds.example(0)
    track = tiny_set[ex.track]
    masks = [track.active(s.name)[ex.start:ex.start + ex.frames] for s in track.stems]
    assert windows_overlap_ok(np.any([masks[i] for i in ex.inputs], axis=0), masks[ex.target])
    serial = list(make_loader(ds, batch_size=3, num_workers=0))
    parallel = list(make_loader(ds, batch_size=3, num_workers=2))
    for a, b in zip(serial, parallel):
        assert torch.equal(a["input"], b["input"]) and torch.equal(a["category"], b["category"])
    ds.set_epoch(1)
    assert ds.example(0) != ex
    public = ExampleDataset(tiny_set, window_seconds=4.0, length=2, seed=1, policy="public")
    ex_p = public.example(0)
    assert len(ex_p.inputs) == len(tiny_set[ex_p.track].stems) - 1


def test_example_dataset_needs_rate_and_window(tiny_set, tmp_path):
    with pytest.raises(ValueError, match="sample_rate"):
        ExampleDataset(SlakhDataset(tiny_set.root), 4.0)
    too_long = ExampleDataset(tiny_set, window_seconds=60.0, length=1, max_tracks=3)
    with pytest.raises(SamplingError, match="no usable track"):
        too_long[0]
