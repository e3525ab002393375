"""Solutions to ``book/exercises/09_evaluation.ipynb`` (chapter 9, "Evaluation": beat F1, the coherence
AUC and the Fréchet distance of ``streamlib.metrics``)."""

from __future__ import annotations

import math

import numpy as np

from streamlib.solutions import Exercise, close, same_function


def pair_auc(scores: np.ndarray) -> float:
    """09.2: the share of (true pair, random pair) comparisons in the same row that the true pair (the
    diagonal) wins; ties count one half."""
    s = np.asarray(scores, dtype=float)
    wins, total = 0.0, 0
    for i in range(len(s)):
        for j in range(len(s)):
            if i != j:
                wins += 1.0 if s[i, i] > s[i, j] else 0.5 if s[i, i] == s[i, j] else 0.0
                total += 1
    return wins / total


def beat_f1(reference: np.ndarray, estimate: np.ndarray, window: float = 0.07) -> float:
    """09.3: F-measure of beat times: an estimate within +-``window`` s of a still unmatched reference
    beat is a hit; precision = hits / estimates, recall = hits / references."""
    ref, est = sorted(reference), sorted(estimate)
    if not len(ref) and not len(est):
        return 1.0
    used, hits = set(), 0
    for e in est:
        best = min((abs(e - r), i) for i, r in enumerate(ref) if i not in used) if len(used) < len(ref) else None
        if best is not None and best[0] <= window:
            used.add(best[1])
            hits += 1
    if hits == 0:
        return 0.0
    p, r = hits / len(est), hits / len(ref)
    return 2 * p * r / (p + r)


def ex1() -> float:
    # 1-D Gaussians: (mu1 - mu2)^2 + s1^2 + s2^2 - 2 s1 s2 = 4 + 1 + 4 - 4 = 5
    return 5.0


def _expected1() -> float:
    from streamlib.metrics import frechet_distance

    rng = np.random.default_rng(0)
    return frechet_distance(rng.normal(0, 1, (200_000, 1)), rng.normal(2, 2, (200_000, 1)))


def _matrices():
    rng = np.random.default_rng(0)
    for n in (2, 3, 5, 8):
        yield (rng.integers(0, 4, (n, n)).astype(float),)  # small integers: ties happen
        yield (rng.normal(size=(n, n)),)


def _lib_auc(scores) -> float:
    from streamlib.metrics.coherence import pair_auc as lib

    return lib(scores)


def _beats():
    rng = np.random.default_rng(0)
    for period in (0.4, 0.5, 0.6):
        ref = np.arange(1.0, 20.0, period)
        for jitter in (0.02, 0.06, 0.1):
            est = ref + rng.uniform(-jitter, jitter, len(ref))
            keep = rng.random(len(est)) > 0.2
            yield ref, est[keep]
            yield ref, np.sort(np.concatenate([est, ref[:5] + period / 2]))


def _lib_f1(reference, estimate) -> float:
    from streamlib.metrics.beats import beat_f1_from_beats

    return beat_f1_from_beats(reference, estimate)


EXERCISES = [
    Exercise("09.1", "compute", "the Fréchet distance of N(0, 1) and N(2, 4)", ex1, _expected1, close(rel=0.02)),
    Exercise("09.2", "implement", "the true-vs-random AUC", lambda: pair_auc, lambda: _lib_auc,
             same_function(_matrices, lambda a, b: math.isclose(a, b, abs_tol=1e-12))),
    Exercise("09.3", "implement", "beat F1 with a +-70 ms window", lambda: beat_f1, lambda: _lib_f1,
             same_function(_beats, lambda a, b: math.isclose(a, b, abs_tol=1e-9))),
]
