"""Synthesised Slakh-format set: layout, metadata, determinism, resume, musical constraints."""

import hashlib

import numpy as np
import pytest
import soundfile as sf
import yaml

from streamlib.data import synth
from streamlib.data.compose import MAX_PITCH, PROGRAM_POOLS, ROLES, compose_song
from streamlib.data.synth import Recipe, synthesize, track_folder
from streamlib.tokens.categories import TARGET_CATEGORIES, program_to_category

TINY = Recipe(tracks=3, seed=7, min_seconds=9.0, max_seconds=12.0)


def _digest(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith(".")}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "set"
    report = synthesize(out, TINY, progress=False)
    return out, report


def test_layout_and_metadata(tiny):
    out, report = tiny
    assert report["made"] == 3 and report["skipped"] == 0
    folder = track_folder(out, TINY, 1)
    assert folder.parent.name == "train" and folder.name == "Track00001"
    meta = yaml.safe_load((folder / "metadata.yaml").read_text())
    for key in ("UUID", "audio_dir", "midi_dir", "lmd_midi_dir", "normalized", "normalization_factor",
                "overall_gain", "target_peak", "stems"):
        assert key in meta
    assert (folder / "mix.flac").exists() and (folder / "all_src.mid").exists()
    stems = []
    for name, info in meta["stems"].items():
        assert (folder / "stems" / f"{name}.flac").exists() and (folder / "MIDI" / f"{name}.mid").exists()
        for key in ("audio_rendered", "inst_class", "integrated_loudness", "is_drum", "midi_program_name",
                    "midi_saved", "plugin_name", "program_num"):
            assert key in info
        assert info["program_num"] == 128 if info["is_drum"] else 0 <= info["program_num"] <= 127
        audio, sr = sf.read(str(folder / "stems" / f"{name}.flac"), dtype="float32")
        assert sr == TINY.sample_rate
        stems.append(audio)
    assert len(stems) >= 2
    mix, _ = sf.read(str(folder / "mix.flac"), dtype="float32")
    # mix == sum of stems up to 16-bit rounding; the peak sits at target_peak
    assert np.abs(mix - np.sum(stems, axis=0)).max() < len(stems) * 2.0 / 32768
    assert abs(20 * np.log10(np.abs(mix).max()) - meta["target_peak"]) < 0.01
    extra = meta["synth"]
    beats, downbeats = extra["beats"], extra["downbeats"]
    assert set(downbeats) <= set(beats) and beats == sorted(beats) and beats[-1] < extra["duration"]
    assert 70 <= extra["tempo"] <= 180
    assert abs(np.diff(beats).mean() - 60 / extra["tempo"]) < 1e-3
    assert extra["chords"][0][0] == 0.0 and all(":" in c[2] for c in extra["chords"])
    assert len(mix) == extra["n_samples"] and abs(len(mix) / sr - extra["duration"]) < 1e-4


def test_same_seed_byte_identical_and_resume(tiny, tmp_path):
    out, _ = tiny
    other = tmp_path / "again"
    first = synthesize(other, Recipe(**{**TINY.__dict__, "tracks": 2}), progress=False)  # a partial run
    assert first["made"] == 2
    # an interrupted track: a stale temporary folder and a missing finished one
    victim = track_folder(other, TINY, 2)
    import shutil

    shutil.move(str(victim), str(victim.parent / ".Track00002.tmp"))
    report = synthesize(other, TINY, progress=False)
    assert report["made"] == 2 and report["skipped"] == 1
    assert _digest(other) == _digest(out)


def test_different_seed_differs(tiny, tmp_path):
    out, _ = tiny
    synthesize(tmp_path / "s8", Recipe(tracks=1, seed=8, min_seconds=9.0, max_seconds=12.0), progress=False)
    a = (track_folder(out, TINY, 1) / "mix.flac").read_bytes()
    b = (track_folder(tmp_path / "s8", TINY, 1) / "mix.flac").read_bytes()
    assert a != b


