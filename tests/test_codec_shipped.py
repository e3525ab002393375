"""The shipped codec (chapter 3): it loads, its card is complete, it reproduces the card's numbers,
and the card is checked against every item of the pitch bar of issue 15."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf
import torch

from streamlib.checkpoint import file_sha256
from streamlib.codec import default_checkpoint, find_codec, load_codec
from streamlib.codec.export import fixture_numbers, pitch_fixture_numbers

FIXTURE = Path(__file__).parent / "fixtures" / "codec_fixture.flac"
PREVIOUS = default_checkpoint().with_name("book_v3.safetensors")  # the codec the shipped accompanists were trained on
FIRST = default_checkpoint().with_name("book_v1.safetensors")  # the first book codec, a waveform DAC
KEPT = (PREVIOUS, FIRST)  # codecs kept for the accompanists trained on them


@pytest.fixture(scope="module")
def codec():
    assert default_checkpoint().exists(), f"the shipped codec {default_checkpoint()} is missing"
    return load_codec()


@pytest.fixture(scope="module")
def previous():
    return load_codec(PREVIOUS)


@pytest.fixture(scope="module")
def first():
    return load_codec(FIRST)


def test_card_is_complete(codec):
    card = codec.card
    for key in ("config", "steps", "wall_hours", "train_hardware", "data", "quality", "fixture", "weights_sha256",
                "pitch", "pitch_fixture", "speed", "reproduce"):
        assert key in card, key
    assert card["weights_sha256"] == file_sha256(default_checkpoint())
    assert default_checkpoint().stat().st_size < 20 * 2**20
    assert codec.sample_rate // codec.hop == 50


def test_card_meets_the_quality_bar(codec):
    q = codec.card["quality"]
    four = q["levels"]["4"]["mel"]
    assert four < q["untrained_codec"]["4"]["mel"]
    assert four < q["lowpass_4khz"]["mel"]
    mels = [q["levels"][k]["mel"] for k in ("1", "2", "4")]
    assert mels[0] > mels[2]  # more levels, closer to the original


def test_keeps_more_of_the_notes_than_the_previous_codecs(codec, previous, first):
    """Measured on the same held-out set (data/synth-heldout, seed 7): the card of each codec."""
    new, old, oldest = codec.card["pitch"], previous.card["pitch"], first.card["pitch"]
    for before in (old, oldest):
        assert new["chroma"]["stem_q4"] > before["chroma"]["stem_q4"]
        assert new["chroma"]["mix_q4"] > before["chroma"]["mix_q4"]
        assert new["chord_probe"]["e_x_q4"] > before["chord_probe"]["e_x_q4"]
        assert new["bass_probe"]["e_x_q4"] > before["bass_probe"]["e_x_q4"]
    # issue 15's "mel distance not worse than today": the first codec's was the codec of that day; the entropy
    # term cost 0.5 % against book_v3 (1.670 vs 1.661, docs/codec_experiments.md), so book_v3 gets a 1 % margin
    assert new["mel"]["mix_q4"] <= oldest["mel"]["mix_q4"]
    assert new["mel"]["mix_q4"] <= 1.01 * old["mel"]["mix_q4"]
    assert new["harmony"]["stem_q4"] > old["harmony"]["stem_q4"]  # the stems played back keep more chord tones
    assert new["perplexity"]["level0"] > 3 * oldest["perplexity"]["level0"]


def test_pitch_bar_met_so_far(codec):
    p = codec.card["pitch"]
    assert p["chroma"]["mix_q4"] >= 0.85  # mixes: above the bar (another song scores ~0.7 on mixes)
    assert p["chroma"]["stem_q4"] > p["chroma"]["stem_other_song"] + 0.2
    assert p["chord_probe"]["e_x_q4"] > p["chord_probe"]["majority"] + 0.05  # the tokens carry chords ...
    assert p["bass_probe"]["e_x_q4"] > p["bass_probe"]["majority"] + 0.1  # ... and bass notes


def test_pitch_bar_stems():
    """Met since the decoder was retrained with a 4-hop window (0.87; 0.84 before; docs/codec_experiments.md)."""
    assert load_codec().card["pitch"]["chroma"]["stem_q4"] >= 0.85


def test_pitch_bar_probes():
    """Met since the first level learnt the MIDI's notes (docs/codec_experiments.md)."""
    p = load_codec().card["pitch"]
    assert p["chord_probe"]["e_x_q4"] >= p["chord_probe"]["original_chroma"] - 0.10
    assert p["bass_probe"]["e_x_q4"] >= p["bass_probe"]["original_audio"] - 0.15


