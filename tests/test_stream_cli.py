"""``python -m streamlib stream``: files, checkpoint spec checks, the written outputs, notes on the input and
the explanation of late chunks."""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from test_stream import StandIn

from streamlib.audio import input_notes, load_audio
from streamlib.checkpoint import save_weights
from streamlib.cli import main
from streamlib.codec import CausalCodec
from streamlib.commands.stream import generator_kwargs, late_explanation
from streamlib.config import StreamSpec, get_preset
from streamlib.stream import ChunkRecord, StreamResult, Timing, schedule


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


def test_guidance_streams_on_either_engine(setup, monkeypatch):
    import streamlib.model

    tmp, codec, audio = setup
    stand_in = StandIn(StreamSpec(tf=-5, k=2, window=50))
    monkeypatch.setattr(streamlib.model, "load_accompanist", lambda path: stand_in, raising=False)
    for engine, asked in (([], {"fast": True, "compile": False, "guidance": 3.0}), (["--plain"], {"guidance": 3.0})):
        out = tmp / f"guided{len(engine)}"
        assert run(["--input", audio, "--checkpoint", "ck.safetensors", "--tf", "-0.1", "--k", "0.04", "--category",
                    "bass", "--codec", codec, "--out", out, "--guidance", "3", "--no-compile", *engine]) == 0
        assert {key: stand_in.options.get(key) for key in asked} == asked
        assert len(sf.read(out / "accompaniment.wav")[0]) == 50 * 320
    args = argparse.Namespace(plain=False, no_compile=False, guidance=3.0)
    assert generator_kwargs(args)["guidance"] == 3.0 and generator_kwargs(args)["fast"] is True
    args.plain = True
    assert generator_kwargs(args) == {"guidance": 3.0}
    args.guidance = 1.0
    assert generator_kwargs(args) is None
    args.plain = False
    assert "guidance" not in generator_kwargs(args)


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


def test_a_codec_the_model_was_not_trained_on_is_a_clear_error(tmp_path, capsys):
    """``--codec`` of other codebooks than the model's (here a debug codec for a shipped accompanist) is refused
    before any work, in one line."""
    from streamlib.stream import shipped_models

    cfg = get_preset("debug").codec
    codec_path = tmp_path / "codec.safetensors"
    save_weights(codec_path, CausalCodec(cfg).model.state_dict(), {"config": dataclasses.asdict(cfg)})
    model = next(e.path for e in shipped_models() if e.kind == "streaming")
    assert run(["--input", "data/examples/test_clip/mix.flac", "--checkpoint", model, "--codec", codec_path,
                "--out", tmp_path / "o", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "another codec's tokens" in err and "Traceback" not in err and not (tmp_path / "o").exists()


def test_input_notes_say_what_was_done_to_the_file(tmp_path):
    t = np.arange(16_000) / 16_000
    plain, quiet = tmp_path / "plain.wav", tmp_path / "quiet.wav"
    sf.write(plain, 0.3 * np.sin(2 * np.pi * 220 * t), 16_000)
    sf.write(quiet, 10 ** (-70 / 20) * np.sin(2 * np.pi * 220 * t), 16_000, subtype="FLOAT")
    assert input_notes(plain, load_audio(plain, 16_000)[0], 16_000) == []
    assert input_notes(quiet, load_audio(quiet, 16_000)[0], 16_000) == [
        f"{quiet}: nearly silent (peak -70 dBFS), little to accompany"]


def timed_result(tf: int, k: int, compute_s: list[float], jitter_mean_s: float = 0.0) -> StreamResult:
    """A finished stream of ``len(compute_s)`` chunks with those compute times, on the simulated clock."""
    records = [ChunkRecord(i, i * k, k, 0, 0.0, c, 0.0, 0.0) for i, c in enumerate(compute_s)]
    timing = Timing(tau_sys=0.02, tau_jitter=0.02)
    schedule(records, tf, timing, delay=3)
    frames = len(compute_s) * k
    return StreamResult(StreamSpec(tf=tf, k=k, window=50), 16_000, np.zeros(frames * 320, np.float32),
                        torch.zeros(4, frames), np.zeros(frames * 320, np.float32), records, timing, category=0,
                        info={"delay_pattern_frames": 3, "jitter_mean_s": jitter_mean_s})


def test_late_chunks_are_explained():
    machine = {"threads": 1, "cores": 2, "load": 0.5}
    assert late_explanation(timed_result(-10, 10, [0.05] * 10), **machine) is None
    # t_f = 0: no lead at all, whatever the machine
    text = late_explanation(timed_result(0, 1, [0.001] * 10), **machine)
    assert text.startswith("10 of 10 chunks late: each chunk must be ready within -t_f - D - tau_sys = 0 - 0.06 - 0.02")
    assert "Try a checkpoint with t_f below -0.08 s, e.g. " in text and "book_tf-50_k1.safetensors" in text
    assert "--threads" not in text
    # slower than real time (each chunk 10 ms later than the one before), one thread of two, a busy machine
    text = late_explanation(timed_result(-10, 1, [0.03] * 30), threads=1, cores=2, load=3.5)
    assert text.startswith("20 of 30 chunks late: compute runs at 0.67x real time")
    assert "1 torch thread on 2 cores" in text
    assert "the machine is busy (load average 3.5 on 2 cores)" in text
    assert text.endswith("Try a checkpoint with a larger k (fewer, longer chunks); a less busy machine.")  # no
    # second thread on a busy machine: its OpenMP threads would wait for the busy core
    text = late_explanation(timed_result(-10, 1, [0.03] * 30), threads=1, cores=2, load=0.2)
    assert text.endswith("Try a checkpoint with a larger k (fewer, longer chunks); --threads 2.")
    # fast enough on average, but one stall (with injected jitter) misses its deadline
    text = late_explanation(timed_result(-10, 10, [0.05] * 9 + [0.3], jitter_mean_s=0.01), threads=2, cores=2, load=1)
    assert text.startswith("1 of 10 chunks late: the slowest chunks' compute (p99 ")
    assert "exceeds the 120 ms between a chunk's input and its play time" in text
    assert "--jitter-ms adds 10 ms per chunk on average" in text and "thread" not in text and "busy" not in text
