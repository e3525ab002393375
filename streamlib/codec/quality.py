"""Reconstruction quality of a codec: mel distance, SI-SDR, multi-resolution STFT distance.

Chapter 3 reports these on held-out mixes for 1, 2, 4 and all RVQ levels, next to two reference
points: an untrained codec and the original audio low-passed at 4 kHz (a "telephone-ish" bar a
useful codec must beat). Definitions (lower is better except SI-SDR):

* mel distance: dac's multi-scale log-mel L1 (``MelSpectrogramLoss``, 7 scales, windows 32..2048);
* SI-SDR in dB (scale-invariant signal-to-distortion ratio, zero-mean signals);
* multi-resolution STFT distance: dac's ``MultiScaleSTFTLoss`` (log + linear magnitude L1,
  windows 2048 and 512).
"""

from __future__ import annotations

import torch
from torch import Tensor

from streamlib.codec.train import CodecLosses

_LOSSES: dict[int, CodecLosses] = {}


def _losses(sample_rate: int) -> CodecLosses:
    if sample_rate not in _LOSSES:
        _LOSSES[sample_rate] = CodecLosses(sample_rate)
    return _LOSSES[sample_rate]


def si_sdr(estimate: Tensor, reference: Tensor, eps: float = 1e-8) -> Tensor:
    """SI-SDR in dB per item of ``[B, 1, N]`` (or ``[N]``) tensors."""
    est = estimate.reshape(estimate.shape[0] if estimate.dim() > 1 else 1, -1).double()
    ref = reference.reshape(est.shape[0], -1).double()
    est = est - est.mean(dim=-1, keepdim=True)
    ref = ref - ref.mean(dim=-1, keepdim=True)
    scale = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + eps)
    target = scale * ref
    noise = est - target
    return (10 * torch.log10((target.pow(2).sum(-1) + eps) / (noise.pow(2).sum(-1) + eps))).float()


@torch.no_grad()
def distances(estimate: Tensor, reference: Tensor, sample_rate: int) -> dict[str, float]:
    """Mean mel distance, SI-SDR and MR-STFT distance of a batch ``[B, 1, N]`` (same lengths)."""
    n = min(estimate.shape[-1], reference.shape[-1])
    est, ref = estimate[..., :n].float().cpu(), reference[..., :n].float().cpu()
    terms = _losses(sample_rate)(est, ref)
    return {"mel": float(terms["mel"]), "si_sdr": float(si_sdr(est, ref).mean()), "mrstft": float(terms["stft"])}


def lowpass(audio: Tensor, sample_rate: int, cutoff_hz: float = 4000.0) -> Tensor:
    """Brick-wall low-pass along the last axis (FFT bins above ``cutoff_hz`` zeroed)."""
    spec = torch.fft.rfft(audio.float(), dim=-1)
    freqs = torch.fft.rfftfreq(audio.shape[-1], 1.0 / sample_rate)
    spec[..., freqs > cutoff_hz] = 0
    return torch.fft.irfft(spec, n=audio.shape[-1], dim=-1)


@torch.no_grad()
def evaluate_codec(codec, clips: Tensor, levels: list[int] | None = None) -> dict[str, dict[str, float]]:
    """Distances of ``codec`` reconstructions of ``clips [B, 1, N]`` using the first ``q`` levels, per q."""
    levels = levels or sorted({1, 2, 4, codec.n_codebooks} & set(range(1, codec.n_codebooks + 1)))
    codes = codec.encode(clips)
    return {str(q): distances(codec.decode(codes[:, :q]), clips, codec.sample_rate) for q in levels}


def format_table(rows: dict[str, dict[str, float]], digits: int = 3) -> str:
    """Rows of metric dicts as an aligned text table (for the chapter and the CLI)."""
    cols = list(next(iter(rows.values())))
    width = max(len(r) for r in rows) + 2
    lines = [" " * width + "".join(f"{c:>10s}" for c in cols)]
    for name, vals in rows.items():
        lines.append(f"{name:<{width}s}" + "".join(f"{vals[c]:>10.{digits}f}" for c in cols))
    return "\n".join(lines)
