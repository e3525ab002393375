"""Chapter 9 (Evaluation): a COCOLA-style coherence score, trained in this book (not the official COCOLA).

COCOLA (REFERENCE section 8) embeds 5 s of audio from two channels -- the harmonic and the percussive
part of a 64-band log-mel spectrogram (16 kHz, n_fft 1024, win 400, hop 160, 60-7800 Hz) -- projects
it, applies LayerNorm and tanh, and scores a pair with a bilinear similarity ``x^T W y``. It is trained
with InfoNCE on in-batch negatives, the positives being two disjoint sub-mixes of the stems of one
5 s window; long audio is scored as the mean over 5 s chunks with a 2.5 s hop.

What differs here, and why:
- the encoder is a small 4-block CNN (about 0.15 M parameters), not EfficientNet-B0, so that it trains in
  about 17 minutes on one shared CPU core (``streamlib.metrics.coherence_train``, ``python -m streamlib
  coherence train``); its weights ship in ``checkpoints/coherence/book.safetensors`` with a card;
- the harmonic/percussive split is median-filtering HPSS (Fitzgerald 2010; soft masks with power 2 as
  in ``librosa.decompose.hpss``) computed on the *mel* magnitude (31 frames along time, 9 bands along
  frequency) rather than on the 513-bin STFT: on this CPU the STFT-domain medians cost 0.4-0.6 s per
  5 s clip, the mel-domain ones a few ms;
- the sub-scores zero the other channel *as intended* (the official ``score()`` ignores that mode).

Features are ``0.1 * log1p(mel_power / 1e-3)``, so an all-zero channel means silence and zeroing a
channel is "that part is silent". The official COCOLA checkpoint (an EfficientNet-B0 Lightning file on
a host we cannot reach) does not fit this encoder: ``load_coherence`` accepts any checkpoint in the
book's format (a ``.safetensors`` file with its ``.json`` card) from a local path, and refuses a
``.ckpt`` with an explanation rather than guessing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from streamlib.audio import resample, validate
from streamlib.paths import REPO_ROOT

SR = 16_000
N_MELS, F_MIN, F_MAX = 64, 60.0, 7800.0
N_FFT, WIN, HOP = 1024, 400, 160
CHUNK_SECONDS, CHUNK_HOP_SECONDS = 5.0, 2.5
CHUNK_SAMPLES, CHUNK_HOP_SAMPLES = int(CHUNK_SECONDS * SR), int(CHUNK_HOP_SECONDS * SR)
HARMONIC_KERNEL, PERCUSSIVE_KERNEL = 31, 9  # frames along time, mel bands along frequency
POWER_FLOOR, FEATURE_SCALE = 1e-3, 0.1
MODES = ("full", "harmonic", "percussive")
DEFAULT_PATH = REPO_ROOT / "checkpoints" / "coherence" / "book.safetensors"


class CoherenceError(RuntimeError):
    """The coherence checkpoint is missing, foreign (e.g. the official COCOLA ``.ckpt``) or mismatched."""


# ----------------------------------------------------------------------------- features


_FB: torch.Tensor | None = None


def _mel_filterbank() -> torch.Tensor:
    global _FB
    if _FB is None:
        import torchaudio

        _FB = torchaudio.functional.melscale_fbanks(N_FFT // 2 + 1, F_MIN, F_MAX, N_MELS, SR)  # [513, 64]
    return _FB


def _median(x: torch.Tensor, kernel: int, dim: int) -> torch.Tensor:
    """Median filter of ``x`` along ``dim`` (edge values replicated), same shape."""
    x = x.movedim(dim, -1)
    pad = kernel // 2
    shape = x.shape
    padded = F.pad(x.reshape(-1, 1, shape[-1]), (pad, pad), mode="replicate").reshape(*shape[:-1], -1)
    return padded.unfold(-1, kernel, 1).median(-1).values.movedim(-1, dim)


def features(audio: np.ndarray | torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Harmonic and percussive log-mel features ``[..., 2, 64, frames]`` of mono audio ``[..., samples]``."""
    x = torch.as_tensor(np.asarray(audio, dtype=np.float32) if not isinstance(audio, torch.Tensor) else audio)
    validate(x, name="coherence input")
    x = resample(x.float(), sample_rate, SR)
    lead = x.shape[:-1]
    spec = torch.stft(x.reshape(-1, x.shape[-1]), N_FFT, HOP, WIN, torch.hann_window(WIN), return_complex=True)
    mel = (spec.abs() ** 2).transpose(-1, -2) @ _mel_filterbank()  # [B, frames, 64] power
    mel = mel.transpose(-1, -2)  # [B, 64, frames]
    mag = mel.sqrt()
    h = _median(mag, HARMONIC_KERNEL, -1) ** 2
    p = _median(mag, PERCUSSIVE_KERNEL, -2) ** 2
    total = h + p
    mask_h = torch.where(total > 0, h / total.clamp_min(1e-30), torch.full_like(total, 0.5))
    parts = torch.stack([mel * mask_h, mel * (1 - mask_h)], dim=1)  # [B, 2, 64, frames]
    out = FEATURE_SCALE * torch.log1p(parts / POWER_FLOOR)
    return out.reshape(*lead, *out.shape[1:])


