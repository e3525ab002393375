"""Jam live without sound hardware: the sample rings, a session on the software clock (its underruns
measured, and predicted by the simulated clock), the loopback latency, and ``python -m streamlib jam``
streaming 10 s, stopping on Ctrl-C and refusing bad options in one line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import torch
from test_cli import SHIPPED, assert_one_line_error, run_cli
from test_stream import StandIn

from streamlib.codec import CausalCodec
from streamlib.config import StreamSpec, get_preset
from streamlib.live import ClockPort, SampleRing, measure_latency, run_session, save_session
from streamlib.paths import REPO_ROOT

SR, HOP = 16_000, 320


@pytest.fixture(scope="module")
def codec():
    torch.manual_seed(0)
    return CausalCodec(get_preset("debug").codec)


def test_sample_ring_counts_missing_and_late_samples():
    ring = SampleRing(8)
    ring.write(0, np.arange(4, dtype=np.float32))
    assert np.array_equal(ring.read(0, 6), [0, 1, 2, 3, 0, 0]) and ring.missing == 2
    ring.write(4, np.array([4, 5, 6], dtype=np.float32))  # 4 and 5 were already played as silence
    assert ring.late == 2 and np.array_equal(ring.read(6, 2), [6, 0]) and ring.missing == 3
    with pytest.raises(ValueError, match="follow"):
        ring.write(9, np.zeros(1, dtype=np.float32))
    with pytest.raises(ValueError, match="overrun"):
        ring.write(7, np.zeros(10, dtype=np.float32))  # 9 unread samples in a ring of 8
    assert ring.wait_for(7, timeout=0.01) and not ring.wait_for(8, timeout=0.01)


class SlowStandIn(StandIn):
    """A stand-in whose generator takes ``delay(chunk index)`` seconds per chunk."""

    def __init__(self, spec, delay):
        super().__init__(spec)
        self.delay = delay

    def generator(self, category, temperature=1.0, top_k=200, **options):
        gen = super().generator(category, temperature, top_k)
        plain = gen.generate

        def generate(k):
            time.sleep(self.delay(len(gen.calls)))
            return plain(k)

        gen.generate = generate
        return gen


def test_session_on_the_software_clock_counts_its_underruns(codec):
    x = (0.3 * np.sin(2 * np.pi * 220 * np.arange(2 * SR) / SR)).astype(np.float32)
    fast = SlowStandIn(StreamSpec(tf=-10, k=5, window=50), lambda i: 0.001)
    start = time.perf_counter()
    result = run_session(fast, codec, 4, ClockPort(), input_audio=x)
    assert time.perf_counter() - start >= 2.0  # paced by the wall clock
    info = result.info
    assert info["session_s"] == pytest.approx(2.0) and len(info["played"]) == 2 * SR
    assert info["underrun_blocks"] == info["underrun_samples"] == result.n_late == info["simulated_late"] == 0
    assert np.allclose(result.input_audio, x) and len(result.records) == 20
    # the model sees no more than t + t_f + D input frames, as on the simulated clock
    assert [c[2] for c in fast.last.calls] == [max(t - 7, 0) for t in range(0, 100, 5)]

    # chunk 8 stalls for 0.35 s: it and the next ones miss the callback that needed them
    slow = SlowStandIn(StreamSpec(tf=-10, k=5, window=50), lambda i: 0.35 if i == 8 else 0.001)
    result = run_session(slow, codec, 4, ClockPort(), input_audio=x, play_mix=False)
    info = result.info
    late = [r.index for r in result.records if r.late]
    assert late and late[0] == 8 and info["underrun_blocks"] >= 5 and info["underrun_samples"] >= 5 * HOP
    assert info["late_samples"] == info["underrun_samples"]  # what was late was played as silence
    assert info["simulated_late"] >= 1  # the simulated clock, fed the same compute times, sees it too
    played = info["played"]
    assert np.abs(played[8 * 5 * HOP : 9 * 5 * HOP]).max() == 0  # silence where chunk 8 was due


def test_session_files(codec, tmp_path):
    x = np.zeros(SR, dtype=np.float32)
    result = run_session(SlowStandIn(StreamSpec(tf=-10, k=1, window=50), lambda i: 0.0), codec, 4, ClockPort(),
                         input_audio=x, seconds=0.5, play_mix=False)
    assert result.info["stopped_by"] == "0.5 s" and result.info["session_s"] == pytest.approx(0.5)
    paths = save_session(result, tmp_path)
    assert set(paths) == {"accompaniment", "mix", "input", "timing", "played"}
    assert len(sf.read(paths["played"])[0]) == SR // 2
    report = json.loads(paths["timing"].read_text())
    assert report["live"] and report["underrun_blocks"] == 0 and report["chunks"] == 25


def test_loopback_latency_of_the_software_clock_is_one_block():
    m = measure_latency(ClockPort(), SR, clicks=3, interval=0.2, block=HOP)
    assert m["latency_s"] == pytest.approx(HOP / SR) and m["spread_s"] == 0 and m["clicks"] == 3


def test_jam_streams_10_s_without_a_sound_card(tmp_path):
    song = tmp_path / "song.wav"
    t = np.arange(12 * SR) / SR
    sf.write(song, 0.3 * np.sin(2 * np.pi * 220 * t), SR)
    start = time.perf_counter()
    result = run_cli("jam", "--no-device", "--input", song, "--seconds", "10", "--checkpoint", SHIPPED.replace(
        "tf+0", "tf-50"), "--no-compile", "--quiet", "--out", tmp_path / "jam")
    assert result.returncode == 0, result.stderr
    assert time.perf_counter() - start >= 10
    assert "stopped by 10 s after 10.00 s" in result.stdout and "underruns " in result.stdout
    report = json.loads((tmp_path / "jam" / "timing.json").read_text())
    # the clock stops at 10 s whatever the engine's speed: chunks not made by then are counted, not waited for
    assert report["session_s"] == 10 and report["stopped_by"] == "10 s"
    assert report["chunks"] + report["unmade_frames"] == 500 and report["chunks"] > 0
    assert isinstance(report["underrun_blocks"], int) and report["underrun_blocks"] >= 0
    # silence played = chunks written after their time + chunks never made
    assert report["underrun_samples"] == report["late_samples"] + report["unmade_frames"] * (SR // 50)
    assert len(sf.read(tmp_path / "jam" / "played.wav")[0]) == 10 * SR


def test_jam_stops_cleanly_on_ctrl_c(tmp_path):
    song = tmp_path / "long.wav"
    sf.write(song, np.zeros(60 * SR, dtype=np.float32), SR)
    proc = subprocess.Popen([sys.executable, "-m", "streamlib", "jam", "--no-device", "--input", str(song),
                             "--checkpoint", SHIPPED.replace("tf+0", "tf-50"), "--no-compile", "--threads", "1",
                             "--quiet", "--out", str(tmp_path / "jam")],
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = time.perf_counter()
    for line in proc.stdout:  # wait until the session runs
        if line.startswith("jamming:"):
            break
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "stopped by Ctrl-C after" in out
    report = json.loads((tmp_path / "jam" / "timing.json").read_text())
    assert report["stopped_by"] == "Ctrl-C" and 1 < report["session_s"] < time.perf_counter() - started


@pytest.mark.parametrize("args,text", [
    (["jam", "--no-device"], "--no-device needs --input FILE"),
    (["jam", "--block-frames", "0"], "argument --block-frames: must be at least 1, got 0"),
    (["jam", "--play", "loud"], "argument --play: invalid choice: 'loud'"),
    (["jam", "--no-device", "--input", "nope.wav"], "nope.wav: no such file"),
])
def test_bad_jam_options_are_one_line(args, text):
    assert_one_line_error(run_cli(*args), text)
