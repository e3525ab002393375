"""Chapter 2 (Multitrack data): plotly figures of a multitrack song -- piano roll, waveforms, silence mask."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from streamlib.config import FRAME_RATE
from streamlib.data.sampling import SILENCE_DB, frame_rms_db
from streamlib.data.slakh import Track

COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
          "#17becf")


def _label(track: Track, i: int) -> str:
    s = track.stems[i]
    return f"{s.name} {s.category_name}"


def piano_roll(track: Track, max_seconds: float | None = None) -> go.Figure:
    """Notes of every stem (from MIDI/SNN.mid) as horizontal bars; drums are drawn at their GM key.

    Ground-truth downbeats (synthesised set only) are dotted vertical lines.
    """
    from symusic import Score

    fig = go.Figure()
    for i, stem in enumerate(track.stems):
        if stem.midi_path is None:
            continue
        score = Score(str(stem.midi_path), ttype="second")
        xs, ys = [], []
        for tr in score.tracks:
            for n in tr.notes:
                if max_seconds is not None and n.time > max_seconds:
                    continue
                xs += [n.time, n.time + n.duration, None]
                ys += [n.pitch, n.pitch, None]
        fig.add_trace(go.Scattergl(x=xs, y=ys, mode="lines", line=dict(width=4, color=COLORS[i % len(COLORS)]),
                                   name=_label(track, i)))
    for t in track.metadata.get("synth", {}).get("downbeats", []):
        if max_seconds is None or t <= max_seconds:
            fig.add_vline(x=t, line=dict(width=0.5, dash="dot", color="gray"))
    fig.update_layout(title=f"{track.name}: piano roll", xaxis_title="time (s)", yaxis_title="MIDI pitch",
                      height=420, margin=dict(l=50, r=20, t=40, b=40))
    return fig


def _envelope(audio: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    hop = sr // FRAME_RATE
    n = len(audio) // hop
    frames = audio[: n * hop].reshape(n, hop)
    return np.arange(n) / FRAME_RATE, frames.min(1), frames.max(1)


def waveforms(track: Track, max_seconds: float | None = None) -> go.Figure:
    """One row per stem (and the mix): min/max envelope per 20 ms frame."""
    names = ["mix"] + [_label(track, i) for i in range(len(track.stems))]
    fig = make_subplots(rows=len(names), cols=1, shared_xaxes=True, vertical_spacing=0.01, subplot_titles=names)
    audios = [track.load_mix(duration=max_seconds)] + [track.load_stem(s.name, duration=max_seconds)
                                                       for s in track.stems]
    for row, audio in enumerate(audios, start=1):
        t, lo, hi = _envelope(audio, track.rate)
        color = "black" if row == 1 else COLORS[(row - 2) % len(COLORS)]
        fig.add_trace(go.Scattergl(x=np.concatenate([t, t[::-1]]), y=np.concatenate([hi, lo[::-1]]), fill="toself",
                                   line=dict(width=0.5, color=color), showlegend=False), row=row, col=1)
        fig.update_yaxes(range=[-1, 1], showticklabels=False, row=row, col=1)
    fig.update_annotations(font_size=10, x=0.0, xanchor="left")
    fig.update_layout(title=f"{track.name}: waveforms", height=90 * len(names) + 60,
                      margin=dict(l=20, r=20, t=50, b=30))
    fig.update_xaxes(title_text="time (s)", row=len(names), col=1)
    return fig


def silence_figure(audio: np.ndarray, sr: int, threshold_db: float = SILENCE_DB, title: str = "") -> go.Figure:
    """A-weighted frame RMS (dB), the threshold, and the frames it marks active (shaded)."""
    db = frame_rms_db(audio, sr)
    t = np.arange(len(db)) / FRAME_RATE
    active = db > threshold_db
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=t, y=np.where(active, 0.0, np.nan), fill="tozeroy", mode="none",
                             fillcolor="rgba(44,160,44,0.15)", name="active"))
    fig.add_trace(go.Scatter(x=t, y=np.maximum(db, -120), mode="lines", name="A-weighted RMS (dB)",
                             line=dict(color="#1f77b4")))
    fig.add_hline(y=threshold_db, line=dict(color="red", dash="dash"), annotation_text=f"{threshold_db:g} dB")
    fig.update_layout(title=f"{title} active {active.mean():.0%} of frames at {threshold_db:g} dB",
                      xaxis_title="time (s)", yaxis_title="dB re full scale", yaxis_range=[-120, 0], height=320,
                      margin=dict(l=50, r=20, t=40, b=40))
    return fig
