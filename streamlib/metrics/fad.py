"""Chapter 9 (Evaluation): Fréchet Audio Distance with an embedding that needs no download.

FAD fits a Gaussian to the per-frame embeddings of *all* files of each set and returns
``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2)`` in float64, with N-1 covariances; the
trace of the matrix square root comes from the eigenvalues of the symmetric ``S1^1/2 S2 S1^1/2``, clipped
at 0. FAD depends on N (it is biased upward for small N): compare values only at equal N, which every
result reports, along with the embedding's name.

Embeddings:
- ``"logmel64-16k"`` (default): a fixed, training-free statistic — per 10 ms frame, the 64-band log-mel
  spectrum (16 kHz, n_fft 1024, win 400, hop 160, 60-7800 Hz, the COCOLA front end). Captures timbre and
  level, not musical structure; nothing to download.
- VGGish from a local path: ``load_vggish(path)`` expects a TorchScript file (``torch.jit.save`` of a
  module mapping ``[batch, 1, 96, 64]`` log-mel patches to ``[batch, 128]``). It raises
  ``FileNotFoundError`` when the file is absent — there is no silent fallback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torchaudio

from streamlib.audio import resample, validate

EMBED_SR = 16000
LOGMEL_NAME = "logmel64-16k"


def frechet_distance(emb_a: np.ndarray, emb_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted (mean, N-1 covariance) to rows of ``emb_a`` and ``emb_b``."""
    a = np.asarray(emb_a, dtype=np.float64)
    b = np.asarray(emb_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"embeddings must be [N, D] with equal D, got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise ValueError("need at least 2 embedding frames per set")
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False, ddof=1), np.cov(b, rowvar=False, ddof=1)
    s1, s2 = np.atleast_2d(s1), np.atleast_2d(s2)
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root1 @ s2 @ root1
    eig = np.linalg.eigvalsh((m + m.T) / 2)
    tr_sqrt = float(np.sqrt(np.clip(eig, 0, None)).sum())
    value = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)
    return max(value, 0.0)


_MEL = None


def logmel_frames(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Per-frame 64-band log-mel vectors ``[frames, 64]`` (the ``logmel64-16k`` embedding)."""
    global _MEL
    audio = np.asarray(audio, dtype=np.float32)
    validate(audio, name="FAD input")
    if _MEL is None:
        _MEL = torchaudio.transforms.MelSpectrogram(
            EMBED_SR, n_fft=1024, win_length=400, hop_length=160, f_min=60.0, f_max=7800.0, n_mels=64
        )
    x = torch.from_numpy(np.ascontiguousarray(resample(audio, sample_rate, EMBED_SR)))
    with torch.no_grad():
        mel = _MEL(x)
    return torch.log(mel + 1e-6).T.double().numpy()


def embed(files: Sequence[np.ndarray], sample_rate: int, embedder: Callable | None = None) -> list[np.ndarray]:
    """Per-file frame embeddings (default ``logmel_frames``); kept per file so the sweep can bootstrap."""
    fn = embedder or logmel_frames
    return [np.asarray(fn(x, sample_rate), dtype=np.float64) for x in files]


def fad(
    generated: Sequence[np.ndarray],
    reference: Sequence[np.ndarray],
    sample_rate: int,
    embedder: Callable | None = None,
    embedding_name: str = LOGMEL_NAME,
) -> dict:
    """FAD between two sets of audio files: ``{"fad", "n_generated", "n_reference", "n_files", "embedding"}``."""
    if embedder is not None and embedding_name == LOGMEL_NAME:
        raise ValueError("name the custom embedding via embedding_name")
    ea = np.concatenate(embed(generated, sample_rate, embedder))
    eb = np.concatenate(embed(reference, sample_rate, embedder))
    return {
        "fad": frechet_distance(ea, eb),
        "n_generated": len(ea),
        "n_reference": len(eb),
        "n_files": [len(generated), len(reference)],
        "embedding": embedding_name,
    }


def load_vggish(path: str | Path) -> Callable[[np.ndarray, int], np.ndarray]:
    """An embedder from a local TorchScript VGGish (see module docstring); raises if the file is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"VGGish weights not found at {path}; FAD uses '{LOGMEL_NAME}' unless you provide a TorchScript VGGish"
        )
    model = torch.jit.load(str(path), map_location="cpu").eval()
    mel = torchaudio.transforms.MelSpectrogram(
        EMBED_SR, n_fft=512, win_length=400, hop_length=160, f_min=125.0, f_max=7500.0, n_mels=64
    )

    def vggish(audio: np.ndarray, sample_rate: int) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(resample(np.asarray(audio, np.float32), sample_rate, EMBED_SR)))
        logmel = torch.log(mel(x) + 0.01).T  # [frames, 64]
        n = logmel.shape[0] // 96
        if n == 0:
            raise ValueError("VGGish needs at least 0.96 s of audio")
        patches = logmel[: n * 96].reshape(n, 1, 96, 64)
        with torch.no_grad():
            return model(patches).double().numpy()

    return vggish
