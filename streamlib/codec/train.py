"""Training the causal codec: losses, schedule, excerpt sampler, resumable loop, export.

Chapter 3 ("Causal codec tokenisation") runs a short quick-mode training with ``train_codec``;
``python -m streamlib codec train`` runs the long one. The recipe follows descript-audio-codec
(REFERENCE section 6): multi-scale mel loss (weight 15), multi-scale STFT loss, commitment (0.25)
and codebook (1) losses, quantiser dropout, optional GAN (dac's multi-period + multi-band
discriminator, LSGAN + feature matching), AdamW betas (0.8, 0.99) with an exponential decay.
Two CPU-minded changes, both measured: a linear warm-up, and the quantiser trained at a lower
learning rate than encoder and decoder (a full-rate quantiser made the commitment loss spike);
and an L1 waveform term in the first steps that fades out (it pulls the decoder out of the
"tonal carpet" it produces at random initialisation).

Two pitch terms, off by default and chosen by the experiments in ``docs/codec_experiments.md``:
``semitone_weight`` (L1 between log semitone spectra, 84 bands C1-B7 from a 4096-point STFT, of
reconstruction and original: mel bands are an octave-blind few at low frequencies, this is one band
per note) and ``pitch_head_weight`` (the codec's head on the *first RVQ level alone* predicts the
frame's semitone spectrum, so the first level carries the notes, as Mimi distils semantics into
its first codebook). With ``pitch_target="midi"`` the head predicts the notes of the set's MIDI
instead (``MidiRolls``: which semitones sound at each frame's end), which a spectrum smears over
partials and, for the bass, over neighbouring semitones. ``onset_head_weight`` adds a second head on the
first level, used in training only, that predicts whether a note (drums included) starts in the frame, so
that the notes do not push the rhythm out of the first codebook. ``entropy_weight`` spreads the first
level's use over its codebook (``codebook_entropy``).

Every excerpt has the same length (each new input shape costs seconds of re-setup on a CPU).
The excerpt of step ``s`` is drawn from ``numpy.random.default_rng([seed, s])``, so a resumed run
sees exactly the data of an uninterrupted one; model, optimisers, schedulers and torch's RNG are
restored from an atomically written training state.
"""

from __future__ import annotations

import csv
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
from torch import Tensor

from streamlib.checkpoint import (
    hardware,
    load_training_state,
    rng_state,
    save_training_state,
    set_rng_state,
)
from streamlib.codec.model import RVQCodec, build_codec_model, dac_weight_norm_quiet
from streamlib.config import CodecConfig, ConfigError, bf16_supported, get_device, seed_everything
from streamlib.pitch import SEMITONE_BINS, SEMITONE_LOWEST
from streamlib.stopping import StopRequest


@dataclass(frozen=True)
class CodecTrainConfig:
    """Optimisation settings of a codec run (defaults: the book's CPU run)."""

    steps: int = 20_000
    batch_size: int = 8
    excerpt_seconds: float = 0.5
    lr: float = 1e-3
    quantizer_lr_scale: float = 0.5  # the codebooks move slower than encoder/decoder
    warmup_steps: int = 200
    gamma: float = 0.99985  # ExponentialLR factor per step after warm-up
    betas: tuple[float, float] = (0.8, 0.99)
    weight_decay: float = 0.0
    grad_clip: float = 50.0
    mel_weight: float = 15.0
    stft_weight: float = 1.0
    commitment_weight: float = 0.25
    codebook_weight: float = 1.0
    waveform_weight: float = 5.0  # L1 on samples, faded out linearly over waveform_steps
    waveform_steps: int = 2000
    gan: bool = False
    feature_weight: float = 2.0
    adversarial_weight: float = 1.0
    code_restart: bool = False  # give codes that fell out of use a current encoder output (see CodeRestarter)
    restart_fraction: float = 0.1  # a code is dead below this fraction of a uniform share of use
    semitone_weight: float = 0.0  # L1 of log semitone spectra (reconstruction vs original)
    pitch_head_weight: float = 0.0  # loss of the first-level pitch head (needs cfg.pitch_bins)
    # what the pitch head predicts: "audio", the excerpt's normalised semitone spectrum (cross entropy), or
    # "midi", the notes sounding in the set's MIDI at each frame's end (C1-B7, binary cross entropy per semitone)
    pitch_target: str = "audio"
    # a training-only head on the first level predicts whether a MIDI note (drums too) starts in each frame
    onset_head_weight: float = 0.0
    # entropy term on the first level's soft code assignments (codebook_entropy): each frame confident,
    # the batch spread over the codebook
    entropy_weight: float = 0.0
    entropy_temperature: float = 0.02  # of the soft assignment: cosine similarity / temperature
    phase_weight: float = 0.0  # PhaseAdvanceLoss: the low partials' frequencies within their bins (the bass)
    mix_fraction: float = 0.5  # share of excerpts taken from mixes (the rest from stems)
    # train the decoder alone: encoder, quantiser and pitch head frozen, so the codes stay those of the
    # codec it starts from (train_codec's init_from), and so do the token caches and accompanists made with them
    decoder_only: bool = False
    bf16: bool = True  # autocast where the device has native bf16 (config.bf16_supported); quantiser in fp32
    seed: int = 0
    save_every_seconds: float = 180.0
    max_seconds: float | None = None  # wall-clock budget of this sitting (stops cleanly, then saves)
    log_every: int = 10


