"""Streaming engine: visibility, deadline accounting on a fake clock, bad input, spec checks."""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from streamlib.audio import AudioError
from streamlib.codec import CausalCodec
from streamlib.config import ConfigError, StreamSpec, get_preset
from streamlib.stream import ChunkRecord, ExponentialJitter, StreamError, Timing, check_spec, schedule, stream

SR, HOP = 16_000, 320


class RecordingGenerator:
    """A stand-in with the generator API that records what it had seen at every generate call."""

    def __init__(self, n_q: int, codebook_size: int, tf: int):
        self.n_q, self.size, self.tf = n_q, codebook_size, tf
        self.n_input = 0
        self.n_output = 0
        self.calls: list[tuple[int, int, int]] = []  # (first output frame, k, input frames held)
        self.forced = None

    def feed_input(self, codes: torch.Tensor) -> None:
        assert codes.dim() == 2 and codes.shape[0] == self.n_q
        self.n_input += codes.shape[1]

    def feed_output(self, codes: torch.Tensor) -> None:
        self.forced = codes.clone()
        self.n_output += codes.shape[1]

    def generate(self, k: int) -> torch.Tensor:
        self.calls.append((self.n_output, k, self.n_input))
        self.n_output += k
        return torch.randint(0, self.size, (self.n_q, k))


class StandIn:
    def __init__(self, spec: StreamSpec, n_q: int = 4, codebook_size: int = 64):
        self.spec, self.cfg = spec, SimpleNamespace(n_q=n_q)
        self.size = codebook_size
        self.last = None
        self.options: dict = {}  # the generator options of the last stream (fast, guidance, ...)

    def generator(self, category, temperature=1.0, top_k=200, **options):
        self.options = options
        self.last = RecordingGenerator(self.cfg.n_q, self.size, self.spec.tf)
        return self.last


@pytest.fixture(scope="module")
def codec():
    torch.manual_seed(0)
    return CausalCodec(get_preset("debug").codec)


