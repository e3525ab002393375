"""``python -m streamlib stream``: files, checkpoint spec checks and the written outputs."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from test_stream import StandIn

from streamlib.checkpoint import save_weights
from streamlib.cli import main
from streamlib.codec import CausalCodec
from streamlib.config import StreamSpec, get_preset


@pytest.fixture()
def setup(tmp_path, monkeypatch):
    """A saved debug codec, and load_accompanist answering with a stand-in trained for (t_f=-5, k=2)."""
    import streamlib.model

    torch.manual_seed(0)
    cfg = get_preset("debug").codec
    codec_path = tmp_path / "codec.safetensors"
    save_weights(codec_path, CausalCodec(cfg).model.state_dict(), {"config": dataclasses.asdict(cfg)})
    monkeypatch.setattr(streamlib.model, "load_accompanist", lambda path: StandIn(StreamSpec(tf=-5, k=2, window=50)),
                        raising=False)
    audio = tmp_path / "in.wav"
    t = np.arange(44_100) / 44_100
    sf.write(audio, np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)], 1) * 0.3, 44_100)  # stereo 44.1k
    return tmp_path, codec_path, audio


def run(args):
    return main(["stream", *map(str, args)])


def test_stream_writes_outputs(setup, capsys):
    tmp, codec, audio = setup
    out = tmp / "out"
    assert run(["--input", audio, "--checkpoint", "ck.safetensors", "--tf", "-0.1", "--k", "0.04", "--category", "bass",
                "--codec", codec, "--out", out]) == 0
    assert "x real time" in capsys.readouterr().out
    acc, sr = sf.read(out / "accompaniment.wav")
    assert sr == 16_000 and len(acc) == 50 * 320  # resampled, downmixed, 1 s
    mix, _ = sf.read(out / "mix.wav")
    assert len(mix) == len(acc) and np.abs(mix).max() > 0
    report = json.loads((out / "timing.json").read_text())
    assert report["tf_frames"] == -5 and report["k_frames"] == 2 and report["category"] == 4
    assert report["chunks"] == 25 and len(report["records"]) == 25 and report["x_real_time"] > 0


def test_stream_errors_are_clear(setup, capsys):
    tmp, codec, audio = setup
    bad = tmp / "bad.wav"
    bad.write_text("not audio")
    base = ["--checkpoint", "ck.safetensors", "--codec", codec, "--out", tmp / "o"]
    assert run(["--input", bad, *base]) == 2
    assert "cannot read audio" in capsys.readouterr().err
    assert run(["--input", tmp / "missing.wav", *base]) == 2
    assert "no such file" in capsys.readouterr().err
    assert run(["--input", audio, "--tf", "0.2", *base]) == 2
    assert "trained with t_f = -0.1 s" in capsys.readouterr().err
    assert run(["--input", audio, "--k", "1", *base]) == 2
    assert "k = 0.04 s" in capsys.readouterr().err
    assert run(["--input", audio, "--tf", "0.013", *base]) == 2
    assert "whole number" in capsys.readouterr().err
    assert run(["--input", audio, "--category", "Vocal", *base]) == 2
    assert "not a generation target" in capsys.readouterr().err
    assert run(["--input", audio, "--category", "kazoo", *base]) == 2
    assert "unknown category" in capsys.readouterr().err
