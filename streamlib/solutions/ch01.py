"""Solutions to ``book/exercises/01_streaming_problem.ipynb`` (chapter 1, "The streaming accompaniment
problem": Eq. (1), the latency and throughput conditions, ``streamlib.feasibility``)."""

from __future__ import annotations

import math

from streamlib.solutions import Exercise, close, same_function


def max_deployable_tf(tau_sys: float, tau_jitter: float, frame_rate: int = 50) -> int:
    """01.3: the largest t_f (frames) with lead -t_f / frame_rate >= tau_sys + tau_jitter."""
    return -math.ceil(round((tau_sys + tau_jitter) * frame_rate, 9))


def throughput_ok(k: int, per_call_s: float, per_frame_s: float, frame_rate: int = 50) -> bool:
    """01.4: a chunk of k frames is generated no slower than it plays: t_gen(k) <= k / frame_rate."""
    return per_call_s + per_frame_s * k <= k / frame_rate + 1e-12


def ex1() -> int:
    # lead needed: 0.3 + 0.05 = 0.35 s = 17.5 frames -> round up to 18 frames of lead -> t_f = -18.
    # k does not appear in the latency condition, so every row of the map has the same right edge.
    return -18


def ex2() -> int:
    # 0.030 + 0.005 k <= 0.020 k  <=>  k >= 2 frames
    return 2


def _expected1() -> int:
    from streamlib import feasibility as fz

    return fz.max_deployable_tf(0.3, 0.05)


def _expected2() -> int:
    from streamlib import feasibility as fz

    t_gen = fz.linear_t_gen(0.030, 0.005)
    return min(k for k in range(1, 500) if fz.check(-100, k, 0.3, 0.05, t_gen).throughput_ok)


def _tf_cases():
    for tau_sys in (0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.3, 0.333, 1.0):
        for tau_jitter in (0.0, 0.01, 0.02, 0.05, 0.1, 0.123):
            yield tau_sys, tau_jitter


def _library_tf(tau_sys: float, tau_jitter: float) -> int:
    from streamlib import feasibility as fz

    return fz.max_deployable_tf(tau_sys, tau_jitter)


def _throughput_cases():
    for k in (1, 2, 3, 4, 5, 10, 25, 50):
        for per_call in (0.0, 0.01, 0.06):
            for per_frame in (0.001, 0.004, 0.01, 0.02, 0.03):
                yield k, per_call, per_frame


def _library_throughput(k: int, per_call_s: float, per_frame_s: float) -> bool:
    from streamlib import feasibility as fz

    return fz.check(-100, k, 0.1, 0.0, fz.linear_t_gen(per_call_s, per_frame_s)).throughput_ok


EXERCISES = [
    Exercise("01.1", "explore", "the right edge of the feasibility map", ex1, _expected1, close()),
    Exercise("01.2", "compute", "the smallest chunk that keeps up", ex2, _expected2, close()),
    Exercise("01.3", "implement", "max_deployable_tf", lambda: max_deployable_tf, lambda: _library_tf,
             same_function(_tf_cases)),
    Exercise("01.4", "implement", "the throughput condition", lambda: throughput_ok, lambda: _library_throughput,
             same_function(_throughput_cases)),
]
