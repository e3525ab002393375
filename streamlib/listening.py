"""Blind pairwise listening study: trial design, response simulation, statistics (chapter 11).

Paper A.8: participants hear one input with two accompaniments from two systems (blind, in random
order) and say which they prefer. Each participant gets a balanced set of trials: every pair of
systems equally often, each system equally often first and second, examples shuffled.
``write_study`` writes the participant page (HTML, audio labelled only "A" and "B") and a separate
key (CSV manifest with the systems and audio paths).

Analysis (as in the paper): a per-participant preference score for each system (the fraction of its
comparisons it won); a Kruskal-Wallis H test across systems, then post-hoc Wilcoxon signed-rank
tests on every pair of systems (paired by participant) with a Bonferroni threshold alpha / pairs
(0.05 / 21 for 7 systems).
"""

from __future__ import annotations

import html
import itertools
import shutil
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

from streamlib.checkpoint import write_csv


class StudyError(ValueError):
    """A study design or a response table that cannot be used."""


@dataclass(frozen=True)
class Trial:
    trial_id: str
    participant: int
    example: str
    system_a: str  # played as "A"
    system_b: str  # played as "B"
    audio_a: str
    audio_b: str


@dataclass(frozen=True)
class Response:
    participant: int
    trial_id: str
    system_a: str
    system_b: str
    choice: str  # "a" or "b"

    @property
    def winner(self) -> str:
        return self.system_a if self.choice == "a" else self.system_b

    @property
    def loser(self) -> str:
        return self.system_b if self.choice == "a" else self.system_a


def design_trials(
    audio: Mapping[str, Mapping[str, str | Path]],
    participants: int,
    repeats: int = 1,
    seed: int = 0,
) -> list[Trial]:
    """Balanced blind trials. ``audio[example][system]`` is the path of that system's mix.

    Every participant hears each pair of systems ``repeats`` times (so 21 * repeats trials for 7
    systems), in random order, on examples drawn without replacement where possible, with the A/B
    order balanced so that each system is played first about half the time.
    """
    if participants < 1 or repeats < 1:
        raise StudyError("participants and repeats must be >= 1")
    examples = sorted(audio)
    if not examples:
        raise StudyError("no examples given")
    systems = sorted(audio[examples[0]])
    if len(systems) < 2:
        raise StudyError("a pairwise study needs at least two systems")
    for ex in examples:
        if sorted(audio[ex]) != systems:
            raise StudyError(f"example {ex!r} has systems {sorted(audio[ex])}, expected {systems}")
    rng = np.random.default_rng(seed)
    pairs = list(itertools.combinations(systems, 2))
    trials: list[Trial] = []
    for p in range(participants):
        todo = [_oriented(pair, systems, flip=bool((r + p) % 2)) for r in range(repeats) for pair in pairs]
        order = rng.permutation(len(todo))
        pool: list[str] = []
        for n, i in enumerate(order):
            a, b = todo[i]
            if not pool:
                pool = list(rng.permutation(examples))
            ex = pool.pop()
            trials.append(Trial(f"p{p:02d}_t{n:03d}", p, ex, a, b, str(audio[ex][a]), str(audio[ex][b])))
    return trials


def _oriented(pair: tuple[str, str], systems: list[str], flip: bool) -> tuple[str, str]:
    """Presentation order from a cyclic tournament: with n systems each is first in (n-1)/2 of its
    pairs (n odd; within one for n even); ``flip`` swaps every pair (alternate repeats/participants)."""
    i, j = systems.index(pair[0]), systems.index(pair[1])
    a, b = pair if (j - i) % len(systems) <= (len(systems) - 1) // 2 else pair[::-1]
    return (b, a) if flip else (a, b)