# ----------------------------------------------------------------------------- data


class ExcerptSampler:
    """Fixed-length excerpts from the ``split`` of a Slakh-layout folder: mixes and stems.

    Excerpts quieter than ``min_rms_db`` are redrawn (silence teaches the codec nothing).
    """

    def __init__(self, root: str | Path, split: str, sample_rate: int, excerpt_samples: int,
                 mix_fraction: float = 0.5, min_rms_db: float = -45.0):
        root = Path(root)
        tracks = sorted(p for p in (root / split).glob("Track*") if p.is_dir())
        if not tracks:
            raise FileNotFoundError(f"no tracks under {root / split}")
        self.mixes = [t / "mix.flac" for t in tracks if (t / "mix.flac").exists()]
        self.stems = sorted(f for t in tracks for f in (t / "stems").glob("*.flac"))
        if not self.mixes or not self.stems:
            raise FileNotFoundError(f"{root / split}: expected mix.flac and stems/*.flac in each track")
        self._frames = {}
        sr = sf.info(str(self.mixes[0])).samplerate
        if sr != sample_rate:
            raise ConfigError(f"{root} is at {sr} Hz but the codec runs at {sample_rate} Hz; synthesise at that rate")
        self.sample_rate = sample_rate
        self.n = excerpt_samples
        self.mix_fraction = mix_fraction
        self.min_rms = 10 ** (min_rms_db / 20)
        self.rolls: MidiRolls | None = None  # made at the first batch that asks for notes

    def _length(self, path: Path) -> int:
        if path not in self._frames:
            self._frames[path] = sf.info(str(path)).frames
        return self._frames[path]

    def excerpt(self, rng: np.random.Generator) -> tuple[np.ndarray, Path, int]:
        """An excerpt, the file it comes from and its first sample."""
        for _ in range(20):
            files = self.mixes if rng.random() < self.mix_fraction else self.stems
            path = files[int(rng.integers(len(files)))]
            length = self._length(path)
            if length < self.n:
                continue
            start = int(rng.integers(0, length - self.n + 1))
            x, _ = sf.read(str(path), start=start, frames=self.n, dtype="float32", always_2d=True)
            x = x.mean(axis=1)
            if np.sqrt(np.mean(x**2)) >= self.min_rms:
                return x, path, start
        return x, path, start  # twenty quiet draws in a row: keep the last one rather than loop forever

    def batch(self, seed: int, step: int, batch_size: int) -> Tensor:
        """The batch of ``step`` ``[B, 1, N]``: a pure function of (seed, step)."""
        return self._audio(self._draw(seed, step, batch_size))

    def batch_with_midi(self, seed: int, step: int, batch_size: int, hop: int) -> tuple[Tensor, Tensor, Tensor]:
        """``batch``, the notes sounding at the end of each ``hop``-sample frame ``[B, 84, N / hop]`` and
        whether a note starts in each frame ``[B, N / hop]``, from each excerpt's MIDI (``MidiRolls``)."""
        drawn = self._draw(seed, step, batch_size)
        if self.rolls is None:
            self.rolls = MidiRolls(self.sample_rate)
        n_frames = self.n // hop
        notes = np.stack([self.rolls.frames(path, start, hop, n_frames) for _, path, start in drawn])
        onsets = np.stack([self.rolls.onsets(path, start, hop, n_frames) for _, path, start in drawn])
        return self._audio(drawn), torch.from_numpy(notes), torch.from_numpy(onsets)

    def _draw(self, seed: int, step: int, batch_size: int) -> list[tuple[np.ndarray, Path, int]]:
        rng = np.random.default_rng([seed, step])
        return [self.excerpt(rng) for _ in range(batch_size)]

    @staticmethod
    def _audio(drawn: list[tuple[np.ndarray, Path, int]]) -> Tensor:
        return torch.from_numpy(np.stack([x for x, _, _ in drawn]))[:, None, :]


