"""Configuration: time units, StreamSpec validation, presets, quick mode."""

import pytest

from streamlib import config
from streamlib.config import (
    FRAME_RATE,
    ConfigError,
    ModelConfig,
    CodecConfig,
    StreamSpec,
    get_preset,
    pick,
    quick_mode,
    to_frames,
    to_seconds,
)


@pytest.mark.parametrize(
    "value, frames",
    [(1.0, 50), (1, 50), (-0.4, -20), ("-0.4s", -20), ("20ms", 1), ("200 ms", 10), ("3f", 3), ("-7 frames", -7), (0, 0)],
)
def test_to_frames_accepts_seconds_and_frames(value, frames):
    assert to_frames(value) == frames


@pytest.mark.parametrize("value", [0.01, "0.011s", "1.5f", "abc", "1 h", None, True, float("nan"), float("inf")])
def test_to_frames_rejects_bad_values(value):
    with pytest.raises(ConfigError):
        to_frames(value)


def test_to_frames_error_names_the_value_and_the_nearest_frame():
    with pytest.raises(ConfigError, match=r"tf=0\.01 s .*nearest: 0\.0"):
        to_frames(0.01, name="tf")


def test_seconds_round_trip():
    for frames in (-100, -1, 0, 1, 25, 500):
        assert to_frames(to_seconds(frames)) == frames


def test_streamspec_from_seconds_and_tag():
    spec = StreamSpec.from_seconds(tf=-0.4, k=0.2, window=10.0)
    assert (spec.tf, spec.k, spec.window) == (-20, 10, 500)
    assert spec.tag == "tf-20_k10"
    assert StreamSpec(tf=50, k=1).tag == "tf+50_k1"
    assert spec.tf_seconds == pytest.approx(-0.4) and spec.k_seconds == pytest.approx(0.2)


@pytest.mark.parametrize(
    "kwargs",
    [dict(tf=0, k=0), dict(tf=0, k=501), dict(tf=500, k=1), dict(tf=-500, k=1), dict(tf=0.5, k=1), dict(tf=0, k=1, window=0)],
)
def test_streamspec_rejects_invalid(kwargs):
    with pytest.raises(ConfigError):
        StreamSpec(**kwargs)


def test_paper_preset_has_the_papers_numbers():
    p = get_preset("paper")
    assert p.codec.sample_rate == 32_000 and p.codec.sample_rate // p.codec.hop == FRAME_RATE
    assert p.codec.n_codebooks == 10 and p.model.n_q == 4
    assert (p.model.n_layers, p.model.n_heads, p.model.d_model) == (16, 16, 1024)
    assert p.train.batch_size == 64 and p.train.window_frames == 500
    assert p.train.peak_lr == pytest.approx(1e-4) and p.train.min_lr == pytest.approx(1e-5)


@pytest.mark.parametrize("name", ["paper", "book", "debug"])
def test_every_preset_is_consistent(name):
    p = get_preset(name)
    assert p.codec.sample_rate == p.codec.hop * FRAME_RATE
    assert p.model.n_q <= p.codec.n_codebooks
    assert p.model.d_model % p.model.n_heads == 0


def test_debug_preset_is_smaller_than_book():
    book, debug = get_preset("book"), get_preset("debug")
    assert debug.model.d_model < book.model.d_model and debug.train.steps < book.train.steps


def test_unknown_preset_and_bad_configs_raise():
    with pytest.raises(ConfigError, match="unknown preset"):
        get_preset("nope")
    with pytest.raises(ConfigError, match="divisible"):
        ModelConfig(d_model=100, n_heads=8)
    with pytest.raises(ConfigError, match="Hz"):
        CodecConfig(sample_rate=16_000, encoder_rates=(2, 4, 4, 8), decoder_rates=(8, 4, 4, 2))


def test_config_from_dict_round_trip_and_unknown_keys():
    d = config.preset_to_dict(get_preset("debug"))
    assert config.config_from_dict(CodecConfig, d["codec"]) == get_preset("debug").codec
    with pytest.raises(ConfigError, match="unknown fields"):
        config.config_from_dict(ModelConfig, {**d["model"], "bogus": 1})


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("YES", True), ("0", False), ("", False)])
def test_quick_mode_reads_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv("STREAMLIB_QUICK", value)
    assert quick_mode() is expected
    assert pick("full", "quick") == ("quick" if expected else "full")


def test_quick_mode_off_when_unset(monkeypatch):
    monkeypatch.delenv("STREAMLIB_QUICK", raising=False)
    assert quick_mode() is False


def test_seed_everything_is_reproducible():
    import torch

    config.seed_everything(3)
    a = torch.rand(4)
    config.seed_everything(3)
    assert torch.equal(a, torch.rand(4))
    assert config.get_device("cpu").type == "cpu"
