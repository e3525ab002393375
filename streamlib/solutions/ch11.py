"""Solutions to ``book/exercises/11_listening_study.ipynb`` (chapter 11, "A listening study": trial design,
preference scores and the Bonferroni-corrected tests of ``streamlib.listening``)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from streamlib.solutions import Exercise, same_function

SYSTEMS = ["ground truth", "offline StemGen", "offline prefix", "t_f=+1", "t_f=0", "t_f=-1", "random pairing"]
QUALITY = {"ground truth": 2.0, "offline StemGen": 1.2, "offline prefix": 0.7, "t_f=+1": 0.6,
           "t_f=0": 0.4, "t_f=-1": -0.8, "random pairing": -1.0}


def preference_scores(responses) -> tuple[list[str], list[int], np.ndarray]:
    """11.2: (systems sorted, participants sorted, scores[participant, system]) where a score is the
    share of that participant's comparisons involving the system that it won."""
    wins: dict = defaultdict(float)
    heard: dict = defaultdict(float)
    for r in responses:
        wins[r.participant, r.winner] += 1
        heard[r.participant, r.system_a] += 1
        heard[r.participant, r.system_b] += 1
    systems = sorted({s for _, s in heard})
    people = sorted({p for p, _ in heard})
    scores = np.array([[wins[p, s] / heard[p, s] for s in systems] for p in people])
    return systems, people, scores


def responses(participants: int, seed: int = 0):
    """Simulated answers of ``participants`` people to the chapter's seven systems."""
    from streamlib.listening import design_trials, simulate_responses

    audio = {f"clip{i:02d}": {s: f"{s}.wav" for s in SYSTEMS} for i in range(6)}
    trials = design_trials(audio, participants=participants, repeats=1, seed=0)
    return simulate_responses(trials, QUALITY, seed=seed, participant_spread=0.3)


def ex1() -> tuple[int, float]:
    # 7 systems: 7 * 6 / 2 = 21 pairs; Bonferroni: 0.05 / 21
    return 21, 0.05 / 21


def significant_pairs(participants: int) -> int:
    """11.3: how many of the 21 pairs ``analyse`` finds significant with this many participants."""
    from streamlib.listening import analyse

    return sum(d["significant"] for d in analyse(responses(participants)).pairs)


def _expected1() -> tuple[int, float]:
    from streamlib.listening import analyse

    res = analyse(responses(12))
    return len(res.pairs), res.alpha


def _cases():
    for n, seed in ((3, 0), (12, 1), (24, 2)):
        yield (responses(n, seed),)


def _lib_scores(rs):
    from streamlib.listening import preference_scores as lib

    return lib(rs)


def _same_scores(a, b) -> bool:
    return list(a[0]) == list(b[0]) and list(a[1]) == list(b[1]) and np.allclose(a[2], b[2])


EXERCISES = [
    Exercise("11.1", "compute", "pairs to test and the Bonferroni threshold", ex1, _expected1,
             lambda a, b: a[0] == b[0] and abs(a[1] - b[1]) < 1e-12),
    Exercise("11.2", "implement", "preference scores", lambda: preference_scores, lambda: _lib_scores,
             same_function(_cases, _same_scores)),
    Exercise("11.3", "explore", "more participants, more significant pairs?",
             lambda: (significant_pairs(24), significant_pairs(48)),
             lambda: (significant_pairs(24), significant_pairs(48)),
             lambda a, b: tuple(a) == tuple(b) and b[1] >= b[0]),
]
