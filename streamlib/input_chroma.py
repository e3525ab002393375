"""A causal chroma of the input mixture: a second input path next to the codec codes (beyond the paper).

Chapter 7 ("Does the model listen?") motivates it: the accompanist must find the song's chord inside
RVQ codes, and a small model trained briefly does not. With ``ModelConfig.input_chroma`` the model
also reads, at every input frame, the 12 pitch-class energies of the input audio, so the chord is one
linear map away (``Accompanist.embed`` adds ``W_c c_t`` to the projected codec embedding; the
visibility rule of chapter 5 applies to it exactly as to the codes).

Definition (50 Hz frames, the codec's rate): frame ``t`` is the magnitude spectrum of the ``n_fft``
samples that *end* with frame ``t`` (``n_fft`` 4096 at 16 kHz, the metric's resolution of
``streamlib.pitch.chroma``; zeros before the signal), Hann-windowed, bins outside 55 Hz - 2 kHz
zeroed, mapped to 12 pitch classes by librosa's chroma filterbank, then divided by
``max(total, floor)``: a frame's classes sum to 1 when it is louder than a -60 dBFS sine, and fade to
0 in silence. Only samples up to the end of frame ``t`` are read, so it is causal, and
``CausalChroma.push`` in any chunking gives the same frames as ``causal_chroma`` on the whole signal.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.fft

from streamlib.pitch import FMAX_HZ, FMIN_HZ, hop_for, n_fft_for

CHROMA_BINS = 12
FLOOR_DBFS = -60.0


@lru_cache(maxsize=4)
def _bank(sample_rate: int, n_fft: int) -> np.ndarray:
    import librosa

    bank = librosa.filters.chroma(sr=sample_rate, n_fft=n_fft, tuning=0.0, octwidth=None, norm=None)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    bank[:, (freqs < FMIN_HZ) | (freqs > FMAX_HZ)] = 0.0
    return np.ascontiguousarray(bank[:, : int(np.searchsorted(freqs, FMAX_HZ, side="right"))], dtype=np.float32)


class CausalChroma:
    """Streaming causal chroma: ``push(samples)`` returns ``[12, n]`` for every frame completed so far."""

    def __init__(self, sample_rate: int):
        self.sample_rate = int(sample_rate)
        self.hop, self.n_fft = hop_for(self.sample_rate), n_fft_for(self.sample_rate)
        self.window = np.hanning(self.n_fft + 1)[:-1].astype(np.float32)  # periodic Hann
        # a -60 dBFS sine's Hann-windowed peak is 1e-3 * n_fft / 4: louder frames are normalised to sum 1
        self.floor = 10 ** (FLOOR_DBFS / 20) * self.n_fft / 4
        self.history = np.zeros(self.n_fft - self.hop, np.float32)
        self.pending = np.zeros(0, np.float32)
        self.frames = 0  # frames returned so far

    def push(self, samples) -> np.ndarray:
        """Feed mono samples (any length); the chroma ``float32 [12, n]`` of the frames they complete."""
        x = np.asarray(samples, dtype=np.float32).reshape(-1)
        if not np.all(np.isfinite(x)):
            raise ValueError("input audio has NaN or infinite samples")
        buf = np.concatenate([self.pending, x])
        n = len(buf) // self.hop
        full = np.concatenate([self.history, buf[: n * self.hop]])
        self.history = full[len(full) - (self.n_fft - self.hop):].copy()
        self.pending = buf[n * self.hop:].copy()
        self.frames += n
        if n == 0:
            return np.zeros((CHROMA_BINS, 0), np.float32)
        starts = np.arange(n) * self.hop
        frames = np.lib.stride_tricks.sliding_window_view(full, self.n_fft)[starts]
        bank = _bank(self.sample_rate, self.n_fft)
        mag = np.abs(scipy.fft.rfft(frames * self.window, axis=1)[:, : bank.shape[1]])  # [n, bins up to 2 kHz]
        c = bank @ mag.T  # [12, n]
        return (c / np.maximum(c.sum(axis=0, keepdims=True), self.floor)).astype(np.float32)


def causal_chroma(audio, sample_rate: int) -> np.ndarray:
    """``float32 [12, ceil(len / hop)]``: ``CausalChroma`` over the whole signal (the last partial frame
    zero-padded, as the codec pads it), one column per codec frame."""
    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    hop = hop_for(sample_rate)
    n = -(-len(x) // hop)
    return CausalChroma(sample_rate).push(np.pad(x, (0, n * hop - len(x))))


def chord_tone_share(chroma: np.ndarray, tones: np.ndarray) -> float:
    """Share of the chroma energy ``[12, T]`` on the chord tones ``tones`` (bool ``[12, T]``,
    ``streamlib.pitch.chord_frames``), over the frames that have a chord: how plainly the input says
    its chord (a uniform chroma scores 3/12 = 0.25 against a triad)."""
    n = min(chroma.shape[1], tones.shape[1])
    c, m = chroma[:, :n], tones[:, :n].astype(bool)
    frames = m.any(axis=0)
    total = float(c[:, frames].sum())
    if total <= 0:
        raise ValueError("no chroma energy in the frames that have a chord")
    return float((c * m)[:, frames].sum() / total)


def input_chroma_figure(chroma: np.ndarray, chords: list | None = None, title: str = "Causal chroma of the input"):
    """Chapter 7: the chroma ``[12, T]`` as a heatmap, the song's chord tones (``chords``, as in
    ``clip.json``) outlined as white dots, chord labels on top."""
    import plotly.graph_objects as go

    from streamlib.pitch import FRAME_RATE, PITCH_NAMES, chord_frames

    t = np.arange(chroma.shape[1]) / FRAME_RATE
    fig = go.Figure(go.Heatmap(z=chroma, x=t, y=list(PITCH_NAMES), colorscale="Viridis", zmin=0,
                               colorbar={"title": "share"}))
    if chords:
        _, tones = chord_frames(chords, chroma.shape[1])
        q, f = np.nonzero(tones[:, ::10])
        fig.add_trace(go.Scatter(x=t[::10][f], y=[PITCH_NAMES[i] for i in q], mode="markers", name="chord tones",
                                 marker={"color": "white", "size": 4, "symbol": "circle-open"}))
        for start, _, label in chords:
            if start < t[-1]:
                fig.add_annotation(x=start, y=1.06, yref="paper", text=str(label), showarrow=False, xanchor="left")
    fig.update_layout(title=title, xaxis_title="time (s)", yaxis_title="pitch class", height=340)
    return fig


__all__ = ["CHROMA_BINS", "CausalChroma", "causal_chroma", "chord_tone_share", "input_chroma_figure"]
