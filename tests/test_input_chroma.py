"""The chroma input path (streamlib.input_chroma): a known answer, causality, streaming == whole signal,
the visibility rule applied to it, the model and generator reading it, the cache and training."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from streamlib.codec import CausalCodec
from streamlib.codec.tokenize import TokenWindows, add_chroma, has_chroma
from streamlib.config import ConfigError, StreamSpec, get_preset
from streamlib.input_chroma import CausalChroma, causal_chroma
from streamlib.model import Accompanist, load_accompanist
from streamlib.tokens.categories import CODE_OFFSET
from streamlib.tokens.visibility import AlignmentError, align, last_visible_input, predicting_position
from streamlib.train import Run, export_model, train

SR = 16000
DEBUG = get_preset("debug")
SIZE = DEBUG.codec.codebook_size
CFG = dataclasses.replace(DEBUG.model, input_chroma=True)


def tone(midi: int, seconds: float = 1.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (amp * np.sin(2 * np.pi * 440.0 * 2 ** ((midi - 69) / 12) * t)).astype(np.float32)


@pytest.mark.parametrize("midi", [45, 52, 60, 67])  # A2, E3, C4, G4
def test_a_tone_lands_on_its_pitch_class(midi):
    c = causal_chroma(tone(midi), SR)
    assert c.shape == (12, 50)
    assert int(np.bincount(c[:, 15:].argmax(axis=0)).argmax()) == midi % 12
    assert np.allclose(c[:, 15:].sum(axis=0), 1.0, atol=1e-5)  # louder than the floor: sums to one


def test_silence_is_zero_and_quiet_fades():
    assert causal_chroma(np.zeros(SR), SR).max() == 0.0
    quiet = causal_chroma(tone(57, amp=1e-5), SR)  # -100 dBFS: far below the -60 dB floor
    assert quiet.sum(axis=0).max() < 0.1
    assert np.allclose(causal_chroma(tone(57, amp=2e-3), SR)[:, 15:].sum(axis=0), 1.0, atol=1e-5)  # -54 dBFS


def test_streaming_equals_whole_signal_and_is_causal():
    rng = np.random.default_rng(0)
    x = rng.normal(size=SR * 2).astype(np.float32) * 0.1
    whole = causal_chroma(x, SR)
    stream = CausalChroma(SR)
    parts, i = [], 0
    for n in rng.integers(1, 2000, size=200):
        parts.append(stream.push(x[i : i + n]))
        i += n
        if i >= len(x):
            break
    got = np.concatenate(parts, axis=1)
    assert np.allclose(got, whole[:, : got.shape[1]], atol=1e-6)
    y = x.copy()
    y[320 * 60 :] = rng.normal(size=len(y) - 320 * 60)  # change everything after frame 59
    changed = causal_chroma(y, SR)
    assert np.array_equal(changed[:, :60], whole[:, :60]) and not np.allclose(changed[:, 60:], whole[:, 60:])


def test_bad_audio_is_refused():
    with pytest.raises(ValueError, match="NaN"):
        causal_chroma(np.array([0.0, np.nan] * 400), SR)


@pytest.mark.parametrize("tf", [-2, 0, 3])
def test_features_follow_the_visibility_rule(tf):
    x = torch.randint(0, SIZE, (1, 4, 20))
    f = torch.arange(20.0)[None, None].expand(1, 12, 20).contiguous() + 1  # feature = frame + 1
    a = align(x, x, 2, tf, input_features=f)
    for j in range(20):
        if a.input_pad_mask[0, j]:
            assert a.input_features[0, 0, j] == 0
        else:  # the same frame as the codes at this position
            assert torch.equal(a.input_codes[0, :, j], x[0, :, int(a.input_features[0, 0, j]) - 1])
    with pytest.raises(AlignmentError):
        align(x, x, 2, tf, input_features=f[..., :10])


@pytest.fixture(scope="module")
def tables():
    torch.manual_seed(0)
    return CausalCodec(DEBUG.codec).codebook_tables(4)


def make(tables, tf: int) -> Accompanist:
    torch.manual_seed(0)
    acc = Accompanist(CFG, tables, StreamSpec(tf=tf, k=1, window=60)).eval()
    with torch.no_grad():
        acc.gate.fill_(1.0)
    return acc


def test_model_needs_and_reads_the_chroma_causally(tables):
    tf, t = 2, 24
    acc = make(tables, tf)
    x, y = torch.randint(0, SIZE, (1, 4, t)), torch.randint(0, SIZE, (1, 4, t))
    c = torch.rand(1, 12, t)
    with pytest.raises(ConfigError, match="chroma"):
        acc(*_streams(align(x, y, 2, tf)))
    a = align(x, y, 2, tf, input_features=c)
    base = acc(*_streams(a), input_features=a.input_features)
    c2 = c.clone()
    c2[..., 10:] = torch.rand(1, 12, t - 10)
    a2 = align(x, y, 2, tf, input_features=c2)
    moved = (acc(*_streams(a2), input_features=a2.input_features) - base).abs().amax(-1)[0] > 0
    for q in range(4):
        for f in range(t):
            pos = predicting_position(f, q, tf)
            if pos < moved.shape[1]:
                assert bool(moved[q, pos]) == (last_visible_input(f, q, tf) >= 10), (q, f)


def _streams(a):
    return a.input_codes, a.input_pad_mask, a.output_tokens


def test_generator_reads_chroma_like_the_teacher_forced_pass(tables):
    tf, t = 1, 16
    acc = make(tables, tf)
    x, c = torch.randint(0, SIZE, (1, 4, t + 8)), torch.rand(1, 12, t + 8)
    gen = acc.generator(4, top_k=1)
    with pytest.raises(ValueError, match="chroma"):
        gen.feed_input(x[0])
    with pytest.raises(ValueError, match=r"\[12, "):
        gen.feed_input(x[0], c[0, :, :3])
    gen.feed_input(x[0, :, :10], c[0, :, :10])
    gen.feed_input(x[0, :, 10:], c[0, :, 10:])
    out = gen.generate(t)
    a = align(x[..., :t], out[None], 4, tf, input_features=c[..., :t])
    pred = acc(*_streams(a), input_features=a.input_features).argmax(-1) + CODE_OFFSET
    assert torch.equal(pred[a.loss_mask], a.targets[a.loss_mask])
    plain = Accompanist(DEBUG.model, tables, StreamSpec(tf=tf, k=1, window=60)).generator(4)
    with pytest.raises(ValueError, match="does not read chroma"):
        plain.feed_input(x[0], c[0])
    fast = acc.generator(4, top_k=1, fast=True, compile=False, dtype=torch.float32)
    with pytest.raises(ValueError, match="chroma"):
        fast.feed_input(x[0])
    fast.feed_input(x[0, :, :7], c[0, :, :7])
    fast.feed_input(x[0, :, 7:], c[0, :, 7:])
    assert torch.equal(fast.generate(t), out)  # the fast path reads the chroma as the plain one does


@pytest.mark.parametrize("kwargs", [None, {"fast": True, "compile": False}])
def test_stream_engine_feeds_the_chroma(tables, kwargs):
    from streamlib.stream import stream

    torch.manual_seed(0)
    codec = CausalCodec(DEBUG.codec).eval()
    acc = Accompanist(CFG, codec.codebook_tables(4), StreamSpec(tf=3, k=2, window=60)).eval()
    audio = np.random.default_rng(1).normal(size=codec.sample_rate).astype(np.float32) * 0.1
    result = stream(acc, codec, audio, category=4, seed=0, generator_kwargs=kwargs)
    assert result.frames > 0 and np.isfinite(result.accompaniment).all()


def fake_chroma_cache(root: Path, frames: int = 120) -> str:
    rng = np.random.default_rng(0)
    for split in ("train", "validation"):
        (root / split).mkdir(parents=True, exist_ok=True)
        for t in range(2):
            np.savez(root / split / f"Track{t:05d}.npz", stems=rng.integers(0, SIZE, (3, 4, frames)).astype(np.int16),
                     categories=np.array([0, 4, 14], np.int8), active=np.ones((3, frames), bool),
                     mix_codes=rng.integers(0, SIZE, (2, 4, frames)).astype(np.int16),
                     mix_members=np.array([[0, 1, 1], [1, 0, 1]], bool), mix_target=np.array([0, 1], np.int16),
                     mix_active=np.ones((2, frames), bool), mix_policy=np.array([0, 0], np.int8),
                     mix_chroma=rng.random((2, 12, frames)).astype(np.float16))
    (root / "meta.json").write_text('{"codec_sha256": "test", "seed": 0}')
    return str(root)


def test_training_with_the_chroma_path_resumes_and_exports(tmp_path, tables):
    tokens = fake_chroma_cache(tmp_path / "tok")
    ds = TokenWindows(tokens, "train", 50, chroma=True)
    assert ds[0]["input_chroma"].shape == (12, 50) and ds[0]["input_chroma"].dtype == torch.float32
    preset = DEBUG.replace(train=dataclasses.replace(DEBUG.train, batch_size=2, steps=4, warmup_steps=1))
    codec = CausalCodec(DEBUG.codec)
    whole = train(Run(tokens, str(tmp_path / "a"), tf=2, input_chroma=True, val_every=2, val_windows=2),
                  preset, codec=codec, device="cpu", progress=False)
    part = Run(tokens, str(tmp_path / "b"), tf=2, input_chroma=True, val_every=2, val_windows=2)
    train(dataclasses.replace(part, steps=2), preset, codec=codec, device="cpu", progress=False)
    resumed = train(part, preset, codec=codec, device="cpu", progress=False)
    assert resumed["val_loss"] == pytest.approx(whole["val_loss"], abs=1e-6)
    card = export_model(tmp_path / "a" / "train_state.pt", tmp_path / "m.safetensors", fixture=tmp_path / "fx.npz")
    assert load_accompanist(tmp_path / "m.safetensors").card["model_config"]["input_chroma"] is True
    assert "input_chroma" in np.load(tmp_path / "fx.npz").files
    assert load_accompanist(tmp_path / "m.safetensors").cfg.input_chroma


def test_a_cache_without_chroma_says_how_to_add_it(tmp_path):
    tokens = fake_chroma_cache(tmp_path / "tok")
    f = Path(tokens) / "train" / "Track00000.npz"
    with np.load(f) as z:
        arrays = {k: z[k] for k in z.files if k != "mix_chroma"}
    np.savez(f, **arrays)
    assert not has_chroma(f)
    with pytest.raises(ValueError, match="re-run python -m streamlib tokenize"):
        TokenWindows(tokens, "train", 50, chroma=True)


def test_add_chroma_mixes_the_stems_like_the_cache(tmp_path):
    """A cache file gets, for each mixture row, the chroma of the sum of its member stems."""
    track = tmp_path / "data" / "train" / "Track00000"
    (track / "stems").mkdir(parents=True)
    import soundfile as sf
    import yaml

    notes = {"S00": 45, "S01": 52, "S02": 60}
    for name, midi in notes.items():
        sf.write(track / "stems" / f"{name}.wav", tone(midi, 2.0), SR)
    (track / "metadata.yaml").write_text(yaml.safe_dump({"stems": {
        n: {"inst_class": c, "program_num": p, "is_drum": False, "audio_rendered": True}
        for n, c, p in (("S00", "Bass", 33), ("S01", "Piano", 0), ("S02", "Guitar", 25))}}))
    path = tmp_path / "Track00000.npz"
    np.savez(path, stems=np.zeros((3, 4, 100), np.int16), mix_members=np.array([[0, 1, 1], [1, 0, 1]], bool),
             mix_policy=np.array([0, 1], np.int8))
    add_chroma(track, path, SR)
    got = np.load(path)["mix_chroma"].astype(np.float32)
    assert got.shape == (2, 12, 100)
    expected = causal_chroma(tone(52, 2.0) + tone(60, 2.0), SR)
    assert np.allclose(got[0], expected, atol=2e-3)
    classes = set(got[1][:, 30:].argmax(axis=0).tolist())
    assert classes <= {45 % 12, 60 % 12}


def test_chord_tone_share_and_figure():
    from streamlib.input_chroma import chord_tone_share, input_chroma_figure
    from streamlib.pitch import chord_frames

    chords = [[0.0, 1.0, "A:min"], [1.0, 2.0, "C:maj"]]
    audio = np.concatenate([tone(57, 1.0) + tone(64, 1.0), tone(60, 1.0) + tone(67, 1.0)])  # A+E, then C+G
    c = causal_chroma(audio, SR)
    _, tones = chord_frames(chords, c.shape[1])
    own = chord_tone_share(c, tones)  # the notes are chord tones (a pure tone keeps ~0.7 on its own class:
    assert own > 0.6                  # the filterbank spreads the rest to its neighbours)
    others = [chord_tone_share(c, np.roll(tones, s, axis=0)) for s in range(1, 12)]  # the chords transposed
    assert own > max(others) + 0.25  # (a fifth away shares a tone: 0.38)
    assert chord_tone_share(np.ones((12, 100)), chord_frames(chords, 100)[1]) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="no chroma energy"):
        chord_tone_share(np.zeros((12, 100)), tones)
    fig = input_chroma_figure(c, chords)
    assert len(fig.data) == 2 and {a.text for a in fig.layout.annotations} == {"A:min", "C:maj"}