def write_study(trials: Sequence[Trial], out: str | Path, title: str = "Which accompaniment fits better?") -> dict[str, Path]:
    """Write ``key.csv`` (systems + paths: keep it from participants) and one blind page per
    participant ``participant_NN.html`` (audio A/B, a choice each, a button that saves the answers
    as CSV). Audio is copied to anonymous names ``audio/<trial>_a.<ext>`` so that file names reveal
    nothing (sources that do not exist yet are only renamed in the key: copy them there later)."""
    out = Path(out)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    key = out / "key.csv"
    blind: dict[str, tuple[str, str]] = {}
    for t in trials:
        names = []
        for side, src in (("a", t.audio_a), ("b", t.audio_b)):
            name = f"audio/{t.trial_id}_{side}{Path(src).suffix}"
            if Path(src).is_file():
                shutil.copyfile(src, out / name)
            names.append(name)
        blind[t.trial_id] = (names[0], names[1])
    write_csv(key, [*Trial.__dataclass_fields__, "blind_a", "blind_b"],
              ({**asdict(t), "blind_a": blind[t.trial_id][0], "blind_b": blind[t.trial_id][1]} for t in trials))
    paths = {"key": key}
    for p in sorted({t.participant for t in trials}):
        rows = []
        for t in (t for t in trials if t.participant == p):
            tid = html.escape(t.trial_id)
            a, b = blind[t.trial_id]
            rows.append(
                f'<div class="trial"><p>Trial {tid}</p>'
                f'<p>A <audio controls src="{html.escape(a)}"></audio></p>'
                f'<p>B <audio controls src="{html.escape(b)}"></audio></p>'
                f'<label><input type="radio" name="{tid}" value="a"> A</label> '
                f'<label><input type="radio" name="{tid}" value="b"> B</label></div>'
            )
        page = (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
            f"<h1>{html.escape(title)}</h1><p>Participant {p}. For each trial, listen to both and pick the "
            "accompaniment that fits the music better.</p>" + "\n".join(rows) +
            "<button onclick=\"let r='participant,trial_id,choice\\n';"
            "document.querySelectorAll('input:checked').forEach(e=>{r+="
            f"'{p},'+e.name+','+e.value+'\\n'}});"
            "let a=document.createElement('a');a.href='data:text/csv,'+encodeURIComponent(r);"
            f"a.download='responses_{p:02d}.csv';a.click();\">Save answers</button></body></html>"
        )
        path = out / f"participant_{p:02d}.html"
        path.write_text(page)
        paths[f"participant_{p:02d}"] = path
    return paths


def read_responses(trials: Sequence[Trial], answers: Sequence[Mapping[str, str]]) -> list[Response]:
    """Join saved answers (rows with ``trial_id`` and ``choice``) with the key."""
    by_id = {t.trial_id: t for t in trials}
    out = []
    for row in answers:
        t = by_id.get(row["trial_id"])
        if t is None:
            raise StudyError(f"unknown trial {row['trial_id']!r}")
        choice = str(row["choice"]).strip().lower()
        if choice not in ("a", "b"):
            raise StudyError(f"trial {t.trial_id}: choice must be 'a' or 'b', got {row['choice']!r}")
        out.append(Response(t.participant, t.trial_id, t.system_a, t.system_b, choice))
    return out


def read_key(path: str | Path) -> list[Trial]:
    """The trials of a study back from the ``key.csv`` that ``write_study`` wrote."""
    import csv

    path = Path(path)
    if not path.is_file():
        raise StudyError(f"{path}: no study key (write_study writes key.csv next to the participant pages)")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    missing = set(Trial.__dataclass_fields__) - set(rows[0] if rows else ())
    if not rows or missing:
        raise StudyError(f"{path}: not a study key (missing columns {sorted(missing)})" if rows else f"{path}: empty")
    return [Trial(**{k: int(r[k]) if k == "participant" else r[k] for k in Trial.__dataclass_fields__}) for r in rows]


def analyse_study(folder: str | Path, answers: Sequence[str | Path], alpha: float = 0.05) -> StudyResult:
    """What ``listening analyse`` does: join the saved ``responses_NN.csv`` files with the study's key and run
    ``analyse``. A trial answered twice is refused (a participant page saved twice: keep one file)."""
    import csv

    trials = read_key(Path(folder) / "key.csv")
    rows: list[dict] = []
    for path in answers:
        with Path(path).open(newline="") as f:
            rows += list(csv.DictReader(f))
    twice = sorted(i for i, n in Counter(r.get("trial_id") for r in rows).items() if n > 1)
    if twice:
        raise StudyError(f"trials answered more than once: {twice[:5]}{' ...' if len(twice) > 5 else ''}")
    return analyse(read_responses(trials, rows), alpha)


def simulate_responses(trials: Sequence[Trial], quality: Mapping[str, float], seed: int = 0,
                       participant_spread: float = 0.0) -> list[Response]:
    """Synthetic answers from a Bradley-Terry model: P(A preferred) = sigmoid(q_A - q_B), with an
    optional per-participant random offset per system (``participant_spread``, std)."""
    rng = np.random.default_rng(seed)
    offsets: dict[tuple[int, str], float] = {}
    out = []
    for t in trials:
        qa, qb = (
            quality[s] + offsets.setdefault((t.participant, s), rng.normal(0, participant_spread) if participant_spread else 0.0)
            for s in (t.system_a, t.system_b)
        )
        p_a = 1.0 / (1.0 + np.exp(-(qa - qb)))
        out.append(Response(t.participant, t.trial_id, t.system_a, t.system_b, "a" if rng.random() < p_a else "b"))
    return out


