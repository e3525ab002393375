"""The shipped codec (chapter 3): it loads, its card is complete, and it reproduces the card's numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf
import torch

from streamlib.checkpoint import file_sha256
from streamlib.codec import default_checkpoint, load_codec
from streamlib.codec.export import fixture_numbers

FIXTURE = Path(__file__).parent / "fixtures" / "codec_fixture.flac"


@pytest.fixture(scope="module")
def codec():
    assert default_checkpoint().exists(), f"the shipped codec {default_checkpoint()} is missing"
    return load_codec()


def test_card_is_complete(codec):
    card = codec.card
    for key in ("config", "steps", "wall_hours", "train_hardware", "data", "quality", "fixture", "weights_sha256"):
        assert key in card, key
    assert card["weights_sha256"] == file_sha256(default_checkpoint())
    assert default_checkpoint().stat().st_size < 10 * 2**20  # "a few MB"
    assert codec.sample_rate // codec.hop == 50


def test_card_meets_the_quality_bar(codec):
    q = codec.card["quality"]
    four = q["levels"]["4"]["mel"]
    assert four < q["untrained_codec"]["4"]["mel"]
    assert four < q["lowpass_4khz"]["mel"]
    mels = [q["levels"][k]["mel"] for k in ("1", "2", "4")]
    assert mels[0] > mels[2]  # more levels, closer to the original


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
