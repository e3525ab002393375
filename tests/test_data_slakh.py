"""Slakh2100 reader on a hand-made tree with every gotcha: gaps, audio_rendered false, stray yaml
characters, inst_class vs program, corrupt / missing audio, too few stems, WAV + babyslakh layout."""

import numpy as np
import pytest
import soundfile as sf
import yaml

from streamlib.data import slakh
from streamlib.data.slakh import SlakhDataset, SlakhError
from streamlib.tokens.categories import category_id

SR = 16_000


def _tone(freq, seconds=1.0, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _track(folder, stems, ext="flac", sr=SR, prefix="", yaml_text=None, write_audio=None):
    """stems: {name: dict(program_num=.., is_drum=.., audio_rendered=.., inst_class=..)}."""
    (folder / "stems").mkdir(parents=True)
    (folder / "MIDI").mkdir()
    meta = {"UUID": "x", "audio_dir": "stems", "midi_dir": "MIDI", "normalized": True, "stems": {}}
    for i, (name, info) in enumerate(stems.items()):
        full = {"audio_rendered": True, "inst_class": "Piano", "is_drum": False, "program_num": 0, **info}
        meta["stems"][name] = full
        if full["audio_rendered"] and (write_audio is None or name in write_audio):
            sf.write(str(folder / "stems" / f"{name}.{ext}"), _tone(220 * (i + 1), sr=sr), sr)
    sf.write(str(folder / f"mix.{ext}"), _tone(220, sr=sr), sr)
    text = yaml_text if yaml_text is not None else prefix + yaml.safe_dump(meta)
    (folder / "metadata.yaml").write_text(text)


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "slakh2100_flac_redux"
    # good: gaps in stem numbers, a stem without audio, wrong inst_class, stray leading character
    _track(root / "train" / "Track00001",
           {"S00": {"is_drum": True, "program_num": 128, "inst_class": "Drums"},
            "S03": {"program_num": 33, "inst_class": "Strings (continued)"},
            "S07": {"program_num": 81, "audio_rendered": False}},
           prefix="%")
    _track(root / "train" / "Track00002", {"S00": {}, "S01": {}}, yaml_text="stems: [unclosed\n  - : :\n")
    _track(root / "train" / "Track00003", {"S00": {}, "S01": {"program_num": 40}}, write_audio={"S00"})
    _track(root / "train" / "Track00004", {"S00": {}, "S01": {"program_num": 24}, "S02": {"program_num": 56}})
    (root / "train" / "Track00004" / "stems" / "S02.flac").write_bytes(b"not a flac file at all" * 10)
    _track(root / "validation" / "Track00005", {"S01": {"program_num": 73}, "S04": {"program_num": 90}},
           ext="wav", sr=22_050)
    (root / "train" / "not_a_track").mkdir()
    return root


def test_reader_handles_gotchas(tree):
    with pytest.warns(UserWarning, match=r"skipped 2 of 5 tracks"):
        ds = SlakhDataset(tree, sample_rate=SR)
    assert [t.name for t in ds] == ["Track00001", "Track00004", "Track00005"]
    assert {n for n, _ in ds.skipped} == {"Track00002", "Track00003"}
    reasons = dict(ds.skipped)
    assert "malformed" in reasons["Track00002"] and "1 usable stem" in reasons["Track00003"]
    t1 = ds.by_name("Track00001")
    assert [s.name for s in t1.stems] == ["S00", "S03"]  # gap kept, audio_rendered false dropped
    assert [s.category for s in t1.stems] == [category_id("Percussive"), category_id("Bass")]
    assert t1.metadata["UUID"] == "x" and t1.split == "train"
    t4 = ds.by_name("Track00004")
    assert [s.name for s in t4.stems] == ["S00", "S01"]  # corrupt S02 left out
    assert any("Track00004" in w and "S02" in w for w in ds.stem_warnings)


def test_lazy_loading_and_resampling(tree, monkeypatch):
    calls = []
    real = slakh.load_audio
    monkeypatch.setattr(slakh, "load_audio", lambda *a, **k: calls.append(a) or real(*a, **k))
    ds = SlakhDataset(tree, split="validation", sample_rate=SR)
    assert not calls  # opening reads metadata and headers only
    t = ds[0]
    assert t.native_rate == 22_050 and t.rate == SR
    audio = t.load_stem("S01")
    assert audio.shape == (SR,) and audio.dtype == np.float32 and calls
    seg = t.load_stem("S04", start=0.25, duration=0.5)
    assert seg.shape == (SR // 2,)
    assert t.load_mix().shape == (SR,)
    assert t.active("S01").shape == (50,) and t.active("S01").all()
    with pytest.raises(SlakhError, match="no usable stem"):
        t.load_stem("S02")


def test_babyslakh_layout(tmp_path):
    root = tmp_path / "babyslakh_16k"
    _track(root / "Track00001", {"S00": {}, "S01": {"program_num": 33}}, ext="wav")
    _track(root / "Track00002", {"S00": {}, "S02": {"program_num": 65}}, ext="wav")
    ds = SlakhDataset(root)
    assert len(ds) == 2 and ds[0].split is None and ds[0].rate == SR
    assert "2 tracks" in ds.describe()
    with pytest.raises(SlakhError, match="no split folders"):
        SlakhDataset(root, split="train")


def test_empty_and_unknown_split(tmp_path, tree):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SlakhError, match="no usable Slakh-format track"):
        SlakhDataset(tmp_path / "empty")
    with pytest.raises(SlakhError, match="no such folder"):
        SlakhDataset(tmp_path / "missing")
    with pytest.raises(SlakhError, match="no split 'test'"):
        SlakhDataset(tree, split="test")


def test_only_bad_tracks_is_one_clear_error(tmp_path):
    root = tmp_path / "bad"
    _track(root / "train" / "Track00001", {"S00": {}}, write_audio=set())
    with pytest.raises(SlakhError, match="1 unusable"):
        SlakhDataset(root)


def test_shipped_example_clip():
    from streamlib.data.examples import EXAMPLES_DIR, load_example

    size = sum(f.stat().st_size for f in EXAMPLES_DIR.rglob("*") if f.is_file())
    assert size < 1.5e6
    clip = load_example("test_clip")
    assert clip.sample_rate == SR and clip.mix.shape == (10 * SR,)
    assert len(clip.stems) >= 2 and all(a.shape == clip.mix.shape for a in clip.stems.values())
    assert np.abs(clip.mix - np.sum(list(clip.stems.values()), axis=0)).max() < 1e-3
    assert set(clip.categories.values()) <= set(range(16))
    with pytest.raises(FileNotFoundError):
        load_example("no_such_clip")
