"""Plotly figures of the token layout for chapters 4 ("The delay pattern") and 5 ("Future visibility").

Every figure is computed from the library's own layout functions (``apply_delay``, ``align``),
so what the reader sees is what the model is trained on.
"""

from __future__ import annotations

import torch

from streamlib.tokens.categories import N_SPECIAL, PAD
from streamlib.tokens.delay import apply_delay
from streamlib.tokens.visibility import align, last_visible_input

_SPECIAL_COLOUR = "#d9d9d9"


def _frame_grid(seq: torch.Tensor) -> tuple[list[list[float | None]], list[list[str]]]:
    """Token rows -> (frame index or None, label) using the marking 'token = N_SPECIAL + frame'."""
    z, text = [], []
    for row in seq.tolist():
        z.append([v - N_SPECIAL if v >= N_SPECIAL else None for v in row])
        text.append([f"{v - N_SPECIAL}" if v >= N_SPECIAL else ("PAD" if v == PAD else "BOS") for v in row])
    return z, text


def _heatmap(z, text, x, y, title, xaxis, colorbar_title="frame"):
    import plotly.graph_objects as go

    fig = go.Figure()
    special = [[0 if v is None else None for v in row] for row in z]
    special_text = [[t if v is None else "" for v, t in zip(zrow, trow)] for zrow, trow in zip(z, text)]
    frame_text = [[t if v is not None else "" for v, t in zip(zrow, trow)] for zrow, trow in zip(z, text)]
    fig.add_trace(
        go.Heatmap(z=special, x=x, y=y, text=special_text, texttemplate="%{text}",
                   colorscale=[[0, _SPECIAL_COLOUR], [1, _SPECIAL_COLOUR]], showscale=False,
                   xgap=2, ygap=2, hovertemplate="%{y}, %{x}: %{text}<extra></extra>")
    )
    fig.add_trace(
        go.Heatmap(z=z, x=x, y=y, text=frame_text, texttemplate="%{text}", colorscale="Viridis", xgap=2, ygap=2,
                   colorbar=dict(title=colorbar_title), hovertemplate="%{y}, %{x}: %{text}<extra></extra>")
    )
    fig.update_layout(title=title, xaxis_title=xaxis, height=120 + 45 * len(y))
    fig.update_yaxes(autorange="reversed")
    return fig


def delay_grid_figure(n_q: int = 4, n_frames: int = 8, layout: str = "delay"):
    """Token grid, levels x steps, each cell coloured and labelled by the frame it holds.

    ``layout="delay"``: the MusicGen delay pattern (T + 1 steps); ``"flat"``: flattening, frame f
    level q at step f * Q + q (Q * T steps, one token per step).
    """
    frames = torch.arange(n_frames).repeat(1, n_q, 1) + N_SPECIAL  # token = N_SPECIAL + frame index
    if layout == "delay":
        seq = apply_delay(frames, bos=1)[0]
    elif layout == "flat":
        seq = torch.full((n_q, n_q * n_frames), PAD)
        for q in range(n_q):
            seq[q, q::n_q] = frames[0, q]
    else:
        raise ValueError(f"layout must be 'delay' or 'flat', got {layout!r}")
    z, text = _frame_grid(seq)
    if layout == "flat":
        text = [[t if t != "PAD" else "" for t in row] for row in text]
    steps = list(range(seq.shape[1]))
    levels = [f"level {q}" for q in range(n_q)]
    title = (
        f"Delay pattern: {n_q} levels x {n_frames} frames in {seq.shape[1]} steps"
        if layout == "delay"
        else f"Flattening: {n_q} levels x {n_frames} frames in {seq.shape[1]} steps"
    )
    return _heatmap(z, text, steps, levels, title, "model step")


def aligned_streams_figure(n_frames: int = 8, tf: int = 0, n_q: int = 2, category: int = 0):
    """The aligned streams for one window: input frames (or PAD), the fed output tokens and the
    targets per level, each cell labelled with the frame it carries (from ``align``)."""
    x = torch.arange(n_frames).repeat(1, 1, 1)
    y = torch.arange(n_frames).repeat(1, n_q, 1)
    a = align(x, y, category, tf)
    inp = torch.where(a.input_pad_mask[0], torch.tensor(PAD), a.input_codes[0, 0] + N_SPECIAL)
    rows = [inp] + [a.output_tokens[0, q] for q in range(n_q)] + [a.targets[0, q] for q in range(n_q)]
    z, text = _frame_grid(torch.stack(rows))
    names = ["input"] + [f"output L{q}" for q in range(n_q)] + [f"target L{q}" for q in range(n_q)]
    return _heatmap(z, text, list(range(a.length)), names, f"Aligned streams, t_f = {tf} frames", "sequence position")


def visibility_figure(n_frames: int = 12, tf: int = 0, q: int = 0):
    """Which input frames (columns) each output frame (rows) at level ``q`` may see."""
    import plotly.graph_objects as go

    z = [[1 if i <= last_visible_input(f, q, tf) else 0 for i in range(n_frames)] for f in range(n_frames)]
    fig = go.Figure(
        go.Heatmap(z=z, x=list(range(n_frames)), y=list(range(n_frames)), colorscale=[[0, "#f0f0f0"], [1, "#3b75af"]],
                   showscale=False, xgap=1, ygap=1,
                   hovertemplate="output frame %{y}, input frame %{x}: %{z}<extra></extra>")
    )
    fig.add_trace(go.Scatter(x=list(range(n_frames)), y=list(range(n_frames)), mode="lines",
                             line=dict(color="red", dash="dot"), name="same time (t)"))
    fig.update_layout(
        title=f"Visible input (blue) for t_f = {tf}, level {q}: frame f sees x(0 .. f{q + tf - 1:+d})",
        xaxis_title="input frame", yaxis_title="output frame", height=460,
    )
    fig.update_yaxes(autorange="reversed")
    return fig


__all__ = ["delay_grid_figure", "aligned_streams_figure", "visibility_figure"]
