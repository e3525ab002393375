"""Causal codec (chapter 3): causality, streaming == batch, checkpoints, input checks, training resume."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from streamlib.audio import AudioError
from streamlib.checkpoint import CheckpointError, save_weights
from streamlib.codec import CausalCodec, SampleRateError, load_codec
from streamlib.codec.model import build_codec_model
from streamlib.config import ConfigError, get_preset

CFG = get_preset("debug").codec
SPECTRAL = dataclasses.replace(CFG, arch="spectral", width=16, encoder_blocks=2, decoder_blocks=3, latent=16,
                               analysis_fft=1024, pitch_bins=84)


@pytest.fixture(scope="module", params=["dac", "spectral", "spectral-overlap4-integrated", "spectral-oscillators",
                                        "spectral-low-window"])
def codec(request) -> CausalCodec:
    """Both designs must be causal and stream exactly: the waveform DAC and the frame-rate codec (its decoder
    with 50 % window overlap and absolute phase, with 75 % and integrated phase, and with semitone
    oscillators whose amplitude network is given random weights, so that they sound; and its encoder with the
    low-band window, its input weights random too)."""
    torch.manual_seed(0)
    cfg = {"dac": CFG, "spectral": SPECTRAL, "spectral-overlap4-integrated":
           dataclasses.replace(SPECTRAL, decoder_overlap=4, decoder_phase="integrated"),
           "spectral-oscillators": dataclasses.replace(SPECTRAL, decoder_overlap=4, oscillators=84),
           "spectral-low-window": dataclasses.replace(SPECTRAL, analysis_low_fft=4096)}[request.param]
    model = build_codec_model(cfg)
    if cfg.oscillators:
        torch.nn.init.normal_(model.decoder.osc_net.out.weight, std=0.5)
    if cfg.analysis_low_fft:
        torch.nn.init.normal_(model.encoder.net.extra.weight, std=0.5)
    return CausalCodec(cfg, model)


@pytest.mark.parametrize("overlap", [2, 3, 4])
def test_spectral_decoder_windows_sum_to_one(overlap):
    """Overlap-add of the scaled synthesis windows reconstructs a constant: every sample is covered by
    ``overlap`` windows whose values sum to 1."""
    from streamlib.codec.spectral import SpectralDecoder

    dec = SpectralDecoder(dataclasses.replace(SPECTRAL, decoder_overlap=overlap))
    summed = dec.window.reshape(overlap, dec.hop).sum(dim=0)
    assert torch.allclose(summed, torch.ones_like(summed), atol=1e-6)


@pytest.mark.parametrize("midi", [33, 45, 57, 70])
def test_an_oscillator_sounds_its_semitone(midi):
    """Known answer: oscillator ``midi - 24`` alone, held over frames, is numpy's sine of MIDI note ``midi``
    (A1, A2, A3, A#4) after the first frame's fade-in; librosa's YIN puts it within 10 cents of the note
    (YIN's own bias on an ideal sine is 1-7 cents here), and from A2 up its chroma sits on that pitch class
    (the book's chroma cuts below 55 Hz and its 7.8 Hz bins cannot place A1)."""
    from streamlib.codec.oscillators import FIRST_MIDI, SemitoneOscillators
    from streamlib.pitch import cents_off, chroma

    sr, hop, frames = 16000, 320, 100
    osc = SemitoneOscillators(84, hop, sr)
    log_amp = torch.full((1, 84, frames), -30.0)
    log_amp[0, midi - FIRST_MIDI] = math.log(0.5)
    audio, _ = osc(log_amp, osc.init_state(1, torch.device("cpu")))
    audio = audio.reshape(-1).numpy()
    ideal = 0.5 * np.sin(2 * np.pi * 440.0 * 2 ** ((midi - 69) / 12) * np.arange(audio.size) / sr)
    np.testing.assert_allclose(audio[hop:], ideal[hop:], atol=1e-4)
    assert abs(cents_off(audio, midi, sr)) < 10.0
    if midi >= 45:
        assert int(chroma(audio, sr)[:, 10:].mean(axis=1).argmax()) == midi % 12


def test_below_the_crossover_only_the_oscillators_sound():
    """With the oscillators silenced, a decoder with 36 of them (C1-B3) leaves the band below its crossover
    (254 Hz) empty, whatever the latents; above it the spectral branch still sounds."""
    from streamlib.codec.oscillators import crossover_hz
    from streamlib.codec.spectral import SpectralDecoder

    torch.manual_seed(0)
    cfg = dataclasses.replace(SPECTRAL, decoder_overlap=4, oscillators=36)
    dec = SpectralDecoder(cfg)
    torch.nn.init.constant_(dec.osc_net.out.bias, -60.0)
    with torch.no_grad():
        audio = dec(torch.randn(1, cfg.latent_dim, 60)).reshape(-1).numpy()[cfg.hop * 8:]
    power = np.abs(np.fft.rfft(audio * np.hanning(audio.size))) ** 2
    freqs = np.fft.rfftfreq(audio.size, 1 / cfg.sample_rate)
    low = power[freqs < crossover_hz(36) - 30].sum()
    high = power[freqs > crossover_hz(36) + 30].sum()
    assert high > 0 and low < 1e-4 * high


def test_the_low_window_starts_silent_and_is_checked():
    """A fresh low-band input is zero, so a codec warm-started with it encodes exactly as before; a low window
    no longer than the long one is refused."""
    torch.manual_seed(0)
    plain = build_codec_model(SPECTRAL).eval()
    low = build_codec_model(dataclasses.replace(SPECTRAL, analysis_low_fft=4096)).eval()
    low.load_state_dict(plain.state_dict(), strict=False)
    audio = torch.randn(1, 1, SPECTRAL.hop * 40) * 0.1
    with torch.no_grad():
        assert torch.allclose(low.encoder(audio), plain.encoder(audio), atol=1e-5)
    assert low.encoder.low_bins == int(500 * 4096 / SPECTRAL.sample_rate)
    with pytest.raises(ConfigError, match="analysis_low_fft"):
        dataclasses.replace(SPECTRAL, analysis_low_fft=512)


def test_oscillators_stay_below_nyquist():
    from streamlib.codec.oscillators import SemitoneOscillators

    with pytest.raises(ValueError, match="Nyquist"):
        SemitoneOscillators(84, 80, 4000)
    with pytest.raises(ConfigError, match="oscillators"):
        dataclasses.replace(SPECTRAL, oscillators=85)


def test_decoder_overlap_and_phase_are_checked():
    with pytest.raises(ConfigError, match="decoder_overlap"):
        dataclasses.replace(SPECTRAL, decoder_overlap=1)
    with pytest.raises(ConfigError, match="decoder_phase"):
        dataclasses.replace(SPECTRAL, decoder_phase="random")


@pytest.mark.parametrize("phase", ["absolute", "integrated"])
def test_a_steady_code_holds_a_note_only_with_integrated_phase(phase):
    """The frame-rate trap (chapter 3): a decoder head that states the same frame again and again. With
    absolute phase that is audio periodic at 50 Hz, whatever the frame says; with integrated phase a bin's
    advance makes a steady tone. Known answer: all magnitude on the bin nearest 110 Hz (A2) and the advance
    that lands on 110 Hz (``steady_frames``)."""
    from streamlib.codec.spectral import SpectralDecoder, steady_frames

    sr, f0 = SPECTRAL.sample_rate, 110.0
    dec = SpectralDecoder(dataclasses.replace(SPECTRAL, decoder_overlap=4, decoder_phase=phase))
    audio = steady_frames(dec, f0, 100, sr)[20 * dec.hop:]  # past the start-up
    spectrum = torch.fft.rfft(audio * torch.hann_window(len(audio))).abs()
    peak = float(spectrum.argmax()) * sr / len(audio)
    if phase == "integrated":
        assert abs(peak - f0) < 2.0
    else:  # identical frames: only multiples of the 50 Hz frame rate
        assert abs(peak / 50 - round(peak / 50)) < 0.05 and abs(peak - f0) > 5


@pytest.mark.parametrize("phase", ["absolute", "integrated"])
def test_the_phase_advance_loss_hears_the_frame_rate_trap(phase):
    """``PhaseAdvanceLoss`` (``codec train --train-option phase_weight=...``): 0 for the original itself, near 0
    for the integrated-phase decoder's steady 110 Hz tone, large for the absolute-phase decoder's 50 Hz lock
    (its 100 Hz partial turns the loud bins at the wrong rate)."""
    from streamlib.codec.spectral import SpectralDecoder, steady_frames
    from streamlib.codec.train import PhaseAdvanceLoss

    sr, f0 = SPECTRAL.sample_rate, 110.0
    dec = SpectralDecoder(dataclasses.replace(SPECTRAL, decoder_overlap=4, decoder_phase=phase))
    made = steady_frames(dec, f0, 150, sr)[20 * dec.hop:]
    made = made / made.abs().max()
    t = torch.arange(len(made)) / sr
    note = torch.sin(2 * torch.pi * f0 * t + 0.3)
    loss = PhaseAdvanceLoss(sr)
    assert float(loss(note[None, None], note[None, None])) < 1e-6
    assert float(loss(0.3 * note[None, None], note[None, None])) < 1e-6  # loudness is not its business
    got = float(loss(made[None, None], note[None, None]))
    if phase == "integrated":
        assert got < 0.05
    else:
        assert got > 0.3


def _audio(batch: int, frames: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.3 * torch.randn(batch, 1, frames * CFG.hop, generator=g)


def test_hop_is_fifty_hz():
    for name in ("paper", "book", "debug"):
        c = get_preset(name).codec
        assert c.sample_rate // c.hop == 50 and c.sample_rate % c.hop == 0


@pytest.mark.parametrize("n", [0, 3, 11])
def test_codes_are_causal(codec, n):
    x = _audio(2, 16)
    y = x.clone()
    cut = (n + 1) * codec.hop  # first sample after frame n
    y[..., cut:] = torch.randn_like(y[..., cut:])
    a, b = codec.encode(x), codec.encode(y)
    assert torch.equal(a[..., : n + 1], b[..., : n + 1])
    assert not torch.equal(a[..., n + 1 :], b[..., n + 1 :])  # the later frames do see the change


def test_decoder_is_causal_and_aligned(codec):
    codes = codec.encode(_audio(1, 12))
    other = codes.clone()
    other[..., 6:] = (other[..., 6:] + 1) % codec.codebook_size
    a, b = codec.decode(codes), codec.decode(other)
    assert a.shape[-1] == 12 * codec.hop
    assert torch.equal(a[..., : 6 * codec.hop], b[..., : 6 * codec.hop])
    assert not torch.allclose(a[..., 6 * codec.hop :], b[..., 6 * codec.hop :])


@pytest.mark.parametrize("seed", range(4))
def test_streaming_encoder_equals_batch(codec, seed):
    rng = np.random.default_rng(seed)
    x = _audio(2, 20, seed)[..., : 20 * codec.hop - int(rng.integers(0, codec.hop))]  # a partial last frame too
    whole = codec.encode(x, chunk_seconds=0)
    enc = codec.stream_encoder(batch=2)
    parts, i = [], 0
    while i < x.shape[-1]:
        n = int(rng.integers(1, 3 * codec.hop))
        parts.append(enc.push(x[..., i : i + n]))
        i += n
    parts.append(enc.flush())
    assert torch.equal(torch.cat(parts, dim=-1), whole)


@pytest.mark.parametrize("seed", range(3))
def test_streaming_decoder_equals_batch(codec, seed):
    rng = np.random.default_rng(seed)
    codes = codec.encode(_audio(2, 24, seed))
    whole = codec.decode(codes[:, :3])
    dec = codec.stream_decoder(batch=2)
    parts, i = [], 0
    while i < codes.shape[-1]:
        n = int(rng.integers(1, 6))
        parts.append(dec.push(codes[:, :3, i : i + n]))
        i += n
    torch.testing.assert_close(torch.cat(parts, dim=-1), whole, atol=1e-5, rtol=0)


def test_chunked_encode_equals_single_pass(codec):
    x = _audio(1, 120)  # 2.4 s: encode() streams it in 1 s chunks by default
    assert torch.equal(codec.encode(x), codec.encode(x, chunk_seconds=0))


def test_embedding_is_sum_of_tables(codec):
    codes = codec.encode(_audio(2, 9))
    tables = codec.codebook_tables(3)
    assert [tuple(t.shape) for t in tables] == [(codec.codebook_size, codec.latent_dim)] * 3
    by_tables = sum(t[codes[:, q]] for q, t in enumerate(tables)).transpose(1, 2)
    torch.testing.assert_close(by_tables, codec.embed_codes(codes[:, :3]), atol=1e-5, rtol=1e-5)


def test_bad_input(codec):
    x = _audio(1, 4)
    with pytest.raises(SampleRateError, match="44100 Hz"):
        codec.encode(x, sample_rate=44_100)
    bad = x.clone()
    bad[0, 0, 5] = float("nan")
    with pytest.raises(AudioError, match="NaN"):
        codec.encode(bad)
    bad[0, 0, 5] = float("inf")
    with pytest.raises(AudioError):
        codec.encode(bad)
    with pytest.raises(ValueError, match="levels"):
        codec.decode(torch.zeros(1, CFG.n_codebooks + 1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="0.."):
        codec.decode(torch.full((1, 1, 3), CFG.codebook_size))


def test_stereo_is_downmixed_by_averaging(codec):
    left, right = _audio(1, 6, 1), _audio(1, 6, 2)
    stereo = torch.cat([left, right], dim=1)
    assert torch.equal(codec.encode(stereo), codec.encode((left + right) / 2))
    assert torch.equal(codec.encode(left[:, 0]), codec.encode(left))  # [B, N] is mono


def test_checkpoint_round_trip(codec, tmp_path):
    path = tmp_path / "c.safetensors"
    save_weights(path, codec.model.state_dict(), {"config": dataclasses.asdict(codec.cfg)})
    loaded = load_codec(path)
    x = _audio(1, 10)
    assert torch.equal(loaded.encode(x), codec.encode(x))
    torch.testing.assert_close(loaded.decode(codec.encode(x)), codec.decode(codec.encode(x)), atol=1e-5, rtol=0)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_codec(tmp_path / "missing.safetensors")
    bigger = dataclasses.replace(codec.cfg, decoder_dim=32, width=codec.cfg.width * 2)
    save_weights(path, codec.model.state_dict(), {"config": dataclasses.asdict(bigger)})
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_codec(path)


def _tiny_dataset(root, seconds: float = 2.0, tracks: int = 2, sr: int = 16_000):
    t = np.arange(int(seconds * sr)) / sr
    for i in range(tracks):
        d = root / "train" / f"Track{i + 1:05d}"
        (d / "stems").mkdir(parents=True)
        stems = [0.3 * np.sin(2 * np.pi * (110 * (k + 1) + 7 * i) * t) * (t * 4 % 1 < 0.5) for k in range(2)]
        for k, s in enumerate(stems):
            sf.write(str(d / "stems" / f"S{k:02d}.flac"), s, sr, subtype="PCM_16")
        sf.write(str(d / "mix.flac"), np.sum(stems, axis=0) / 2, sr, subtype="PCM_16")


def _straight_and_resumed(codec_cfg, cfg, tmp_path, prefix: str = "", **kwargs):
    """A run of ``cfg.steps`` straight through, and one stopped at step 2 and resumed (in ``tmp_path``'s
    ``{prefix}a`` and ``{prefix}b``); asserts their weights are equal bit for bit and returns the straight run."""
    from streamlib.codec.train import train_codec

    data = tmp_path / "data"
    straight = train_codec(codec_cfg, cfg, data, tmp_path / f"{prefix}a", progress=False, **kwargs)
    train_codec(codec_cfg, dataclasses.replace(cfg, steps=2), data, tmp_path / f"{prefix}b", progress=False, **kwargs)
    resumed = train_codec(codec_cfg, cfg, data, tmp_path / f"{prefix}b", progress=False, **kwargs)
    assert resumed.step == straight.step == cfg.steps
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    return straight


def test_training_resumes_exactly(tmp_path):
    from streamlib.codec.train import CodecTrainConfig, train_codec

    _tiny_dataset(tmp_path / "data")
    cfg = CodecTrainConfig(steps=4, batch_size=2, excerpt_seconds=0.1, warmup_steps=2, bf16=False, log_every=1,
                           save_every_seconds=1e9)
    straight = _straight_and_resumed(CFG, cfg, tmp_path)
    log = (tmp_path / "a" / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,") and len(log) == 5
    assert np.isfinite(straight.last["mel"]) and straight.last["mel"] > 0


def test_sigterm_stops_after_the_step_saves_and_resumes_exactly(tmp_path, monkeypatch):
    """A scheduler's SIGTERM (or Ctrl-C) mid-run: the step in flight ends, the state is saved, the loop stops
    and gives the signal handler back; running again continues to the same weights as an unbroken run."""
    import os
    import signal

    from streamlib.checkpoint import load_training_state
    from streamlib.codec import train as codec_train

    _tiny_dataset(tmp_path / "data")
    cfg = codec_train.CodecTrainConfig(steps=5, batch_size=2, excerpt_seconds=0.1, warmup_steps=2, bf16=False,
                                       log_every=1, save_every_seconds=1e9)
    straight = codec_train.train_codec(CFG, cfg, tmp_path / "data", tmp_path / "a", progress=False)
    real_batch = codec_train.ExcerptSampler.batch

    def batch(self, seed, step, size):
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real_batch(self, seed, step, size)

    handler = signal.getsignal(signal.SIGTERM)
    with monkeypatch.context() as m:
        m.setattr(codec_train.ExcerptSampler, "batch", batch)
        stopped = codec_train.train_codec(CFG, cfg, tmp_path / "data", tmp_path / "b", progress=False)
    assert stopped.step == 3 and load_training_state(tmp_path / "b" / "train_state.pt")["step"] == 3
    assert signal.getsignal(signal.SIGTERM) is handler
    resumed = codec_train.train_codec(CFG, cfg, tmp_path / "data", tmp_path / "b", progress=False)
    assert resumed.step == 5
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k


@pytest.mark.filterwarnings("error:.*weight_norm.*is deprecated:FutureWarning")  # dac's, silenced where we call it
def test_gan_training_runs_and_resumes(tmp_path):
    from streamlib.codec.train import CodecTrainConfig, train_codec

    _tiny_dataset(tmp_path / "data")
    cfg = CodecTrainConfig(steps=2, batch_size=1, excerpt_seconds=0.25, warmup_steps=1, bf16=False, gan=True,
                           save_every_seconds=1e9)
    first = train_codec(CFG, cfg, tmp_path / "data", tmp_path / "run", progress=False)
    assert {"adversarial", "feature", "discriminator"} <= set(first.last)
    more = train_codec(CFG, dataclasses.replace(cfg, steps=3), tmp_path / "data", tmp_path / "run", progress=False)
    assert more.step == 3 and np.isfinite(more.last["discriminator"])


def test_spectral_training_with_pitch_terms_resumes_exactly(tmp_path):
    """The pitch terms train (finite, logged) and the spectral codec resumes bit-exactly."""
    from streamlib.codec.train import CodecTrainConfig, train_codec

    _tiny_dataset(tmp_path / "data")
    cfg = CodecTrainConfig(steps=4, batch_size=2, excerpt_seconds=0.2, warmup_steps=2, bf16=False, log_every=1,
                           save_every_seconds=1e9, semitone_weight=5.0, pitch_head_weight=1.0,
                           code_restart=True)
    straight = _straight_and_resumed(SPECTRAL, cfg, tmp_path)
    assert np.isfinite(straight.last["semitone"]) and straight.last["pitch_head"] > 0
    with pytest.raises(ConfigError, match="pitch head"):
        train_codec(dataclasses.replace(SPECTRAL, pitch_bins=0), cfg, tmp_path / "data", tmp_path / "c", progress=False)


def _with_midi(root, notes: dict[int, int], sr: int = 16_000):
    """MIDI next to ``_tiny_dataset``'s audio: stem k plays MIDI note ``notes[k]`` from 0.5 s to 1.0 s; the mix's
    ``all_src.mid`` holds them all, and a drum track that must not count."""
    import pretty_midi

    for track in sorted((root / "train").glob("Track*")):
        (track / "MIDI").mkdir()
        everything = pretty_midi.PrettyMIDI()
        for k, pitch in notes.items():
            stem = pretty_midi.PrettyMIDI()
            inst = pretty_midi.Instrument(program=33)
            inst.notes.append(pretty_midi.Note(velocity=100, pitch=pitch, start=0.5, end=1.0))
            stem.instruments.append(inst)
            stem.write(str(track / "MIDI" / f"S{k:02d}.mid"))
            everything.instruments.append(inst)
        drums = pretty_midi.Instrument(program=0, is_drum=True)
        drums.notes.append(pretty_midi.Note(velocity=100, pitch=60, start=0.0, end=2.0))
        everything.instruments.append(drums)
        everything.write(str(track / "all_src.mid"))


def test_midi_note_targets_align_with_the_codec_frames(tmp_path):
    """``MidiRolls.frames``: a note from 0.5 s to 1.0 s is a target at exactly the 20 ms frames whose last
    sample falls inside it, at its semitone bin; drums and other stems are not."""
    from streamlib.codec.train import MidiRolls

    _tiny_dataset(tmp_path / "data")
    _with_midi(tmp_path / "data", {0: 45, 1: 57})  # A2 and A3
    track = tmp_path / "data" / "train" / "Track00001"
    rolls = MidiRolls(16_000)
    stem = rolls.frames(track / "stems" / "S00.flac", start=8_000, hop=320, n_frames=50)  # 0.5 s to 1.5 s
    assert stem.shape == (84, 50)
    assert np.flatnonzero(stem.any(axis=1)).tolist() == [45 - 24]
    assert np.flatnonzero(stem[45 - 24]).tolist() == list(range(25))  # frame f ends at 0.5 + (f + 1) / 50 - 1 / sr
    mix = rolls.frames(track / "mix.flac", start=0, hop=320, n_frames=100)
    assert np.flatnonzero(mix.any(axis=1)).tolist() == [45 - 24, 57 - 24]  # no drum note (MIDI 60) among them
    assert mix[:, :25].sum() == 0 and mix[45 - 24, 25:50].all() and mix[:, 50:].sum() == 0
    # onsets: the frame whose samples hold a note's first one; the mix's drum hit at 0 s counts, the stem's note
    # at 0.5 s lands in frame 0 of an excerpt from 0.5 s and in frame 24 of one from 0.02 s + 1 sample
    assert np.flatnonzero(rolls.onsets(track / "mix.flac", start=0, hop=320, n_frames=100)).tolist() == [0, 25]
    assert np.flatnonzero(rolls.onsets(track / "stems" / "S00.flac", start=8_000, hop=320, n_frames=50)).tolist() == [0]
    assert np.flatnonzero(rolls.onsets(track / "stems" / "S00.flac", start=321, hop=320, n_frames=50)).tolist() == [23]


def test_training_with_midi_note_targets_runs_and_resumes(tmp_path):
    """``pitch_target='midi'``: the pitch head learns the set's notes; finite, logged, bit-exact resume; a set
    without MIDI is refused with the file it misses."""
    from streamlib.codec.train import CodecTrainConfig, train_codec

    _tiny_dataset(tmp_path / "data")
    cfg = CodecTrainConfig(steps=4, batch_size=2, excerpt_seconds=0.2, warmup_steps=2, bf16=False, log_every=1,
                           save_every_seconds=1e9, pitch_head_weight=1.0, pitch_target="midi")
    with pytest.raises(FileNotFoundError, match="MIDI"):
        train_codec(SPECTRAL, cfg, tmp_path / "data", tmp_path / "x", progress=False)
    _with_midi(tmp_path / "data", {0: 45, 1: 57})
    straight = _straight_and_resumed(SPECTRAL, cfg, tmp_path)
    assert np.isfinite(straight.last["pitch_head"]) and straight.last["pitch_head"] > 0
    with pytest.raises(ConfigError, match="pitch_target"):
        train_codec(SPECTRAL, dataclasses.replace(cfg, pitch_target="chords"), tmp_path / "data", tmp_path / "c",
                    progress=False)
    onsets = dataclasses.replace(cfg, onset_head_weight=2.0)  # the training-only onset head: resumes exactly too
    straight = _straight_and_resumed(SPECTRAL, onsets, tmp_path, prefix="onsets_")
    assert 0 < straight.last["onset_head"] < 5 and "onset_head" not in straight.model.state_dict()
    with pytest.raises(ConfigError, match="onset_head_weight"):  # a state trained without the head
        train_codec(SPECTRAL, dataclasses.replace(onsets, steps=6), tmp_path / "data", tmp_path / "a", progress=False)
    with pytest.raises(ConfigError, match="pitch head"):
        train_codec(dataclasses.replace(SPECTRAL, pitch_bins=0), dataclasses.replace(onsets, pitch_head_weight=0),
                    tmp_path / "data", tmp_path / "d", progress=False)


def test_the_phase_term_trains_and_an_older_log_keeps_its_columns(tmp_path):
    """``phase_weight`` trains (finite, logged); a run whose log began before the ``phase`` column existed
    resumes with its own columns, so the log stays one table."""
    import csv

    from streamlib.codec.train import CodecTrainConfig, train_codec

    _tiny_dataset(tmp_path / "data")
    cfg = CodecTrainConfig(steps=2, batch_size=2, excerpt_seconds=0.2, warmup_steps=1, bf16=False, log_every=1,
                           save_every_seconds=1e9, phase_weight=10.0)
    run = train_codec(SPECTRAL, cfg, tmp_path / "data", tmp_path / "a", progress=False)
    assert 0 <= run.last["phase"] <= 2
    rows = list(csv.reader((tmp_path / "a" / "log.csv").open()))
    assert rows[0][-1] == "phase" and all(len(r) == len(rows[0]) for r in rows)
    old = rows[0][:-1]  # a log written before the column existed
    with (tmp_path / "a" / "log.csv").open("w", newline="") as f:
        csv.writer(f).writerows([old] + [r[:-1] for r in rows[1:]])
    train_codec(SPECTRAL, dataclasses.replace(cfg, steps=3), tmp_path / "data", tmp_path / "a", progress=False)
    rows = list(csv.reader((tmp_path / "a" / "log.csv").open()))
    assert rows[0] == old and len(rows) == 4 and all(len(r) == len(old) for r in rows)


def test_semitone_spectrum_finds_the_note():
    """A 220 Hz tone (A3, MIDI 57) lands in band 57 - 24 of the semitone spectrum; its neighbours get a tenth."""
    from streamlib.codec.train import SemitoneSpectrum

    t = torch.arange(16_000) / 16_000
    bands = SemitoneSpectrum(16_000, 320)(torch.sin(2 * torch.pi * 220.0 * t)[None, None])[0, :, -10:].mean(-1)
    assert int(bands.argmax()) == 57 - 24 and bands[33] > 5 * max(bands[32], bands[34])


def test_codec_for_finds_the_codec_a_model_was_trained_with(codec, tmp_path):
    """Models record their codec's weights hash; codec_for picks that codec among the shipped ones."""
    from types import SimpleNamespace

    from streamlib.codec import codec_for, find_codec

    path = tmp_path / "old.safetensors"
    save_weights(path, codec.model.state_dict(), {"config": dataclasses.asdict(codec.cfg)})
    sha = load_codec(path).card["weights_sha256"]
    assert find_codec(sha, tmp_path) == path and find_codec("0" * 16, tmp_path) is None
    assert codec_for(SimpleNamespace(card={"codec_sha256": sha}), path).card["weights_sha256"] == sha


def test_decoder_only_training_keeps_the_codes_and_names_them(tmp_path):
    """A decoder retrained alone (a new window and phase, from a parent's weights) makes the parent's codes bit
    for bit, resumes exactly, and its export names the parent's codes; find_codec serves both hashes."""
    from streamlib.checkpoint import CheckpointError, load_card
    from streamlib.codec import codes_id, find_codec
    from streamlib.codec.export import codes_of_parent
    from streamlib.codec.train import TOKENIZER_PARTS, CodecTrainConfig, model_from_state, train_codec

    _tiny_dataset(tmp_path / "data")
    torch.manual_seed(0)
    parent_path = tmp_path / "ckpt" / "parent.safetensors"
    parent = build_codec_model(SPECTRAL)
    save_weights(parent_path, parent.state_dict(), {"config": dataclasses.asdict(SPECTRAL)})
    child_cfg = dataclasses.replace(SPECTRAL, decoder_overlap=4, decoder_phase="integrated")
    cfg = CodecTrainConfig(steps=4, batch_size=2, excerpt_seconds=0.2, warmup_steps=2, bf16=False, log_every=1,
                           save_every_seconds=1e9, semitone_weight=5.0, code_restart=True, decoder_only=True)
    with pytest.raises(ConfigError, match="init_from"):
        train_codec(child_cfg, cfg, tmp_path / "data", tmp_path / "x", progress=False)
    straight = _straight_and_resumed(child_cfg, cfg, tmp_path, init_from=parent_path)
    child = straight.model.state_dict()
    for k, v in parent.state_dict().items():  # the code path is untouched, the decoder learnt
        frozen = k.split(".")[0] in TOKENIZER_PARTS
        assert torch.equal(child[k], v) == frozen or (not frozen and child[k].shape != v.shape), k

    model, meta = model_from_state(tmp_path / "a" / "train_state.pt")
    assert meta["extra"]["init_from"]["fresh_tensors"] == ["decoder.net.out.bias", "decoder.net.out.weight"]
    x = _audio(1, 12)
    assert torch.equal(CausalCodec(child_cfg, model).encode(x), CausalCodec(SPECTRAL, parent.eval()).encode(x))
    named = codes_of_parent(model.state_dict(), meta)
    parent_sha = load_card(parent_path)["weights_sha256"]
    assert named["codes_sha256"] == parent_sha == named["decoder_of"]["weights_sha256"]

    child_path = tmp_path / "ckpt" / "child.safetensors"
    save_weights(child_path, model.state_dict(), {"config": dataclasses.asdict(child_cfg), **named})
    assert codes_id(load_card(child_path)) == parent_sha
    assert find_codec(parent_sha, tmp_path / "ckpt") == parent_path  # the exact weights first
    parent_path.unlink()
    parent_path.with_suffix(".json").unlink()
    assert find_codec(parent_sha, tmp_path / "ckpt") == child_path  # then a codec that makes the same codes
    tampered = {k: v.clone() for k, v in model.state_dict().items()}
    tampered["encoder.norm.weight"] += 1
    save_weights(parent_path, parent.state_dict(), {"config": dataclasses.asdict(SPECTRAL)})
    with pytest.raises(CheckpointError, match="not"):
        codes_of_parent(tampered, meta)


def test_a_state_saved_before_a_config_field_existed_resumes(tmp_path):
    """A training state whose codec config lacks a field added later (it had that field's default) resumes;
    one with another value of a field is refused."""
    from streamlib.checkpoint import load_training_state, save_training_state
    from streamlib.codec.train import CodecTrainConfig, train_codec

    _tiny_dataset(tmp_path / "data")
    cfg = CodecTrainConfig(steps=2, batch_size=2, excerpt_seconds=0.2, warmup_steps=1, bf16=False, save_every_seconds=1e9)
    train_codec(SPECTRAL, cfg, tmp_path / "data", tmp_path / "a", progress=False)
    path = tmp_path / "a" / "train_state.pt"
    st = load_training_state(path)
    del st["codec_config"]["decoder_phase"]  # as saved before the field existed
    save_training_state(path, st)
    assert train_codec(SPECTRAL, dataclasses.replace(cfg, steps=3), tmp_path / "data", tmp_path / "a",
                       progress=False).step == 3
    with pytest.raises(ConfigError, match="another codec config"):
        train_codec(dataclasses.replace(SPECTRAL, decoder_overlap=4), dataclasses.replace(cfg, steps=4),
                    tmp_path / "data", tmp_path / "a", progress=False)


@pytest.mark.parametrize("fraction, dead", [(0.1, [3]), (0.3, [2, 3])])
def test_code_restarts_revive_the_codes_used_below_their_fraction_of_a_uniform_share(fraction, dead):
    """Four codes used 70 / 25 / 5 / 0 % of the time (a uniform share: 25 %): ``restart_fraction`` 0.1 revives
    only the unused one, 0.3 also the one at 5 %; a revived code takes a current encoder output."""
    from types import SimpleNamespace

    from streamlib.codec.train import CodeRestarter

    torch.manual_seed(0)
    codebook = torch.nn.Embedding(4, 2)
    before = codebook.weight.detach().clone()
    quantizer = SimpleNamespace(quantizers=[SimpleNamespace(codebook=codebook)])
    codes = torch.tensor([0] * 14 + [1] * 5 + [2])[None, None]  # [batch, levels, frames]: 70 / 25 / 5 / 0 %
    latents = torch.full((1, 2, 20), 7.0)  # every current frame's projected input
    restarter = CodeRestarter(1, 4, fraction=fraction, every=100)
    for step in range(1, 100):
        assert restarter.update(quantizer, codes, latents, step) == 0
    assert restarter.update(quantizer, codes, latents, 100) == len(dead)
    revived = [i for i in range(4) if not torch.equal(codebook.weight[i], before[i])]
    assert revived == dead and bool((codebook.weight[dead] == 7.0).all())


def test_a_run_starts_from_another_runs_training_state(tmp_path):
    """``--init-from runs/X/train_state.pt``: the new run starts from that run's weights (and records its step);
    a decoder-only run refuses it (its codes must be a shipped codec's)."""
    from streamlib.codec.model import build_codec_model
    from streamlib.codec.train import CodecTrainConfig, init_weights, train_codec

    _tiny_dataset(tmp_path / "data")
    cfg = CodecTrainConfig(steps=2, batch_size=2, excerpt_seconds=0.2, warmup_steps=1, bf16=False,
                           save_every_seconds=1e9)
    first = train_codec(SPECTRAL, cfg, tmp_path / "data", tmp_path / "a", progress=False)
    fresh = build_codec_model(SPECTRAL)
    done = init_weights(fresh, tmp_path / "a" / "train_state.pt")
    assert done["state_step"] == 2 and done["fresh_tensors"] == []
    for (k, a), b in zip(first.model.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(a, b), k
    with pytest.raises(ConfigError, match="decoder_only"):
        train_codec(SPECTRAL, dataclasses.replace(cfg, decoder_only=True), tmp_path / "data", tmp_path / "b",
                    init_from=tmp_path / "a" / "train_state.pt", progress=False)


def test_a_warm_start_does_not_purge_codes_in_steady_use():
    """A code used at 15 % of a uniform share every step is alive (threshold 10 %) from the first check on:
    usage starts at a uniform share. Counted from zero it read 6 % at step 10 and was restarted."""
    from types import SimpleNamespace

    from streamlib.codec.train import CodeRestarter

    codebook = torch.nn.Embedding(4, 2)
    quantizer = SimpleNamespace(quantizers=[SimpleNamespace(codebook=codebook)])
    codes = torch.tensor([0] * 71 + [1] * 3 + [2] * 3 + [3] * 3)[None, None]  # uniform share 20 a step; 3 = 15 %
    latents = torch.zeros(1, 2, 80)
    restarter = CodeRestarter(1, 4, fraction=0.1, every=10)
    assert [restarter.update(quantizer, codes, latents, step) for step in range(1, 201)] == [0] * 200
    assert float(restarter.usage[0, 3]) == pytest.approx(3.0, rel=1e-3)  # the steady state: its own rate


def test_the_codebook_entropy_term_knows_a_collapsed_and_a_spread_batch():
    """``codebook_entropy``: frames that sit on one code give frame and batch entropy 0 and perplexity 1; frames
    that sit one on each of K codes give batch entropy log K, perplexity K and a loss of -log K. Its gradient
    pulls a batch crowded on one code apart."""
    from streamlib.codec.train import codebook_entropy

    codebook = torch.eye(4)  # four orthogonal codes in 4 dimensions: cosines 1 and 0
    collapsed = codebook[[2] * 6].T[None]  # [B=1, d=4, T=6], every frame on code 2
    one = codebook_entropy(collapsed, codebook, temperature=0.01)
    assert float(one["entropy_frame"]) < 1e-6 and float(one["entropy_batch"]) < 1e-6
    assert float(one["perplexity0"]) == pytest.approx(1.0)
    spread = codebook_entropy(codebook.T[None], codebook, temperature=0.01)
    assert float(spread["entropy_batch"]) == pytest.approx(math.log(4), abs=1e-5)
    assert float(spread["entropy"]) == pytest.approx(-math.log(4), abs=1e-5)
    assert float(spread["perplexity0"]) == pytest.approx(4.0)
    torch.manual_seed(0)
    latents = (codebook[[0] * 16] + 0.3 * torch.randn(16, 4)).T[None].requires_grad_()
    opt = torch.optim.SGD([latents], lr=0.05)
    before = float(codebook_entropy(latents, codebook, 0.1)["perplexity0"])
    for _ in range(200):
        opt.zero_grad()
        codebook_entropy(latents, codebook, 0.1)["entropy"].backward()
        opt.step()
    assert float(codebook_entropy(latents, codebook, 0.1)["perplexity0"]) > before + 0.3  # 1.59 -> 1.99


def test_training_with_the_entropy_term_runs_and_logs_it(tmp_path):
    """``entropy_weight``: finite, logged with the batch's first-level perplexity, and resumes exactly."""
    import csv

    from streamlib.codec.train import CodecTrainConfig

    _tiny_dataset(tmp_path / "data")
    cfg = CodecTrainConfig(steps=4, batch_size=2, excerpt_seconds=0.2, warmup_steps=2, bf16=False, log_every=1,
                           save_every_seconds=1e9, entropy_weight=0.5)
    straight = _straight_and_resumed(SPECTRAL, cfg, tmp_path)
    assert np.isfinite(straight.last["entropy"]) and straight.last["perplexity0"] >= 1
    rows = list(csv.DictReader((tmp_path / "a" / "log.csv").open()))
    assert len(rows) == 4 and all(float(r["perplexity0"]) >= 1 for r in rows)