class MidiRolls:
    """The notes of a Slakh-layout track's MIDI, per audio file: ``mix.flac`` reads ``all_src.mid``,
    ``stems/SNN.flac`` reads ``MIDI/SNN.mid``. Drum instruments have no pitch: they are left out of the
    notes and kept among the onsets. Each file's notes (semitone row, start and end in seconds) and onsets
    are read once (pretty_midi) and kept: a few kB a file."""

    def __init__(self, sample_rate: int):
        self.sample_rate = sample_rate
        self._notes: dict[Path, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._onsets: dict[Path, np.ndarray] = {}

    @staticmethod
    def midi_of(audio: Path) -> Path:
        if audio.name == "mix.flac":
            return audio.parent / "all_src.mid"
        return audio.parent.parent / "MIDI" / f"{audio.stem}.mid"

    def _read(self, audio: Path) -> None:
        import pretty_midi

        midi = self.midi_of(audio)
        if not midi.exists():
            raise FileNotFoundError(f"{midi}: MIDI targets need the MIDI of {audio}")
        instruments = pretty_midi.PrettyMIDI(str(midi)).instruments
        notes = [(n.pitch - SEMITONE_LOWEST, n.start, n.end) for inst in instruments if not inst.is_drum
                 for n in inst.notes if 0 <= n.pitch - SEMITONE_LOWEST < SEMITONE_BINS]
        rows, starts, ends = zip(*notes) if notes else ((), (), ())
        self._notes[audio] = (np.array(rows, dtype=np.int64), np.array(starts), np.array(ends))
        self._onsets[audio] = np.sort(np.array([n.start for inst in instruments for n in inst.notes]))

    def notes(self, audio: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows (semitone ``SEMITONE_LOWEST + row``, C1-B7 only), starts and ends (s) of ``audio``'s notes."""
        if audio not in self._notes:
            self._read(audio)
        return self._notes[audio]

    def frames(self, audio: Path, start: int, hop: int, n_frames: int) -> np.ndarray:
        """``[84, n_frames]`` float: 1 where a note sounds at the last sample of a frame of the excerpt of
        ``audio`` from sample ``start`` (where the causal codec's frame has heard it all)."""
        rows, starts, ends = self.notes(audio)
        times = (start + (np.arange(n_frames) + 1) * hop - 1) / self.sample_rate
        sounding = (starts[:, None] <= times[None]) & (times[None] < ends[:, None])  # [notes, frames]
        out = np.zeros((SEMITONE_BINS, n_frames), dtype=np.float32)
        note, frame = np.nonzero(sounding)
        out[rows[note], frame] = 1.0
        return out

    def onsets(self, audio: Path, start: int, hop: int, n_frames: int) -> np.ndarray:
        """``[n_frames]`` float: 1 where a note of any instrument, drums included, starts within a frame's
        samples (the excerpt of ``audio`` from sample ``start``)."""
        if audio not in self._onsets:
            self._read(audio)
        frame = (np.rint(self._onsets[audio] * self.sample_rate).astype(np.int64) - start) // hop
        out = np.zeros(n_frames, dtype=np.float32)
        out[frame[(frame >= 0) & (frame < n_frames)]] = 1.0
        return out


# ----------------------------------------------------------------------------- losses


class CodecLosses(torch.nn.Module):
    """dac's multi-scale mel loss (its 44 kHz recipe's scales) and multi-scale STFT loss on tensors."""

    def __init__(self, sample_rate: int):
        super().__init__()
        from dac.nn.loss import MelSpectrogramLoss, MultiScaleSTFTLoss

        self.sample_rate = sample_rate
        self.mel = MelSpectrogramLoss(
            n_mels=[5, 10, 20, 40, 80, 160, 320],
            window_lengths=[32, 64, 128, 256, 512, 1024, 2048],
            mag_weight=0.0, pow=1.0, mel_fmin=[0.0] * 7, mel_fmax=[None] * 7,
        )
        self.stft = MultiScaleSTFTLoss(window_lengths=[2048, 512])

    def signal(self, x: Tensor):
        """A tensor ``[B, 1, N]`` as the ``AudioSignal`` dac's losses take."""
        from audiotools import AudioSignal

        return AudioSignal(x.float(), self.sample_rate)

    def forward(self, estimate: Tensor, reference: Tensor) -> dict[str, Tensor]:
        est, ref = self.signal(estimate), self.signal(reference)
        return {"mel": self.mel(est, ref), "stft": self.stft(est, ref),
                "waveform": (estimate.float() - reference).abs().mean()}


class SemitoneSpectrum(torch.nn.Module):
    """Audio ``[B, 1, N]`` -> semitone-band power ``[B, 84, N / hop]`` (window ending at each frame's end)."""

    def __init__(self, sample_rate: int, hop: int, n_fft: int = 4096):
        super().__init__()
        from streamlib.pitch import semitone_filterbank

        self.hop, self.n_fft = hop, n_fft
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("bank", torch.from_numpy(semitone_filterbank(sample_rate, n_fft)), persistent=False)

    def forward(self, audio: Tensor) -> Tensor:
        x = torch.nn.functional.pad(audio[:, 0].float(), (self.n_fft - self.hop, 0))
        spec = torch.fft.rfft(x.unfold(-1, self.n_fft, self.hop) * self.window).abs().pow(2)
        return torch.einsum("kf,btf->bkt", self.bank, spec)


def pitch_losses(spectrum: SemitoneSpectrum, estimate: Tensor, reference: Tensor,
                 logits: Tensor | None, notes: Tensor | None = None) -> dict[str, Tensor]:
    """``semitone``: L1 of log semitone power; ``pitch_head``: cross entropy of the level-0 head
    against the reference's normalised semitone spectrum, on frames within 50 dB of the loudest, or, given
    ``notes [B, 84, T]`` (``MidiRolls``), binary cross entropy against them, summed over the semitones and
    averaged over frames (silent frames included: no note is a target too)."""
    ref = spectrum(reference)
    out = {"semitone": (torch.log10(spectrum(estimate) + 1e-6) - torch.log10(ref + 1e-6)).abs().mean()}
    if logits is not None and notes is not None:
        bce = F.binary_cross_entropy_with_logits(logits.float(), notes.to(logits.device), reduction="none")
        out["pitch_head"] = bce.sum(dim=1).mean()
    elif logits is not None:
        energy = ref.sum(dim=1)  # [B, T]
        keep = energy > energy.amax(dim=-1, keepdim=True) * 1e-5
        target = ref / energy.clamp_min(1e-12)[:, None]
        ce = -(target * torch.log_softmax(logits.float(), dim=1)).sum(dim=1)
        out["pitch_head"] = (ce * keep).sum() / keep.sum().clamp_min(1)
    return out


class PhaseAdvanceLoss(torch.nn.Module):
    """How far the reconstruction's phase advances from one STFT frame to the next, against the original's,
    in the bins below ``max_hz``: ``sum w |u_y - u_x|^2 / 2`` with ``u`` the unit phasor of
    ``X_n conj(X_{n-1})`` and ``w`` the original's energy share (``|X_n X_{n-1}|``, normalised per excerpt);
    0 when every loud low bin turns like the original's, 2 when it turns the opposite way.

    Why: a magnitude loss places a low note's energy in a 7.8 Hz bin, the phase advance says where in the bin
    it sits; a frame-rate decoder whose steady frames repeat every 20 ms turns a held bass note into partials
    at multiples of 50 Hz (G1, G2, D3: docs/codec_experiments.md), and only the advance tells it so.
    """

    def __init__(self, sample_rate: int, n_fft: int = 2048, hop: int = 256, max_hz: float = 1000.0):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.bins = int(max_hz * n_fft / sample_rate) + 1
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def advance(self, audio: Tensor) -> Tensor:
        """``X_n conj(X_{n-1})`` of the low bins, ``[B, bins, frames - 1]`` (complex)."""
        x = torch.stft(audio[:, 0].float(), self.n_fft, self.hop, window=self.window, center=False,
                       return_complex=True)[:, : self.bins]
        return x[..., 1:] * x[..., :-1].conj()

    def forward(self, estimate: Tensor, reference: Tensor) -> Tensor:
        d_ref, d_est = self.advance(reference), self.advance(estimate)
        w = d_ref.abs()
        w = w / w.sum(dim=(1, 2), keepdim=True).clamp_min(1e-12)
        unit = lambda d: d / (d.abs() + 1e-8)  # noqa: E731
        return ((unit(d_est) - unit(d_ref)).abs().pow(2) * w).sum(dim=(1, 2)).mean() / 2


def codebook_entropy(latents: Tensor, codebook: Tensor, temperature: float) -> dict[str, Tensor]:
    """The entropy term of MAGVIT-v2's lookup-free quantiser, for one dac codebook level.

    ``latents [B, d, T]`` are the level's projected inputs and ``codebook [K, d]`` its codes; dac picks the
    code of highest cosine similarity, so the soft assignment is ``softmax(cos / temperature)`` over the
    ``K`` codes. ``entropy_frame`` is the mean entropy of a frame's assignment (low: each frame sure of its code),
    ``entropy_batch`` the entropy of the batch's mean assignment (high: the batch spreads over the codebook);
    the loss ``entropy`` is their difference (nats). ``perplexity0`` is that of the batch's hard codes, for the log.
    Chapter 3 (3.10, how the codec was trained) says why the first level's use matters.
    """
    z = F.normalize(latents.float().transpose(1, 2).reshape(-1, latents.shape[1]), dim=1)
    logits = z @ F.normalize(codebook.float(), dim=1).T / temperature
    p = logits.softmax(dim=1)
    frame = -(p * logits.log_softmax(dim=1)).sum(dim=1).mean()
    mean = p.mean(dim=0)
    batch = -(mean * mean.clamp_min(1e-12).log()).sum()
    from streamlib.codec.pitch_eval import code_perplexity

    return {"entropy": frame - batch, "entropy_frame": frame.detach(), "entropy_batch": batch.detach(),
            "perplexity0": torch.tensor(code_perplexity(logits.argmax(dim=1), codebook.shape[0]))}


class CodeRestarter:
    """Revive dead codes: a code whose use (an exponential average of its count per step, memory
    ~20 steps) falls below ``fraction`` of a uniform share gets the projected input of a random
    current frame of its level, checked every ``every`` steps (the practice of Jukebox and EnCodec).
    The frame-rate codec used ~10-13 of 1,024 first-level codes after 300 steps without it, and with
    a slow version (memory ~100 steps, 3 %) alike (docs/codec_experiments.md).
    Deterministic under torch's seeded RNG; ``usage`` is part of the training state. A new restarter's
    usage starts at a uniform share (at its first update), not at zero: counted from zero, a warm start's
    codes in steady use at 10-25 % of a uniform share read as dead at step 10, and ~900 were restarted.
    """

    def __init__(self, n_levels: int, size: int, decay: float = 0.95, fraction: float = 0.1, every: int = 10):
        self.usage: Tensor | None = None  # [n_levels, size], set at the first update or from a training state
        self.shape = (n_levels, size)
        self.decay, self.fraction, self.every = decay, fraction, every

    @torch.no_grad()
    def update(self, quantizer, codes: Tensor, level_latents: Tensor, step: int) -> int:
        """Count the codes of training step ``step`` (1-based, as logged); at every ``every``-th step
        restart the dead ones. Returns how many were restarted."""
        n_levels, size = self.shape
        uniform = codes[:, 0].numel() / size
        if self.usage is None:
            self.usage = torch.full(self.shape, uniform, dtype=torch.float64)
        counts = torch.stack([torch.bincount(codes[:, i].reshape(-1).cpu(), minlength=size)
                              for i in range(n_levels)]).double()
        self.usage.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        if step % self.every:
            return 0
        restarted = 0
        dim = level_latents.shape[1] // n_levels
        for i, q in enumerate(quantizer.quantizers):
            dead = torch.nonzero(self.usage[i] < self.fraction * uniform).reshape(-1)
            if dead.numel() == 0:
                continue
            frames = level_latents[:, i * dim:(i + 1) * dim].transpose(1, 2).reshape(-1, dim)
            pick = torch.randint(0, frames.shape[0], (dead.numel(),), device=frames.device)
            q.codebook.weight.data[dead.to(frames.device)] = frames[pick].to(q.codebook.weight.dtype)
            self.usage[i, dead] = uniform
            restarted += dead.numel()
        return restarted


def default_train_config(codec_cfg: CodecConfig, gan: bool = False) -> CodecTrainConfig:
    """The recipe chosen by ``docs/codec_experiments.md`` for the spectral codec (2 s excerpts, restarts,
    pitch terms); dac's recipe for the waveform codec (GAN on for the paper preset)."""
    if codec_cfg.arch == "spectral":
        return CodecTrainConfig(excerpt_seconds=2.0, code_restart=True, semitone_weight=5.0,
                                pitch_head_weight=5.0 if codec_cfg.pitch_bins else 0.0, gan=gan)
    return CodecTrainConfig(gan=gan)


def lr_factor(step: int, cfg: CodecTrainConfig) -> float:
    """Linear warm-up to 1, then ``gamma ** (step - warmup)`` (REFERENCE section 6's ExponentialLR)."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    return cfg.gamma ** (step - cfg.warmup_steps)


# ----------------------------------------------------------------------------- the loop


@dataclass
class TrainResult:
    model: RVQCodec
    step: int
    wall_seconds: float
    last: dict[str, float]
    state_path: Path | None


def _optimizer(model: RVQCodec, cfg: CodecTrainConfig, head: torch.nn.Module | None = None) -> torch.optim.Optimizer:
    quant = list(model.quantizer.parameters())
    ids = {id(p) for p in quant}
    rest = [p for p in model.parameters() if id(p) not in ids] + (list(head.parameters()) if head is not None else [])
    return torch.optim.AdamW(
        [{"params": rest, "lr": cfg.lr}, {"params": quant, "lr": cfg.lr * cfg.quantizer_lr_scale}],
        lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay,
    )


def train_codec(
    codec_cfg: CodecConfig,
    cfg: CodecTrainConfig,
    data_root: str | Path,
    out_dir: str | Path | None = None,
    *,
    resume: bool = True,
    device: str | None = None,
    progress: bool = True,
    extra: dict | None = None,
    init_from: str | Path | None = None,
) -> TrainResult:
    """Train (or resume) a codec; writes ``OUT/train_state.pt`` and ``OUT/log.csv`` when ``out_dir`` is set.

    ``steps`` is the total: a resumed run continues to it. ``extra`` is stored in the state (e.g. the
    preset name and the data recipe) for the card. ``init_from``: a codec checkpoint (``.safetensors``)
    whose weights a fresh run starts from (fresh optimiser); tensors whose shape differs keep their new
    initialisation (e.g. the decoder's head when ``decoder_overlap`` changes) and are listed in
    ``extra["init_from"]``. ``cfg.decoder_only`` needs it: the frozen encoder and quantiser must be trained ones.
    """
    from tqdm.auto import tqdm

    dev = get_device(device)
    seed_everything(cfg.seed)
    if cfg.pitch_head_weight > 0 and codec_cfg.pitch_bins != SEMITONE_BINS:
        raise ConfigError(f"pitch_head_weight > 0 needs a codec with a pitch head of pitch_bins={SEMITONE_BINS} "
                          f"(one per semitone, C1-B7), got {codec_cfg.pitch_bins}")
    if cfg.pitch_target not in ("audio", "midi"):
        raise ConfigError(f"pitch_target={cfg.pitch_target!r}: choose 'audio' or 'midi'")
    midi_notes = cfg.pitch_target == "midi" and cfg.pitch_head_weight > 0 and not cfg.decoder_only
    if cfg.onset_head_weight > 0 and (not codec_cfg.pitch_bins or cfg.decoder_only):
        raise ConfigError("onset_head_weight > 0 trains a head on the first level beside the pitch head: it needs a "
                          "codec with a pitch head (pitch_bins) and the tokenizer trained (not decoder_only)")
    onset_head = torch.nn.Conv1d(codec_cfg.latent_dim, 1, 1).to(dev) if cfg.onset_head_weight > 0 else None
    needs_midi = midi_notes or onset_head is not None
    if cfg.decoder_only and init_from is None and not (out_dir and (Path(out_dir) / "train_state.pt").exists()):
        raise ConfigError("decoder_only trains the decoder of an existing codec: give init_from (codec train --init-from)")
    if cfg.decoder_only and init_from is not None and Path(init_from).suffix != ".safetensors":
        raise ConfigError("decoder_only keeps the codes of a shipped codec: --init-from must be its .safetensors "
                          "(export the run first: codec export)")
    model = build_codec_model(codec_cfg).to(dev)
    extra = dict(extra or {})
    if init_from is not None:
        extra["init_from"] = init_weights(model, init_from)
    if cfg.decoder_only:
        freeze_tokenizer(model)
    opt = _optimizer(model, cfg, onset_head)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg))
    disc = disc_opt = disc_sched = gan_loss = None
    if cfg.gan:
        from dac.model import Discriminator
        from dac.nn.loss import GANLoss

        with dac_weight_norm_quiet():  # dac's discriminator calls torch's deprecated weight_norm
            disc = Discriminator(sample_rate=codec_cfg.sample_rate).to(dev)
        disc_opt = torch.optim.AdamW(disc.parameters(), lr=cfg.lr, betas=cfg.betas)
        disc_sched = torch.optim.lr_scheduler.LambdaLR(disc_opt, lambda s: lr_factor(s, cfg))
        gan_loss = GANLoss(disc).to(dev)
    losses = CodecLosses(codec_cfg.sample_rate).to(dev)
    spectrum = SemitoneSpectrum(codec_cfg.sample_rate, codec_cfg.hop).to(dev)
    phase_loss = PhaseAdvanceLoss(codec_cfg.sample_rate).to(dev) if cfg.phase_weight > 0 else None
    restarter = (CodeRestarter(codec_cfg.n_codebooks, codec_cfg.codebook_size, fraction=cfg.restart_fraction)
                 if cfg.code_restart and not cfg.decoder_only else None)
    sampler = ExcerptSampler(data_root, "train", codec_cfg.sample_rate,
                             int(round(cfg.excerpt_seconds * codec_cfg.sample_rate / codec_cfg.hop)) * codec_cfg.hop,
                             mix_fraction=cfg.mix_fraction)

    step, wall = 0, 0.0
    state_path = Path(out_dir) / "train_state.pt" if out_dir else None
    log_path = Path(out_dir) / "log.csv" if out_dir else None
    if state_path is not None and resume and state_path.exists():
        st = load_training_state(state_path)
        from streamlib.config import config_from_dict

        if config_from_dict(CodecConfig, st["codec_config"]) != codec_cfg:  # fields added since: their defaults
            raise ConfigError(f"{state_path} was trained with another codec config: {st['codec_config']}")
        model.load_state_dict(st["model"])
        if onset_head is not None and "onset_head" not in st:
            raise ConfigError(f"{state_path} was trained without onset_head_weight; continue it with the same "
                              "setting, or start a new run (--out) from its weights")
        if onset_head is not None:
            onset_head.load_state_dict(st["onset_head"])
        opt.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        if disc is not None:
            if "disc" not in st:
                raise ConfigError(f"{state_path} has no discriminator; resume with the same --gan setting")
            disc.load_state_dict(st["disc"])
            disc_opt.load_state_dict(st["disc_optimizer"])
            disc_sched.load_state_dict(st["disc_scheduler"])
        set_rng_state(st["rng"])
        step, wall = int(st["step"]), float(st["wall_seconds"])
        if restarter is not None and "code_usage" in st:
            restarter.usage = st["code_usage"]

    def save() -> None:
        if state_path is None:
            return
        st = {
            "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "rng": rng_state(), "step": step, "wall_seconds": wall,
            "codec_config": dataclasses.asdict(codec_cfg), "train_config": dataclasses.asdict(cfg),
            "hardware": {k: str(v) if not isinstance(v, (int, float)) else v for k, v in hardware().items()},
            "extra": extra or {},
        }
        if disc is not None:
            st.update(disc=disc.state_dict(), disc_optimizer=disc_opt.state_dict(), disc_scheduler=disc_sched.state_dict())
        if restarter is not None and restarter.usage is not None:
            st["code_usage"] = restarter.usage
        if onset_head is not None:
            st["onset_head"] = onset_head.state_dict()
        save_training_state(state_path, st)

    fields = ["step", "wall_seconds", "lr", "total", "mel", "stft", "waveform", "commitment", "codebook",
              "semitone", "pitch_head", "onset_head", "entropy", "perplexity0", "restarted", "adversarial", "feature",
              "discriminator", "grad_norm", "phase"]
    if log_path is not None and not log_path.exists():
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "w", newline="") as f:
            csv.writer(f).writerow(fields)
    elif log_path is not None:  # a resumed run keeps the columns its log began with
        with open(log_path, newline="") as f:
            fields = next(csv.reader(f))

    autocast = dict(device_type=dev.type, dtype=torch.bfloat16, enabled=cfg.bf16 and bf16_supported(dev))
    model.train()
    last: dict[str, float] = {}
    last_save = time.perf_counter()
    bar = tqdm(total=cfg.steps, initial=step, desc="codec", unit="step", disable=not progress)
    sitting = time.perf_counter()
    with StopRequest() as stopper:  # Ctrl-C / SIGTERM: finish the step, save, stop (run again to resume)
        while step < cfg.steps:
            if cfg.max_seconds is not None and time.perf_counter() - sitting > cfg.max_seconds:
                break
            if stopper.signal is not None:
                bar.write(f"stopped by signal {stopper.signal} after step {step}; run again to resume")
                break
            t0 = time.perf_counter()
            notes = onsets = None
            if needs_midi:
                x, notes, onsets = (t.to(dev) for t in sampler.batch_with_midi(cfg.seed, step, cfg.batch_size,
                                                                               codec_cfg.hop))
            else:
                x = sampler.batch(cfg.seed, step, cfg.batch_size).to(dev)
            with torch.autocast(**autocast):
                out = decode_frozen_codes(model, x) if cfg.decoder_only else model(x)
            y, commitment, codebook = out["audio"].float(), out["vq/commitment_loss"], out["vq/codebook_loss"]
            terms = losses(y, x)
            terms["commitment"], terms["codebook"] = commitment, codebook
            w_wave = cfg.waveform_weight * max(0.0, 1.0 - step / max(cfg.waveform_steps, 1))
            total = cfg.mel_weight * terms["mel"] + cfg.stft_weight * terms["stft"] + w_wave * terms["waveform"]
            if not cfg.decoder_only:
                total = total + cfg.commitment_weight * commitment + cfg.codebook_weight * codebook
            if cfg.semitone_weight > 0 or cfg.pitch_head_weight > 0:
                terms.update(pitch_losses(spectrum, y, x, None if cfg.decoder_only else out.get("pitch_logits"),
                                          notes if midi_notes else None))
                total = total + cfg.semitone_weight * terms["semitone"]
                if "pitch_head" in terms:
                    total = total + cfg.pitch_head_weight * terms["pitch_head"]
            if onset_head is not None:
                logits = onset_head(out["level0"].float())[:, 0]
                terms["onset_head"] = F.binary_cross_entropy_with_logits(logits, onsets)
                total = total + cfg.onset_head_weight * terms["onset_head"]
            if cfg.entropy_weight > 0:
                q0 = model.quantizer.quantizers[0]
                terms.update(codebook_entropy(out["level_latents"][:, :q0.codebook_dim], q0.codebook.weight,
                                              cfg.entropy_temperature))
                total = total + cfg.entropy_weight * terms["entropy"]
            if phase_loss is not None:
                terms["phase"] = phase_loss(y, x)
                total = total + cfg.phase_weight * terms["phase"]
            if disc is not None:
                d_loss = gan_loss.discriminator_loss(losses.signal(y.detach()), losses.signal(x))
                disc_opt.zero_grad(set_to_none=True)
                d_loss.backward()
                torch.nn.utils.clip_grad_norm_(disc.parameters(), 10.0)
                disc_opt.step()
                disc_sched.step()
                adv, feat = gan_loss.generator_loss(losses.signal(y), losses.signal(x))
                total = total + cfg.adversarial_weight * adv + cfg.feature_weight * feat
                terms.update(adversarial=adv, feature=feat, discriminator=d_loss)
            if not torch.isfinite(total):
                raise FloatingPointError(f"non-finite codec loss at step {step}: {[(k, float(v)) for k, v in terms.items()]}")
            opt.zero_grad(set_to_none=True)
            total.backward()
            gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            if restarter is not None:
                terms["restarted"] = torch.tensor(float(restarter.update(model.quantizer, out["codes"],
                                                                          out["level_latents"], step + 1)))
            step += 1
            wall += time.perf_counter() - t0
            last = {k: float(v.detach()) for k, v in terms.items()}
            last.update(total=float(total.detach()), grad_norm=float(gnorm), lr=opt.param_groups[0]["lr"])
            bar.update(1)
            if step % cfg.log_every == 0 or step == cfg.steps:
                bar.set_postfix(mel=f"{last['mel']:.3f}", commit=f"{last['commitment']:.3f}")
                if log_path is not None:
                    with open(log_path, "a", newline="") as f:
                        csv.writer(f).writerow([step, f"{wall:.1f}"] + [f"{last.get(k, float('nan')):.6g}" for k in fields[2:]])
            if time.perf_counter() - last_save > cfg.save_every_seconds:
                save()
                last_save = time.perf_counter()
    bar.close()
    save()
    model.eval()
    return TrainResult(model=model, step=step, wall_seconds=wall, last=last, state_path=state_path)


def init_weights(model: RVQCodec, path: str | Path) -> dict:
    """Load a codec checkpoint's weights (``.safetensors``) or a codec run's (its ``train_state.pt``) into
    ``model`` where names and shapes match; returns what was done (the file, its hash, the step of a run's
    state, the tensors left at their fresh initialisation)."""
    from streamlib.checkpoint import CheckpointError, file_sha256, load_training_state, load_weights

    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"--init-from: {path} does not exist")
    step = None
    if path.suffix == ".pt":
        state = load_training_state(path)
        if "model" not in state or "codec_config" not in state:
            raise CheckpointError(f"--init-from: {path} is not a codec training state")
        weights, step = {k: v.float() for k, v in state["model"].items()}, int(state["step"])
    else:
        weights = load_weights(path)
    own = model.state_dict()
    unknown = sorted(set(weights) - set(own))
    if unknown:
        raise CheckpointError(f"{path} is not a checkpoint of this codec design: unknown tensors {unknown[:5]}")
    fresh = sorted(k for k in own if k not in weights or weights[k].shape != own[k].shape)
    model.load_state_dict({**own, **{k: v for k, v in weights.items() if k not in fresh}})
    done = {"path": str(path), "weights_sha256": file_sha256(path), "fresh_tensors": fresh}
    return done if step is None else {**done, "state_step": step}


TOKENIZER_PARTS = ("encoder", "quantizer", "pitch_head")  # what makes the codes (the pitch head trains with them)


def tokenizer_modules(model: RVQCodec) -> list[torch.nn.Module]:
    """The ``TOKENIZER_PARTS`` of ``model``: the encoder, the quantiser and the first level's pitch head."""
    return [m for m in (getattr(model, name, None) for name in TOKENIZER_PARTS) if m is not None]


def freeze_tokenizer(model: RVQCodec) -> None:
    """Freeze the encoder, quantiser and pitch head (``decoder_only`` training)."""
    for m in tokenizer_modules(model):
        m.requires_grad_(False)


def decode_frozen_codes(model: RVQCodec, audio: Tensor) -> dict[str, Tensor]:
    """``model(audio)`` with the code path frozen: codes from the encoder and quantiser without gradients
    (quantiser dropout still draws how many levels each excerpt keeps), then the decoder, which learns."""
    with torch.no_grad():
        z = model.encoder(audio)
        with torch.autocast(device_type=audio.device.type, enabled=False):
            z_q, codes, _, commitment, codebook = model.quantizer(z.float(), None)
    return {"audio": model.decoder(z_q), "codes": codes, "vq/commitment_loss": commitment,
            "vq/codebook_loss": codebook}


def model_from_state(state_path: str | Path) -> tuple[RVQCodec, dict]:
    """Rebuild the model from a training state; returns it (eval mode) and the state's metadata."""
    from streamlib.config import config_from_dict

    st = load_training_state(state_path)
    model = build_codec_model(config_from_dict(CodecConfig, st["codec_config"]))
    model.load_state_dict(st["model"])
    model.eval()
    meta = {k: st[k] for k in ("step", "wall_seconds", "codec_config", "train_config", "hardware", "extra")}
    return model, meta


__all__ = ["CodecTrainConfig", "CodeRestarter", "PhaseAdvanceLoss", "default_train_config", "ExcerptSampler", "MidiRolls", "CodecLosses", "SemitoneSpectrum",
           "decode_frozen_codes", "freeze_tokenizer", "init_weights", "lr_factor", "model_from_state", "pitch_losses",
           "TOKENIZER_PARTS", "tokenizer_modules", "train_codec", "TrainResult"]
