"""Audio I/O and validation: soundfile for files, torchaudio for DSP.

torchaudio >= 2.9 reads files only through torchcodec + FFmpeg, so files go through ``soundfile``
(its wheel bundles libsndfile with FLAC/WAV/OGG/MP3) and torchaudio is used for resampling.

Conventions (all chapters): audio arrays are float32 in [-1, 1]; mono is shape ``[samples]``;
stereo and multichannel input is **downmixed by averaging channels**; a different sample rate is
**resampled** (torchaudio's windowed-sinc) unless ``resample=False``, which raises instead.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF


class AudioError(ValueError):
    """Audio that cannot be used: unreadable, empty, silent where sound is needed, NaN/Inf, wrong rate."""


def validate(audio: np.ndarray | torch.Tensor, *, name: str = "audio", allow_silent: bool = True) -> None:
    """Raise ``AudioError`` for empty, non-finite or (optionally) all-silent audio."""
    x = audio if isinstance(audio, torch.Tensor) else torch.as_tensor(np.asarray(audio))
    if x.numel() == 0:
        raise AudioError(f"{name} is empty")
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise AudioError(f"{name} contains {bad} NaN/Inf samples")
    if not allow_silent and float(x.abs().max()) == 0.0:
        raise AudioError(f"{name} is digital silence")


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Downmix ``[samples, channels]`` (soundfile's layout) to ``[samples]`` by averaging."""
    audio = np.asarray(audio, dtype=np.float32)
    return audio.mean(axis=1) if audio.ndim == 2 else audio


def resample(audio: np.ndarray | torch.Tensor, orig_sr: int, new_sr: int):
    """Resample along the last axis (returns the same kind of array it was given)."""
    if orig_sr == new_sr:
        return audio
    if isinstance(audio, torch.Tensor):
        return AF.resample(audio.float(), orig_sr, new_sr)
    return AF.resample(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), orig_sr, new_sr).numpy()


def load_audio(
    path: str | Path,
    sample_rate: int | None = None,
    *,
    resample_to_rate: bool = True,
    start: float = 0.0,
    duration: float | None = None,
) -> tuple[np.ndarray, int]:
    """Read a file as mono float32, optionally a segment, optionally resampled to ``sample_rate``.

    Returns ``(audio, sr)``. Raises ``AudioError`` with the file name for unreadable files, and for
    a rate mismatch when ``resample_to_rate`` is False.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    try:
        info = sf.info(str(path))
        first = int(round(start * info.samplerate))
        frames = -1 if duration is None else int(round(duration * info.samplerate))
        audio, sr = sf.read(str(path), start=first, frames=frames, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, TypeError) as e:
        raise AudioError(f"{path}: cannot read audio ({e})") from e
    audio = to_mono(audio)
    validate(audio, name=str(path))
    if sample_rate is not None and sr != sample_rate:
        if not resample_to_rate:
            raise AudioError(f"{path}: sample rate {sr} Hz, expected {sample_rate} Hz")
        audio, sr = resample(audio, sr, sample_rate), sample_rate
    return audio, sr


SILENT_DBFS = -60.0  # a peak below this is reported as (nearly) silent


def input_notes(path: str | Path, audio: np.ndarray, sample_rate: int) -> list[str]:
    """One line for each thing ``load_audio(path, sample_rate)`` did to the file (down-mixed, resampled)
    and for ``audio`` -- what it returned -- being silent or nearly (peak below ``SILENT_DBFS``)."""
    info = sf.info(str(path))
    notes = []
    if info.channels > 1:
        notes.append(f"{path}: {info.channels} channels down-mixed to mono")
    if info.samplerate != sample_rate:
        notes.append(f"{path}: resampled from {info.samplerate} Hz to {sample_rate} Hz")
    peak = float(np.abs(audio).max())
    if peak == 0:
        notes.append(f"{path}: digital silence, nothing to accompany")
    elif 20 * np.log10(peak) < SILENT_DBFS:
        notes.append(f"{path}: nearly silent (peak {20 * np.log10(peak):.0f} dBFS), little to accompany")
    return notes


def save_audio(path: str | Path, audio: np.ndarray | torch.Tensor, sample_rate: int, subtype: str | None = None) -> None:
    """Write mono audio (FLAC/WAV by extension), clipping to [-1, 1]."""
    x = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
    x = np.clip(x.astype(np.float32).reshape(-1), -1.0, 1.0)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sample_rate, subtype=subtype)


def db_to_gain(db: float) -> float:
    return float(10.0 ** (db / 20.0))