def chunk(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """5 s chunks ``[chunks, samples]`` at 16 kHz every 2.5 s; a short clip is zero-padded to one chunk and
    an uncovered tail gets one extra chunk aligned with the end."""
    x = resample(np.asarray(audio, dtype=np.float32), sample_rate, SR)
    if x.ndim != 1:
        raise ValueError(f"coherence expects mono [samples] audio, got shape {x.shape}")
    if len(x) <= CHUNK_SAMPLES:
        return np.pad(x, (0, CHUNK_SAMPLES - len(x)))[None]
    starts = list(range(0, len(x) - CHUNK_SAMPLES + 1, CHUNK_HOP_SAMPLES))
    if starts[-1] + CHUNK_SAMPLES < len(x):
        starts.append(len(x) - CHUNK_SAMPLES)
    return np.stack([x[s : s + CHUNK_SAMPLES] for s in starts])


def apply_mode(feats: torch.Tensor, mode: str) -> torch.Tensor:
    """Zero the percussive channel (``"harmonic"``) or the harmonic one (``"percussive"``)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "full":
        return feats
    keep = torch.zeros(2, 1, 1, dtype=feats.dtype)
    keep[0 if mode == "harmonic" else 1] = 1
    return feats * keep


# ----------------------------------------------------------------------------- model


@dataclass(frozen=True)
class CoherenceConfig:
    """Encoder sizes (stored in the card)."""

    channels: tuple[int, ...] = (16, 32, 64, 128)
    dim: int = 128


class CoherenceModel(nn.Module):
    """Shared CNN encoder -> projection -> LayerNorm -> tanh, and a bilinear similarity ``x^T W y``."""

    def __init__(self, cfg: CoherenceConfig = CoherenceConfig()):
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        c_in = 2
        for i, c in enumerate(cfg.channels):  # the first convolution has stride 2: 4x less compute
            layers += [nn.Conv2d(c_in, c, 3, stride=2 if i == 0 else 1, padding=1, bias=False), nn.BatchNorm2d(c),
                       nn.ReLU(), nn.MaxPool2d(2)]
            c_in = c
        self.conv = nn.Sequential(*layers)
        self.proj = nn.Linear(2 * c_in, cfg.dim)
        self.norm = nn.LayerNorm(cfg.dim)
        self.W = nn.Parameter(torch.eye(cfg.dim) / cfg.dim**0.5)

    def embed(self, feats: torch.Tensor, mode: str = "full") -> torch.Tensor:
        """Embeddings ``[B, dim]`` of features ``[B, 2, 64, frames]`` (``mode`` zeroes a channel first)."""
        h = self.conv(apply_mode(feats, mode))
        pooled = torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1)
        return torch.tanh(self.norm(self.proj(pooled)))

    def similarity(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """All-pairs bilinear scores ``[len(x), len(y)]``."""
        return x @ self.W @ y.T


def load_coherence(path: str | Path | None = None) -> CoherenceModel:
    """The coherence model from ``path`` (default ``checkpoints/coherence/book.safetensors``), in eval mode.

    Any checkpoint in the book's format (safetensors + JSON card with ``config``) works, e.g. one you
    trained with ``python -m streamlib coherence train``. The card is kept as ``model.card``.
    """
    from streamlib.checkpoint import CheckpointError, card_path, load_card, load_into, load_weights

    path = Path(path) if path is not None else DEFAULT_PATH
    if path.suffix == ".ckpt":
        raise CoherenceError(
            f"{path} looks like an official COCOLA Lightning checkpoint (EfficientNet-B0 encoder); the book's "
            "coherence model is a small CNN and cannot load it. Score with the COCOLA repository's own code, "
            "or train the book's model: python -m streamlib coherence train"
        )
    if not path.is_file():
        raise CoherenceError(
            f"coherence checkpoint {path} not found. Train one (about 17 min on one CPU core) with "
            "`python -m streamlib coherence train --data data/synth`, or pass the path of a checkpoint you have; "
            "no coherence score is produced without weights"
        )
    if not card_path(path).is_file():
        raise CoherenceError(f"{path} has no card {card_path(path).name} beside it (needed for the model config)")
    card = load_card(path)
    cfg = CoherenceConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in card["config"].items()})
    model = CoherenceModel(cfg)
    try:
        load_into(model, load_weights(path), what=str(path))
    except CheckpointError as e:
        raise CoherenceError(str(e)) from e
    model.card = card
    return model.eval()


_DEFAULT: CoherenceModel | None = None


def _model(model: CoherenceModel | None) -> CoherenceModel:
    global _DEFAULT
    if model is not None:
        return model
    if _DEFAULT is None:
        _DEFAULT = load_coherence()
    return _DEFAULT


# ----------------------------------------------------------------------------- scores


@torch.no_grad()
def chunk_embeddings(model: CoherenceModel, audio: np.ndarray, sample_rate: int) -> dict[str, torch.Tensor]:
    """Per-chunk embeddings ``{mode: [chunks, dim]}`` of one clip, for every mode."""
    feats = features(torch.from_numpy(chunk(audio, sample_rate)), SR)
    return {m: model.embed(feats, m) for m in MODES}


def _paired_lengths(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    if n == 0:
        raise ValueError("coherence needs non-empty audio on both sides")
    return n


@torch.no_grad()
def coherence(input_audio: np.ndarray, stem_audio: np.ndarray, sr: int,
              model: CoherenceModel | None = None) -> dict[str, float]:
    """``{"coherence", "harmonic", "percussive"}`` of a stem with its input mixture (mean over 5 s chunks).

    Both signals are cut to the shorter length. Higher = more coherent; the scale is the model's own.
    """
    m = _model(model)
    n = _paired_lengths(np.asarray(input_audio), np.asarray(stem_audio))
    a = chunk_embeddings(m, np.asarray(input_audio)[:n], sr)
    b = chunk_embeddings(m, np.asarray(stem_audio)[:n], sr)
    names = {"full": "coherence", "harmonic": "harmonic", "percussive": "percussive"}
    return {names[k]: float(((a[k] @ m.W) * b[k]).sum(-1).mean()) for k in MODES}


def coherence_batch(inputs: Sequence[np.ndarray], stems: Sequence[np.ndarray], sr: int,
                    model: CoherenceModel | None = None) -> dict[str, np.ndarray]:
    """``coherence`` for each (input, stem) pair: ``{"coherence", "harmonic", "percussive"}`` -> arrays."""
    if len(inputs) != len(stems):
        raise ValueError(f"{len(inputs)} inputs but {len(stems)} stems")
    rows = [coherence(x, y, sr, model) for x, y in zip(inputs, stems)]
    return {k: np.array([r[k] for r in rows], dtype=np.float64) for k in ("coherence", "harmonic", "percussive")}


@torch.no_grad()
def coherence_matrix(inputs: Sequence[np.ndarray], stems: Sequence[np.ndarray], sr: int,
                     model: CoherenceModel | None = None) -> dict[str, np.ndarray]:
    """All-pairs scores ``{mode: [len(inputs), len(stems)]}`` of equal-length clips (entry i, j = input i
    with stem j), for true-vs-random comparisons such as ``pair_auc``."""
    m = _model(model)
    lengths = {len(x) for x in list(inputs) + list(stems)}
    if len(lengths) != 1:
        raise ValueError(f"coherence_matrix needs clips of one length, got {sorted(lengths)}")
    a = [chunk_embeddings(m, x, sr) for x in inputs]
    b = [chunk_embeddings(m, y, sr) for y in stems]
    out = {}
    for k in MODES:
        ea, eb = torch.stack([e[k] for e in a]), torch.stack([e[k] for e in b])  # [N, chunks, dim]
        out[k] = torch.einsum("icd,de,jce->ij", ea, m.W, eb).div(ea.shape[1]).double().numpy()
    return out


def pair_auc(scores: np.ndarray, groups: Sequence | None = None) -> float:
    """AUC of true pairs (the diagonal) against random pairs (off-diagonal entries of each row, leaving out
    columns with the same ``groups`` label, e.g. windows of the same song); ties count one half."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] != s.shape[1] or len(s) < 2:
        raise ValueError(f"pair_auc needs a square score matrix of at least 2 x 2, got {s.shape}")
    g = np.arange(len(s)) if groups is None else np.asarray(groups)
    wins, total = 0.0, 0
    for i in range(len(s)):
        neg = s[i, g != g[i]]
        wins += float((s[i, i] > neg).sum() + 0.5 * (s[i, i] == neg).sum())
        total += len(neg)
    if total == 0:
        raise ValueError("no random pairs: every clip is in the same group")
    return wins / total


def config_dict(cfg: CoherenceConfig) -> dict:
    """The card's ``config`` entry."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}
