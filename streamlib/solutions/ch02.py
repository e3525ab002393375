"""Solutions to ``book/exercises/02_multitrack_data.ipynb`` (chapter 2, "Multitrack data": categories,
the A-weighted silence filter and the overlap rule of ``streamlib.data.sampling``)."""

from __future__ import annotations

import math

import numpy as np

from streamlib.solutions import Exercise, close, same_function

SR = 16_000


def overlap_fraction(active_in: np.ndarray, active_tgt: np.ndarray) -> float:
    """02.3: the share of frames in which input and target are both active."""
    both = [bool(a) and bool(b) for a, b in zip(active_in, active_tgt)]
    return sum(both) / len(both)


def ex1() -> str:
    # General MIDI programs 32-39 (0-based) are the basses; 33 is "Electric Bass (finger)".
    return "Bass"


def ex2() -> float:
    # A-weighting is ~0 dB at 1 kHz, a sine's RMS is a / sqrt(2): 20 log10(a / sqrt 2) = -60 dB
    return math.sqrt(2) * 1e-3


def _expected1() -> str:
    from streamlib.tokens.categories import CATEGORIES, program_to_category

    return CATEGORIES[program_to_category(33)]


def _level_db(amplitude: float) -> float:
    from streamlib.data import sampling

    tone = amplitude * np.sin(2 * np.pi * 1000 * np.arange(SR) / SR)
    return float(np.median(sampling.frame_rms_db(tone, SR)))


def _expected2() -> float:
    """The amplitude at which the library's level crosses its silence threshold (bisection in log a)."""
    from streamlib.data.sampling import SILENCE_DB

    lo, hi = -5.0, -1.0
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _level_db(10**mid) < SILENCE_DB else (lo, mid)
    return 10 ** ((lo + hi) / 2)


def _masks():
    rng = np.random.default_rng(0)
    for n in (1, 2, 8, 50, 500):
        for p in (0.1, 0.5, 0.9):
            yield rng.random(n) < p, rng.random(n) < p


def _library_overlap(a, b) -> float:
    from streamlib.data.sampling import overlap_fraction as lib

    return lib(a, b)


EXERCISES = [
    Exercise("02.1", "explore", "which category is program 33?", ex1, _expected1),
    Exercise("02.2", "compute", "the quietest 1 kHz sine that is not silent", ex2, _expected2, close(rel=0.03)),
    Exercise("02.3", "implement", "overlap_fraction", lambda: overlap_fraction, lambda: _library_overlap,
             same_function(_masks, lambda a, b: math.isclose(a, b, abs_tol=1e-12))),
]
