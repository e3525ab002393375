"""Solutions to ``book/exercises/08_streamed_generation.ipynb`` (chapter 8, "Streamed generation": the
simulated clock, deadlines and slack of ``streamlib.stream.schedule``)."""

from __future__ import annotations

from streamlib.solutions import Exercise, close, same_function


def slacks(compute_s: list[float], tf: int, k: int, n_q: int, tau_sys: float, frame_rate: int = 50) -> list[float]:
    """08.3: the slack (s) of each chunk of ``k`` frames: chunk i starts at frame t = i k; its input is
    ready at (t + t_f + n_q - 1) / rate, it computes after the previous chunk is ready, is heard tau_sys
    after it is ready, and is due at t / rate. Slack = due - heard (negative: late)."""
    out, free_at = [], float("-inf")
    for i, c in enumerate(compute_s):
        t = i * k
        start = max((t + tf + n_q - 1) / frame_rate, free_at)
        free_at = start + c
        out.append(t / frame_rate - (free_at + tau_sys))
    return out


def ex1() -> float:
    # t_f = -0.5 s with 8 levels: the delay pattern eats 7 frames = 0.14 s of the 0.5 s lead
    return 0.5 - 0.14


def ex2() -> int:
    # lead 0.2 - 0.06 = 0.14 s; 25 ms of compute per 20 ms frame adds 5 ms of backlog per chunk:
    # slack_i = 0.14 - 0.025 - 0.05 - 0.005 i < 0  <=>  i > 13  ->  chunk 14 is the first late one
    return 14


def _expected1() -> float:
    from streamlib.tokens.delay import added_latency_frames

    return 0.5 - added_latency_frames(8) / 50


def _records(compute_s: list[float], k: int):
    from streamlib.stream import ChunkRecord

    return [ChunkRecord(index=i, start=i * k, frames=k, input_visible=0, encode_s=0.0, generate_s=c,
                        decode_s=0.0, jitter_s=0.0) for i, c in enumerate(compute_s)]


def _lib_slacks(compute_s, tf, k, n_q, tau_sys) -> list[float]:
    from streamlib.stream import Timing, schedule

    records = _records(compute_s, k)
    schedule(records, tf, Timing(tau_sys=tau_sys, tau_jitter=0.0), delay=n_q - 1)
    return [r.slack_s for r in records]


def _expected2() -> int:
    slack = _lib_slacks([0.025] * 100, -10, 1, 4, 0.05)
    return next(i for i, s in enumerate(slack) if s < 0)


def _cases():
    import numpy as np

    rng = np.random.default_rng(0)
    for tf, k, n_q, tau in ((-10, 1, 4, 0.05), (-50, 10, 4, 0.02), (0, 1, 4, 0.0), (5, 5, 8, 0.1), (-3, 2, 1, 0.01)):
        yield list(rng.uniform(0.0, 0.04 * k, 30)), tf, k, n_q, tau


EXERCISES = [
    Exercise("08.1", "compute", "the time left per frame at t_f = -0.5 s with 8 levels", ex1, _expected1, close()),
    Exercise("08.2", "explore", "the first late chunk when compute is 25 ms per 20 ms frame", ex2, _expected2),
    Exercise("08.3", "implement", "the simulated clock: slack per chunk", lambda: slacks, lambda: _lib_slacks,
             same_function(_cases, lambda a, b: len(a) == len(b) and all(abs(x - y) < 1e-9 for x, y in zip(a, b)))),
]
