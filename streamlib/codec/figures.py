"""Figures of chapter 3 ("Causal codec tokenisation"): receptive fields, codes, spectrograms.

Each function returns numbers (for asserts) or a plotly figure; the chapter shows and checks them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn


def receptive_field(encoder: nn.Module, n_samples: int, frame: int, hop: int) -> np.ndarray:
    """|d latent[frame] / d input| per input sample (summed over channels), normalised to max 1.

    Gradients of a random input through ``encoder`` (any module mapping ``[1, 1, N]`` to
    ``[1, D, N / hop]``): the samples a frame depends on are exactly those with a non-zero gradient.
    """
    x = (0.1 * torch.randn(1, 1, n_samples, generator=torch.Generator().manual_seed(0))).requires_grad_()
    with torch.enable_grad():
        z = encoder(x)
        if z.shape[-1] * hop != n_samples:
            raise ValueError(f"encoder gave {z.shape[-1]} frames for {n_samples} samples at hop {hop}")
        z[0, :, frame].abs().sum().backward()
    g = x.grad[0, 0].abs().numpy()
    return g / max(float(g.max()), 1e-30)


def dependency_span(field: np.ndarray, hop: int, frame: int, tol: float = 0.0) -> tuple[int, int]:
    """First and last sample with a gradient above ``tol``, relative to the end of ``frame`` (samples)."""
    idx = np.nonzero(field > tol)[0]
    end = (frame + 1) * hop - 1
    return int(idx.min()) - end, int(idx.max()) - end


def log_mel(audio: Tensor | np.ndarray, sample_rate: int, n_mels: int = 80, hop: int | None = None) -> np.ndarray:
    """Log-mel spectrogram in dB ``[n_mels, frames]`` (n_fft 1024), for figures."""
    import torchaudio

    x = torch.as_tensor(np.asarray(audio, dtype=np.float32)).reshape(-1)
    mel = torchaudio.transforms.MelSpectrogram(sample_rate, n_fft=1024, hop_length=hop or sample_rate // 100,
                                               n_mels=n_mels)(x)
    return (10 * torch.log10(mel + 1e-10)).numpy()


def spectrogram_figure(panels: dict[str, Tensor], sample_rate: int, title: str = ""):
    """Stacked log-mel spectrograms (same colour scale) of several signals."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(panels)
    fig = make_subplots(rows=len(names), cols=1, shared_xaxes=True, subplot_titles=names, vertical_spacing=0.06)
    mels = {k: log_mel(v, sample_rate) for k, v in panels.items()}
    top = max(float(m.max()) for m in mels.values())
    for i, name in enumerate(names, start=1):
        m = mels[name]
        t = np.arange(m.shape[1]) / 100.0
        fig.add_trace(go.Heatmap(z=m, x=t, zmin=top - 80, zmax=top, colorscale="Magma", showscale=i == 1), row=i, col=1)
        fig.update_yaxes(title_text="mel bin", row=i, col=1)
    fig.update_xaxes(title_text="time (s)", row=len(names), col=1)
    fig.update_layout(title=title, height=250 * len(names))
    return fig


def codes_figure(codes: Tensor, title: str = "RVQ codes"):
    """Codes ``[Q, T]`` as an image (level on the y axis, frame on the x axis)."""
    import plotly.graph_objects as go

    c = codes.cpu().numpy()
    fig = go.Figure(go.Heatmap(z=c, x=np.arange(c.shape[1]) / 50.0, y=[f"level {q + 1}" for q in range(c.shape[0])],
                               colorscale="Viridis", colorbar=dict(title="code")))
    fig.update_layout(title=title, xaxis_title="time (s)", height=120 + 30 * c.shape[0])
    return fig


def chroma_figure(panels: dict[str, Tensor], sample_rate: int, title: str = ""):
    """Stacked chromagrams (``streamlib.pitch.chroma``, each frame scaled to its maximum) of several
    signals: the notes of the chords as horizontal bands that move when the chord changes."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from streamlib.pitch import FRAME_RATE, PITCH_NAMES, chroma

    names = list(panels)
    fig = make_subplots(rows=len(names), cols=1, shared_xaxes=True, subplot_titles=names, vertical_spacing=0.06)
    for i, name in enumerate(names, start=1):
        c = chroma(panels[name], sample_rate)
        c = c / np.maximum(c.max(axis=0, keepdims=True), 1e-9)
        fig.add_trace(go.Heatmap(z=c, x=np.arange(c.shape[1]) / FRAME_RATE, y=list(PITCH_NAMES), zmin=0, zmax=1,
                                 colorscale="Viridis", showscale=i == 1), row=i, col=1)
    fig.update_xaxes(title_text="time (s)", row=len(names), col=1)
    fig.update_layout(title=title, height=220 * len(names))
    return fig