def preference_scores(responses: Sequence[Response]) -> tuple[list[str], list[int], np.ndarray]:
    """``(systems, participants, scores[participant, system])``: the fraction of comparisons won."""
    if not responses:
        raise StudyError("no responses")
    systems = sorted({r.system_a for r in responses} | {r.system_b for r in responses})
    people = sorted({r.participant for r in responses})
    wins = np.zeros((len(people), len(systems)))
    seen = np.zeros_like(wins)
    si = {s: i for i, s in enumerate(systems)}
    pi = {p: i for i, p in enumerate(people)}
    for r in responses:
        p = pi[r.participant]
        wins[p, si[r.winner]] += 1
        seen[p, si[r.system_a]] += 1
        seen[p, si[r.system_b]] += 1
    if (seen == 0).any():
        raise StudyError("every participant must have heard every system at least once")
    return systems, people, wins / seen


@dataclass
class StudyResult:
    systems: list[str]
    mean_preference: dict[str, float]
    kruskal_h: float
    kruskal_p: float
    alpha: float  # Bonferroni threshold used for the pairs
    pairs: list[dict]  # system_i, system_j, wilcoxon_w, p, significant, better

    def significance_table(self) -> list[list[str]]:
        """Paper Table 1: '*' significant, '!' not, 'N/A' on the diagonal (rows/cols = ``systems``)."""
        mark = {(d["system_i"], d["system_j"]): "*" if d["significant"] else "!" for d in self.pairs}
        return [["N/A" if a == b else mark.get((a, b), mark.get((b, a), "")) for b in self.systems] for a in self.systems]

    def ranked(self) -> list[str]:
        """The systems from the most to the least preferred."""
        return sorted(self.systems, key=self.mean_preference.get, reverse=True)

    def format_table(self) -> str:
        """The significance table as text, rows and columns in ``ranked`` order (names cut to 8 columns)."""
        order, table = self.ranked(), self.significance_table()
        idx = [self.systems.index(s) for s in order]
        width = max(len(s) for s in order)
        lines = [" " * width + " " + " ".join(f"{s[:8]:>8}" for s in order)]
        lines += [f"{self.systems[i]:>{width}} " + " ".join(f"{table[i][j]:>8}" for j in idx) for i in idx]
        return "\n".join(lines)


def analyse(responses: Sequence[Response], alpha: float = 0.05) -> StudyResult:
    """Kruskal-Wallis across systems, then Wilcoxon signed-rank per pair at alpha / n_pairs."""
    systems, _, scores = preference_scores(responses)
    if scores.shape[0] < 2:
        raise StudyError("the tests need at least two participants")
    h, p = stats.kruskal(*[scores[:, i] for i in range(len(systems))])
    pairs = list(itertools.combinations(range(len(systems)), 2))
    threshold = alpha / len(pairs)
    rows = []
    for i, j in pairs:
        diff = scores[:, i] - scores[:, j]
        if np.allclose(diff, 0):
            w, pv = 0.0, 1.0
        else:
            nonzero = diff[diff != 0]
            exact = len(np.unique(np.abs(nonzero))) == len(nonzero) == len(diff) and len(diff) <= 50
            # exact null distribution without ties or zeros; otherwise the normal approximation with
            # tie correction (scipy's permutation fallback costs seconds per pair)
            w, pv = stats.wilcoxon(scores[:, i], scores[:, j], method="exact" if exact else "approx")
        rows.append({
            "system_i": systems[i], "system_j": systems[j], "wilcoxon_w": float(w), "p": float(pv),
            "significant": bool(pv < threshold),
            "better": systems[i] if diff.mean() > 0 else systems[j] if diff.mean() < 0 else "",
        })
    return StudyResult(
        systems=systems,
        mean_preference={s: float(scores[:, i].mean()) for i, s in enumerate(systems)},
        kruskal_h=float(h), kruskal_p=float(p), alpha=threshold, pairs=rows,
    )


__all__ = [
    "StudyError",
    "Trial",
    "Response",
    "design_trials",
    "write_study",
    "read_responses",
    "read_key",
    "analyse_study",
    "simulate_responses",
    "preference_scores",
    "StudyResult",
    "analyse",
]