def test_perplexity_bar():
    """Met since an entropy term spread the first level's codes (322; 256 before, with one code for the stems'
    digital silence on 17 % of the frames; docs/codec_experiments.md, 'The codebook spread')."""
    assert load_codec().card["pitch"]["perplexity"]["level0"] > 300


def test_beat_bar(first):
    """The beat probe of e_x is not worse than the first codec's (issue 15: "not worse than today")."""
    assert load_codec().card["pitch"]["beat_probe_auc"]["e_x_q4"] >= first.card["pitch"]["beat_probe_auc"]["e_x_q4"]


def test_speed_bar():
    """Encode + decode in 1-frame chunks on one thread at >= 5x real time, as the streaming engine runs them
    (its compiled frame steps; the eager figure is on the card too)."""
    speed = load_codec().card["speed"]
    assert speed["threads"] == 1
    assert speed["x_real_time_1frame_enc_dec_compiled"] >= 5.0


def test_fixture_reproduces_card_numbers(codec):
    expected = codec.card["fixture"]
    assert file_sha256(FIXTURE) == expected["sha256"]
    audio, sr = sf.read(FIXTURE, dtype="float32")
    assert sr == codec.sample_rate
    got = fixture_numbers(codec, torch.from_numpy(audio)[None, None])
    assert got["levels"] == expected["levels"]
    assert got["mel"] == pytest.approx(expected["mel"], abs=0.02)
    assert got["mrstft"] == pytest.approx(expected["mrstft"], abs=0.02)
    assert got["si_sdr"] == pytest.approx(expected["si_sdr"], abs=1.0)


@pytest.mark.slow
def test_pitch_fixture_reproduces_card_numbers(codec):
    """The tiny set is regenerated byte for byte from its recipe; the pitch numbers follow."""
    expected = codec.card["pitch_fixture"]
    got = pitch_fixture_numbers(codec)
    for key in ("mix_q4", "stem_q4", "mix_other_song", "stem_other_song"):
        assert got["chroma"][key] == pytest.approx(expected["chroma"][key], abs=2e-3), key
    assert got["perplexity"]["level0"] == pytest.approx(expected["perplexity"]["level0"], rel=0.02)
    assert got["bass_probe"]["e_x_q4"] == pytest.approx(expected["bass_probe"]["e_x_q4"], abs=0.02)
    if "harmony" in expected:
        assert got["harmony"]["stem_q4"] == pytest.approx(expected["harmony"]["stem_q4"], abs=2e-3)


@pytest.mark.parametrize("path", [default_checkpoint(), *KEPT], ids=lambda p: p.stem)
def test_a_retrained_decoder_keeps_the_codes_and_more_of_the_harmony(path):
    """A codec whose decoder alone was retrained (its card's ``decoder_of``) makes its parent's codes, so the
    models and token caches of the parent find it (``find_codec``), and it keeps more of the stems' harmony
    than the parent's decoder on the same held-out excerpts (docs/codec_experiments.md)."""
    card = load_codec(path).card
    parent = card.get("decoder_of")
    if parent is None:
        pytest.skip(f"{path.name}: its decoder was trained with its encoder")
    assert card["codes_sha256"] != card["weights_sha256"]
    assert find_codec(card["codes_sha256"]) == path
    ours, theirs = card["pitch"]["harmony"], parent["pitch_harmony"]
    assert ours["stem_original"] == pytest.approx(theirs["stem_original"])  # the same excerpts
    assert ours["stem_q4"] > theirs["stem_q4"]


@pytest.mark.parametrize("path", KEPT, ids=lambda p: p.stem)
def test_previous_codecs_are_kept_for_the_models_trained_on_them(path):
    card = load_codec(path).card
    assert find_codec(card.get("codes_sha256", card["weights_sha256"])) == path