def test_compose_rules_and_category_coverage():
    cats, roles = set(), set()
    for i in range(150):
        song = compose_song(np.random.default_rng([0, i]), 20, 40)
        assert 70 <= song.tempo <= 180 and song.n_bars % 4 == 0
        assert song.sections[0][1] == 0 and sum(n for _, _, n in song.sections) == song.n_bars
        for part in song.parts:
            roles.add(part.role)
            cats.add(program_to_category(part.program, part.is_drum))
            assert part.is_drum or any(part.program in fam for _, fam in PROGRAM_POOLS[part.role])
            assert part.notes == sorted(part.notes)
            for start, dur, pitch, vel in part.notes:
                assert 0 <= start < song.end_tick and dur > 0 and 1 <= vel <= 127
                assert part.is_drum or pitch <= MAX_PITCH
    assert cats == set(TARGET_CATEGORIES)  # all 16 non-vocal categories occur
    assert roles == set(ROLES)


def test_splits_and_bad_arguments(tmp_path):
    r = Recipe(tracks=20)
    assert [r.split_of(i) for i in (1, 16, 17, 18, 19, 20)] == ["train", "train", "validation", "validation",
                                                                  "test", "test"]
    with pytest.raises(ValueError, match="sample-rate"):
        synthesize(tmp_path / "x", Recipe(tracks=1, sample_rate=8000), progress=False)
    with pytest.raises(ValueError, match="tracks"):
        synthesize(tmp_path / "x", Recipe(tracks=0), progress=False)
    with pytest.raises(ValueError, match="at least 9 s"):
        synthesize(tmp_path / "x", Recipe(tracks=1, min_seconds=4, max_seconds=5), progress=False)


@pytest.mark.parametrize("low, high", [(9.0, 10.0), (12.0, 14.0), (15.0, 25.0), (30.0, 60.0)])
def test_track_lengths_honour_the_bounds(low, high):
    for i in range(40):
        song = compose_song(np.random.default_rng([3, i]), low - synth.TAIL_SECONDS, high - synth.TAIL_SECONDS)
        assert song.duration + synth.TAIL_SECONDS <= high + 1e-6


def test_substitutions_and_modulations_occur():
    songs = [compose_song(np.random.default_rng([1, i]), 30, 60) for i in range(60)]
    modulated = [s for s in songs if s.modulation is not None]
    assert 0.1 < len(modulated) / len(songs) < 0.6
    checked = 0
    for song in modulated:
        bar, shift = song.modulation
        at = bar * song.bar_ticks
        home = [c for c in song.chords if c.start < at]
        away = [c for c in song.chords if c.start >= at]
        assert home and away and shift != 0
        # the bass follows the chords into the new key: its notes after the change are chord tones
        bass = next((p for p in song.parts if p.role == "bass"), None)
        if bass is None:
            continue
        in_chord = [n[2] % 12 in c.pcs for n in bass.notes for c in away if c.start <= n[0] + 60 < c.end]
        if in_chord:
            assert np.mean(in_chord) > 0.7
            checked += 1
    assert checked >= 5


def test_book_dataset_makes_once(tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMLIB_DATA", str(tmp_path))
    monkeypatch.setattr(synth, "QUICK_RECIPE", Recipe(tracks=2, seed=1, min_seconds=9.0, max_seconds=10.0))
    root = synth.book_dataset(quick=True)
    assert root == tmp_path / "synth-quick" and synth.is_complete(root, synth.QUICK_RECIPE)
    stamp = (root / "synth.json").stat().st_mtime_ns
    calls = []
    monkeypatch.setattr(synth, "synthesize", lambda *a, **k: calls.append(a))
    assert synth.book_dataset(quick=True) == root and not calls
    assert (root / "synth.json").stat().st_mtime_ns == stamp


def test_cli_synth_and_info(tmp_path, capsys):
    from streamlib.cli import main

    out = tmp_path / "cli"
    args = ["data", "synth", "--tracks", "1", "--seed", "4", "--min-seconds", "9", "--max-seconds", "10", "--quiet"]
    assert main(args + ["--out", str(out)]) == 0
    assert "made 1, skipped 0" in capsys.readouterr().out
    assert main(args + ["--out", str(out)]) == 0
    assert "made 0, skipped 1" in capsys.readouterr().out
    assert main(["data", "info", str(out)]) == 0
    assert "1 tracks" in capsys.readouterr().out
