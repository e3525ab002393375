"""Figures of chapter 12 ("The offline ceiling: masked parallel decoding"): the training mask, the
iterative unmasking and the effect of classifier-free guidance. Plotly only; the notebook adds sliders."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F
from plotly.subplots import make_subplots

from streamlib.model.masked import MaskedAccompanist, MaskedSample, guided_logits


def level_mask(level: int, u: float, n_q: int, frames: int, seed: int = 0) -> np.ndarray:
    """One training mask ``[n_q, frames]`` (bool) for a chosen level L and u (``draw_mask`` draws both):
    level L masked with probability cos(u pi / 2), the levels above masked, the levels below kept."""
    coin = np.random.default_rng(seed).random(frames) < math.cos(u * math.pi / 2)
    lv = np.arange(n_q)[:, None]
    return (lv > level) | ((lv == level) & coin[None, :])


def mask_schedule_figure(level: int = 1, u: float = 0.4, n_q: int = 4, frames: int = 100, seed: int = 0) -> go.Figure:
    """Left: the masking probability cos(u pi / 2) against u; right: one mask it draws at level L."""
    fig = make_subplots(rows=1, cols=2, column_widths=[0.3, 0.7], horizontal_spacing=0.08,
                        subplot_titles=("P(masked) at level L = cos(u π/2)", f"one training mask: L = {level + 1}, u = {u:.2f}"))
    grid = np.linspace(0, 1, 101)
    fig.add_trace(go.Scatter(x=grid, y=np.cos(grid * np.pi / 2), mode="lines", name="cos(u π/2)"), 1, 1)
    fig.add_trace(go.Scatter(x=[u], y=[math.cos(u * math.pi / 2)], mode="markers", marker=dict(size=10),
                             name="this u"), 1, 1)
    fig.add_hline(y=2 / math.pi, line_dash="dot", annotation_text="mean 2/π", row=1, col=1)
    mask = level_mask(level, u, n_q, frames, seed).astype(float)
    fig.add_trace(go.Heatmap(z=mask, y=[f"level {q + 1}" for q in range(n_q)], colorscale=[[0, "#3b7dd8"], [1, "#dddddd"]],
                             zmin=0, zmax=1, showscale=False, hovertemplate="frame %{x}, %{y}: %{z}<extra></extra>"), 1, 2)
    fig.update_xaxes(title_text="u", row=1, col=1)
    fig.update_yaxes(title_text="probability", range=[0, 1.05], row=1, col=1)
    fig.update_xaxes(title_text="frame (grey: masked, blue: kept)", row=1, col=2)
    fig.update_layout(height=320, showlegend=False, margin=dict(t=40, b=40))
    return fig


def unmasking_figure(sample: MaskedSample) -> go.Figure:
    """Top: the iteration at which each (level, frame) token was fixed; bottom: tokens fixed per iteration."""
    fixed = sample.fixed_at.numpy()
    n_q = fixed.shape[0]
    total = sum(sample.steps)
    fig = make_subplots(rows=2, cols=1, row_heights=[0.6, 0.4], vertical_spacing=0.22,
                        subplot_titles=("iteration at which each token was fixed", "tokens fixed per iteration"))
    fig.add_trace(go.Heatmap(z=fixed, y=[f"level {q + 1}" for q in range(n_q)], colorscale="Viridis",
                             colorbar=dict(title="iteration", len=0.55, y=0.75),
                             hovertemplate="frame %{x}, %{y}: iteration %{z}<extra></extra>"), 1, 1)
    counts = np.bincount(fixed.reshape(-1), minlength=total)
    levels = sample.level_of_step
    fig.add_trace(go.Bar(x=list(range(total)), y=counts, marker_color=[f"hsl({90 * q}, 60%, 50%)" for q in levels],
                         hovertext=[f"level {q + 1}" for q in levels]), 2, 1)
    fig.update_xaxes(title_text="frame", row=1, col=1)
    fig.update_xaxes(title_text="iteration (colour: level)", row=2, col=1)
    fig.update_yaxes(title_text="tokens", row=2, col=1)
    fig.update_layout(height=480, showlegend=False, margin=dict(t=40, b=40))
    return fig


def order_comparison_figure(sample: MaskedSample) -> go.Figure:
    """When each (level, frame) token is decided, as a share of all the model passes: left, a streaming
    accompanist with the delay pattern (level q of frame t at step t + q + 1, chapter 4); right, the masked
    model's iterations (``sample.fixed_at``)."""
    fixed = sample.fixed_at.numpy()
    n_q, frames = fixed.shape
    streaming = np.arange(frames)[None, :] + np.arange(n_q)[:, None] + 1
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.06, shared_yaxes=True,
                        subplot_titles=(f"streaming: {frames + n_q} steps, left to right",
                                        f"masked: {sum(sample.steps)} iterations, level by level"))
    labels = [f"level {q + 1}" for q in range(n_q)]
    for col, (order, total) in enumerate(((streaming, frames + n_q), (fixed + 1, sum(sample.steps))), start=1):
        fig.add_trace(go.Heatmap(z=order / total, y=labels, colorscale="Viridis", zmin=0, zmax=1, showscale=col == 2,
                                 colorbar={"title": "share of passes"},
                                 hovertemplate="frame %{x}, %{y}: %{z:.2f}<extra></extra>"), 1, col)
        fig.update_xaxes(title_text="frame", row=1, col=col)
    fig.update_layout(height=280, margin={"t": 40, "b": 40})
    return fig


def unmasking_state_figure(sample: MaskedSample, step: int) -> go.Figure:
    """The output codes after iteration ``step``: grey where still masked, coloured by code where fixed,
    outlined where fixed at this very iteration."""
    state = sample.state_after(step).numpy().astype(float)
    n_q, frames = state.shape
    shown = np.where(state < 0, np.nan, state)
    fig = go.Figure(go.Heatmap(z=shown, y=[f"level {q + 1}" for q in range(n_q)], colorscale="Turbo", showscale=False,
                               hovertemplate="frame %{x}, %{y}: code %{z}<extra></extra>"))
    now = (sample.fixed_at.numpy() == step).nonzero()
    fig.add_trace(go.Scatter(x=now[1], y=[f"level {q + 1}" for q in now[0]], mode="markers",
                             marker=dict(symbol="square-open", size=7, color="black"), name="fixed now"))
    left = int((state < 0).sum())
    fig.update_layout(title=f"after iteration {step} (level {sample.level_of_step[step] + 1}): {left} of {n_q * frames} "
                            "tokens still masked (blank)", height=260, showlegend=False, margin=dict(t=50, b=30),
                      plot_bgcolor="#eeeeee")
    fig.update_xaxes(title_text="frame", range=[-0.5, frames - 0.5])
    return fig


@torch.inference_mode()
def guidance_entropy(model: MaskedAccompanist, input_codes: torch.Tensor, category: int,
                     scales: list[float]) -> list[float]:
    """Mean entropy (nats) of level 1's first-iteration distributions (everything masked) at each guidance scale."""
    x = model.check_codes(input_codes)[None]
    empty = torch.full_like(x, model.mask_id)
    cat = torch.tensor([int(category)], device=x.device)
    out = []
    for s in scales:
        logp = F.log_softmax(guided_logits(model, x, empty, cat, float(s), level=0)[0].float(), dim=-1)
        out.append(float(-(logp.exp() * logp).sum(-1).mean()))
    return out


__all__ = ["guidance_entropy", "level_mask", "mask_schedule_figure", "order_comparison_figure", "unmasking_figure",
           "unmasking_state_figure"]
