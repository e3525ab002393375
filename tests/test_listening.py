"""Listening-study tooling: balanced blind trials and the paper's statistics on synthetic answers."""

from __future__ import annotations

import csv
import itertools
from collections import Counter

import pytest

from streamlib.listening import (
    StudyError,
    analyse,
    design_trials,
    read_responses,
    simulate_responses,
    write_study,
)

SYSTEMS = ["ground_truth", "offline", "tf+1", "tf0", "tf-1", "random", "stemgen"]
AUDIO = {f"ex{e}": {s: f"audio/ex{e}/{s}.wav" for s in SYSTEMS} for e in range(5)}


def test_design_is_balanced_and_randomised():
    trials = design_trials(AUDIO, participants=4, repeats=2, seed=1)
    assert len(trials) == 4 * 21 * 2
    for p in range(4):
        mine = [t for t in trials if t.participant == p]
        pairs = Counter(frozenset((t.system_a, t.system_b)) for t in mine)
        assert set(pairs.values()) == {2} and len(pairs) == 21
        first = Counter(t.system_a for t in mine)
        assert set(first.values()) == {6}  # each system first in 3 of its 6 pairs, per repeat
        examples = Counter(t.example for t in mine)
        assert max(examples.values()) - min(examples.values()) <= 1
    assert [t.trial_id for t in design_trials(AUDIO, 4, 2, seed=1)] == [t.trial_id for t in trials]
    orders = [(t.system_a, t.system_b) for t in trials[:21]]
    assert orders != [(t.system_a, t.system_b) for t in design_trials(AUDIO, 4, 2, seed=2)[:21]]


def test_pages_are_blind_and_key_round_trips(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for s in SYSTEMS:
        (src / f"{s}.wav").write_bytes(s.encode())
    audio = {f"ex{e}": {s: src / f"{s}.wav" for s in SYSTEMS} for e in range(3)}
    trials = design_trials(audio, participants=2, seed=0)
    paths = write_study(trials, tmp_path / "study")
    page = paths["participant_00"].read_text()
    assert "<audio" in page
    for s in SYSTEMS:
        assert s not in page  # blind: neither labels nor file names name a system
    rows = list(csv.DictReader(paths["key"].open()))
    assert len(rows) == len(trials) and rows[0]["system_a"] in SYSTEMS
    for row in rows:  # the anonymous copy holds the system's audio
        assert (tmp_path / "study" / row["blind_a"]).read_bytes() == row["system_a"].encode()
    answers = [{"trial_id": t.trial_id, "choice": "a"} for t in trials]
    resp = read_responses(trials, answers)
    assert all(r.winner == t.system_a for r, t in zip(resp, trials))
    with pytest.raises(StudyError):
        read_responses(trials, [{"trial_id": trials[0].trial_id, "choice": "left"}])
    with pytest.raises(StudyError):
        read_responses(trials, [{"trial_id": "nope", "choice": "a"}])


def test_known_winner_is_found():
    quality = {s: 0.0 for s in SYSTEMS}
    quality["ground_truth"] = 3.0
    quality["random"] = -3.0
    trials = design_trials(AUDIO, participants=24, seed=0)
    res = analyse(simulate_responses(trials, quality, seed=0, participant_spread=0.2))
    assert res.kruskal_p < 1e-6
    assert res.alpha == pytest.approx(0.05 / 21)
    assert max(res.mean_preference, key=res.mean_preference.get) == "ground_truth"
    assert min(res.mean_preference, key=res.mean_preference.get) == "random"
    for d in res.pairs:
        if "ground_truth" in (d["system_i"], d["system_j"]):
            assert d["significant"] and d["better"] == "ground_truth"
    middle = [d for d in res.pairs if {d["system_i"], d["system_j"]} <= set(SYSTEMS[1:5])]
    assert sum(d["significant"] for d in middle) <= 1  # equal systems: (almost) never significant
    table = res.significance_table()
    assert table[0][0] == "N/A" and len(table) == 7 and all(len(r) == 7 for r in table)


def test_no_differences_give_no_kruskal_signal():
    trials = design_trials(AUDIO, participants=24, seed=3)
    res = analyse(simulate_responses(trials, {s: 0.0 for s in SYSTEMS}, seed=3))
    assert res.kruskal_p > 0.01
    assert not any(d["significant"] for d in res.pairs)


def test_bad_designs():
    with pytest.raises(StudyError):
        design_trials({"ex": {"a": "x"}}, participants=1)
    with pytest.raises(StudyError):
        design_trials({"e1": {"a": "x", "b": "y"}, "e2": {"a": "x"}}, participants=1)
    with pytest.raises(StudyError):
        analyse([])


@pytest.mark.parametrize("n", [2, 3])
def test_small_studies(n):
    audio = {"e": {s: s for s in "abc"[:n]}}
    trials = design_trials(audio, participants=3, repeats=3)
    assert len(trials) == 3 * 3 * len(list(itertools.combinations(range(n), 2)))
