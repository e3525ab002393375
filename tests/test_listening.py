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
    lines = res.format_table().splitlines()  # ranked: the ground truth first, random pairing last
    assert len(lines) == 8 and lines[1].split()[0] == "ground_truth" and lines[-1].split()[0] == "random"
    assert lines[1].split()[1] == "N/A" and lines[1].split()[2] == "*"


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


def test_study_audio_from_real_systems_round_trips_through_the_key(tmp_path):
    """``render_study_audio`` runs every system (a streaming stand-in and a masked model) on the same clips, adds
    the ground truth and the floor as A.9 mixes; the key written by ``write_study`` reads back as the same
    trials, and ``analyse_study`` on saved answers equals ``analyse`` on the same responses."""
    import numpy as np
    import torch
    from test_stream import StandIn
    from test_sweep import make_clips

    from streamlib.audio import load_audio
    from streamlib.codec import CausalCodec
    from streamlib.config import StreamSpec, get_preset
    from streamlib.listening import analyse_study, read_key
    from streamlib.listening_audio import GROUND_TRUTH, RANDOM_PAIRING, render_study_audio
    from streamlib.metrics.mixing import mix_tracks
    from streamlib.model.masked import MaskedAccompanist, masked_preset
    from streamlib.stream import ModelEntry

    torch.manual_seed(0)
    codec = CausalCodec(get_preset("debug").codec)
    masked = MaskedAccompanist(masked_preset("debug").model, codec.codebook_tables(4)).eval()
    entries = [ModelEntry("t_f=0s", "streaming", None, 0, 1, accompanist=StandIn(StreamSpec(0, 1, window=50))),
               ModelEntry("offline masked", "offline_masked", None, None, None, accompanist=masked)]
    clips = make_clips(n=3)
    audio = render_study_audio(entries, clips, tmp_path, codec=codec, log=lambda msg: None)
    assert sorted(audio) == ["clip00", "clip01", "clip02"]
    assert set(audio["clip00"]) == {GROUND_TRUTH, RANDOM_PAIRING, "t_f=0s", "offline masked"}
    truth, sr = load_audio(audio["clip01"][GROUND_TRUTH])
    clip = clips[1]
    n = clip.frames * 320
    expected = mix_tracks([s[:n] for s in clip.input_stems], clip.target[:n], clip.sample_rate)
    assert sr == clip.sample_rate and np.abs(np.asarray(truth).reshape(-1) - expected).max() < 1e-3  # 16-bit file
    masked_mix, _ = load_audio(audio["clip01"]["offline masked"])
    assert np.abs(np.asarray(masked_mix).reshape(-1) - expected).max() > 1e-2  # a generated stem, not the truth

    trials = design_trials(audio, participants=3, seed=0)
    write_study(trials, tmp_path / "study")
    assert read_key(tmp_path / "study" / "key.csv") == trials
    answers = simulate_responses(trials, {GROUND_TRUTH: 2.0, "offline masked": 0.5, "t_f=0s": 0.0,
                                          RANDOM_PAIRING: -1.0}, seed=0)
    files = []
    for p in range(3):
        path = tmp_path / f"responses_{p:02d}.csv"
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["participant", "trial_id", "choice"])
            w.writerows([p, r.trial_id, r.choice] for r in answers if r.participant == p)
        files.append(path)
    assert analyse_study(tmp_path / "study", files) == analyse(answers)
    with pytest.raises(StudyError, match="more than once"):
        analyse_study(tmp_path / "study", files + files[:1])
    with pytest.raises(StudyError, match="no study key"):
        analyse_study(tmp_path, files)


def test_listening_cli_errors_cleanly(tmp_path):
    import subprocess
    import sys

    from streamlib.paths import REPO_ROOT

    result = subprocess.run([sys.executable, "-m", "streamlib", "listening", "analyse", "--study", str(tmp_path),
                             str(tmp_path / "responses_00.csv")], capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 2 and "no study key" in result.stderr and "Traceback" not in result.stderr