def tone(seconds: float, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


@pytest.mark.parametrize("tf,k", [(-7, 1), (-3, 4), (0, 1), (0, 5), (4, 1), (6, 3)])
def test_never_sees_beyond_t_plus_tf(codec, tf, k):
    acc = StandIn(StreamSpec(tf=tf, k=k, window=50))
    res = stream(acc, codec, tone(0.6), category=0)
    calls = acc.last.calls
    n_in, lag = 30, 3  # the delay pattern's D = n_q - 1 for 4 levels
    assert res.frames == n_in - max(tf + lag, 0)
    assert [c[0] for c in calls] == list(range(0, res.frames, k))
    for start, _, held in calls:
        assert held == min(max(start + tf + lag, 0), n_in)  # exactly x(1 : t + t_f + D), never more
    assert [r.input_visible for r in res.records] == [c[2] for c in calls]
    assert res.accompaniment.shape == (res.frames * HOP,)
    assert res.codes.shape == (4, res.frames)


def test_prompt_warm_start_forces_ground_truth(codec):
    acc = StandIn(StreamSpec(tf=-5, k=2, window=50))
    truth = tone(0.6) * 0.5
    res = stream(acc, codec, tone(0.6), category=3, prompt_audio=truth, prompt_seconds=0.2)
    gen = acc.last
    expected = codec.encode(torch.from_numpy(truth[: 10 * HOP])[None, None], n_q=4)[0]
    assert torch.equal(gen.forced, expected)
    assert torch.equal(res.codes[:, :10], expected)
    assert gen.calls[0][0] == 10 and gen.calls[0][2] == 8  # streaming starts at t = L, seeing L + t_f + D
    assert res.prompt_frames == 10 and res.streamed_frames == 20


def fake_clock(step: float):
    counter = itertools.count()
    return lambda: next(counter) * step


def test_fake_clock_and_jitter_drive_deadlines(codec):
    # every clock read advances 2 ms: encode, generate and decode each measure 2 ms -> 6 ms per chunk
    acc = StandIn(StreamSpec(tf=-8, k=1, window=50))  # lead 0.16 s, 0.1 s after the delay pattern's 0.06 s
    jitter = {3: 0.2}  # one chunk stalls for 200 ms
    res = stream(acc, codec, tone(0.4), category=0, timing=Timing(tau_sys=0.05, tau_jitter=0.03),
                 jitter=lambda i: jitter.get(i, 0.0), clock=fake_clock(0.002))
    recs = res.records
    assert all(math.isclose(r.encode_s + r.generate_s + r.decode_s, 0.006) for r in recs)
    first = recs[0]
    assert math.isclose(first.slack_s, 0.1 - 0.006 - 0.05)  # lead - compute - tau_sys
    assert not first.late and not first.unsafe  # 44 ms slack > 30 ms margin
    assert recs[3].late and recs[3].unsafe
    # the stall delays the chunks queued behind it, then the stream catches up (6 ms per 20 ms frame)
    assert recs[4].late and recs[4].compute_start_s == pytest.approx(recs[3].ready_s)
    assert not recs[-1].late
    assert res.n_late == sum(r.slack_s < 0 for r in recs) >= 2
    assert res.x_real_time == pytest.approx((res.frames * 0.02) / (res.frames * 0.006 + 0.2))


def test_schedule_throughput_failure_accumulates():
    recs = [ChunkRecord(i, 2 * i, 2, 0, 0.0, 0.05, 0.0, 0.0) for i in range(30)]  # 50 ms per 40 ms chunk
    schedule(recs, tf=-10, timing=Timing())
    slacks = [r.slack_s for r in recs]
    assert all(b < a for a, b in zip(slacks[1:], slacks[2:]))  # lateness grows once queued
    assert recs[-1].late and not recs[0].late


def test_zero_and_positive_tf_are_always_late():
    for tf in (0, 5):
        recs = [ChunkRecord(i, i, 1, 0, 0.0, 1e-4, 0.0, 0.0) for i in range(5)]
        schedule(recs, tf=tf, timing=Timing())
        assert all(r.late for r in recs)


def test_exponential_jitter_is_seeded_and_positive():
    a, b = ExponentialJitter(0.01, seed=1), ExponentialJitter(0.01, seed=1)
    draws = [a(i) for i in range(200)]
    assert draws == [b(i) for i in range(200)]
    assert min(draws) >= 0 and 0.007 < np.mean(draws) < 0.013
    with pytest.raises(ConfigError):
        ExponentialJitter(-1.0)
    with pytest.raises(ConfigError):
        Timing(tau_sys=-0.1)


def test_bad_input(codec):
    acc = StandIn(StreamSpec(tf=0, k=1, window=50))
    bad = tone(0.2)
    bad[10] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        stream(acc, codec, bad, category=0)
    with pytest.raises(AudioError, match="mono"):
        stream(acc, codec, np.zeros((2, 3200), np.float32), category=0)
    with pytest.raises(StreamError, match="too short"):
        stream(StandIn(StreamSpec(tf=20, k=1, window=50)), codec, tone(0.2), category=0)
    with pytest.raises(StreamError, match="prompt"):
        stream(acc, codec, tone(0.2), category=0, prompt_seconds=0.1)


def test_mismatched_spec(codec):
    spec = StreamSpec(tf=-10, k=5, window=50)
    check_spec(spec, -10, 5)
    with pytest.raises(StreamError, match="t_f = -0.2 s"):
        check_spec(spec, -5, 5)
    with pytest.raises(StreamError, match="k = 0.1 s"):
        check_spec(spec, -10, 1)
    with pytest.raises(StreamError):
        stream(StandIn(spec), codec, tone(0.4), category=0, spec=StreamSpec(tf=0, k=5, window=50))


@pytest.mark.parametrize("tf,k", [(-6, 1), (-4, 3), (2, 2)])
def test_real_accompanist_streams(codec, tf, k):
    """The engine drives the real KV-cache generator: shapes, visibility, and determinism per seed."""
    from streamlib.model import Accompanist

    torch.manual_seed(0)
    preset = get_preset("debug")
    acc = Accompanist(preset.model, codec.codebook_tables(4), StreamSpec(tf=tf, k=k, window=50)).eval()
    a = stream(acc, codec, tone(0.5), category=4, seed=3)
    b = stream(acc, codec, tone(0.5), category=4, seed=3)
    assert torch.equal(a.codes, b.codes)
    assert a.codes.shape == (4, 25 - max(tf + 3, 0))
    assert all(r.input_visible == max(r.start + tf + 3, 0) for r in a.records)


def test_threads_are_measured_and_never_more_than_the_free_cores():
    from streamlib.stream import choose_threads

    calls = []

    def measure(times):
        return lambda n: calls.append(n) or times[n]

    choice = choose_threads(measure({1: 0.010, 2: 0.0095}), cores=2, load=0.2)
    assert calls == [1, 2] and choice.threads == 1  # 5 % faster does not pay for a second thread
    assert choice.reason.startswith("1 thread: measured compute per frame with 1: 10.0 ms, 2: 9.5 ms")
    assert choose_threads(measure({1: 0.010, 2: 0.006}), cores=2, load=0.2).threads == 2
    calls.clear()
    choice = choose_threads(measure({1: 0.010, 2: 0.001}), cores=2, load=1.6)  # one core is taken
    assert calls == [1] and choice.threads == 1 and "leaves one core free" in choice.reason
