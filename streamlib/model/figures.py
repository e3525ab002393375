"""Plotly figures for chapter 6 ("The model") and chapter 7 ("Training").

Every figure is computed from the library's own functions (``align``, ``chunk_masks``,
``lr_at``, the ``Accompanist``'s modules), so what the reader sees is what the model computes.

Chapter 6: ``fusion_terms`` / ``fusion_figure`` (Eq. 2-3 on a real window), ``visibility_maps`` /
``attention_figure`` (what each sequence position may attend to, k = 1 and a k > 1 chunk).
Chapter 7: ``loss_mask_figure`` (k = 1 vs. the prefix decoder's chunk loss), ``all_chunks_figure`` (every
chunk in one pass), ``lr_figure``
(warm-up + cosine), ``loss_curves_figure`` (training logs). The figures of the first codec's models
(``val_curves_figure``, ``lookahead_figure``, ``paired_difference_figure``) drew what
``docs/first_codec_training_log.md`` now records; section 7.7's figure is ``streamlib.listening_figures``.
"""

from __future__ import annotations

from typing import Sequence

import torch

from streamlib.tokens.visibility import Aligned, align, all_chunks, chunk_masks, output_offset

_SEEN, _UNSEEN, _TRAINED = "#3b75af", "#f0f0f0", "#e07b39"


# ----------------------------------------------------------------------------- chapter 6: fusion


@torch.no_grad()
def fusion_terms(acc, aligned: Aligned, batch: int = 0) -> dict[str, torch.Tensor]:
    """The parts of Eq. (2)-(3) for one example of ``aligned`` (chapter 6), each ``[L, dim]``.

    ``e_x``: sum of the frozen codec codebook vectors of the input frame (zeros where PAD);
    ``input_term``: ``LN(W LN(e_x))`` (the learned PAD vector, normalised, where PAD);
    ``e_y``: sum of the learned output embeddings; ``output_term``: ``LN(e_y)`` before the gate.
    ``input_term + acc.gate * output_term`` is ``acc.embed`` (the notebook asserts it).
    """
    codes, pad = aligned.input_codes[batch : batch + 1], aligned.input_pad_mask[batch : batch + 1]
    tokens = aligned.output_tokens[batch : batch + 1]
    n_q = acc.cfg.n_q
    e_x = acc.codebook_sum(codes)
    e_x = torch.where(pad[..., None], torch.zeros_like(e_x), e_x)
    h = acc.in_proj(acc.in_norm(e_x))
    h = torch.where(pad[..., None], acc.input_pad.to(h.dtype), h)
    e_y = sum(acc.out_embed[q](tokens[:, q]) for q in range(n_q))
    return {"e_x": e_x[0], "input_term": acc.in_out_norm(h)[0], "e_y": e_y[0], "output_term": acc.out_norm(e_y)[0]}


def fusion_figure(terms: dict[str, torch.Tensor], gate: float = 0.0, channels: int = 32):
    """Chapter 6: the frozen input embedding ``e_x`` (first ``channels`` channels, a heatmap over
    positions) and the size of the two fused terms per position for a gate value ``gate``."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    e_x = terms["e_x"][:, :channels].T
    rms = lambda t: t.pow(2).mean(-1).sqrt().tolist()  # noqa: E731
    pos = list(range(e_x.shape[1]))
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.55, 0.45],
                        subplot_titles=(f"frozen input embedding e_x (first {channels} of "
                                        f"{terms['e_x'].shape[1]} channels)",
                                        f"RMS per position of the two terms of Eq. (3), g = {gate:g}"))
    fig.add_trace(go.Heatmap(z=e_x.tolist(), x=pos, colorscale="RdBu", zmid=0, showscale=False,
                             hovertemplate="position %{x}, channel %{y}: %{z:.3f}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Scatter(x=pos, y=rms(terms["input_term"]), name="LN(W LN(e_x))", line=dict(color=_SEEN)),
                  row=2, col=1)
    fig.add_trace(go.Scatter(x=pos, y=rms(gate * terms["output_term"]), name="g * LN(e_y)",
                             line=dict(color=_TRAINED)), row=2, col=1)
    fig.update_xaxes(title_text="sequence position", row=2, col=1)
    fig.update_yaxes(title_text="channel", row=1, col=1)
    fig.update_yaxes(title_text="RMS", rangemode="tozero", row=2, col=1)
    fig.update_layout(height=560, title="Gated fusion (Eq. 2-3) on a real window")
    return fig


# ----------------------------------------------------------------------------- chapter 6: attention


def visibility_maps(n_frames: int = 16, tf: int = 0, k: int = 1, prefix: int | None = None) -> dict:
    """What each sequence position may attend to, read off the aligned streams (chapter 6).

    k = 1: the causal layout of ``align``; k > 1: the prefix-decoder chunk of ``chunk_masks`` at
    ``prefix`` (positions ``prefix .. prefix+k-1`` are trained; the pass stops after them).
    Returns ``inputs`` bool ``[rows, n_frames]`` (position j may use input frame i), ``outputs`` bool
    ``[rows, n_frames]`` (position j may use output step s), ``trained`` (positions with a loss),
    ``keep`` (positions carrying an input term) and ``prefix``.
    """
    x = torch.arange(n_frames).view(1, 1, n_frames)
    y = torch.zeros(1, 1, n_frames, dtype=torch.long)
    a = align(x, y, 0, tf)
    if k == 1:
        prefix, rows = None, a.length
        keep = torch.ones(a.length, dtype=torch.bool)
        trained = a.loss_mask[0, 0].clone()
    else:
        prefix = 0 if prefix is None else int(prefix)
        keep, mask = chunk_masks(a, prefix, k)
        rows = min(prefix + k, a.length)
        trained = mask[0, 0]
    has_input = keep & ~a.input_pad_mask[0]
    inputs = torch.zeros(rows, n_frames, dtype=torch.bool)
    outputs = torch.zeros(rows, n_frames, dtype=torch.bool)
    steps = torch.arange(a.length) - output_offset(tf)
    for j in range(rows):
        seen = has_input[: j + 1]
        inputs[j, a.input_codes[0, 0, : j + 1][seen]] = True
        s = steps[: j + 1]
        outputs[j, s[(s >= 0) & (s < n_frames)]] = True
    return {"inputs": inputs, "outputs": outputs, "trained": trained[:rows], "keep": keep[:rows], "prefix": prefix}


def attention_figure(n_frames: int = 16, tf: int = 0, k: int = 1, chunk: int = 1):
    """Chapter 6: rows = sequence positions, left = input frames, right = output steps they may
    attend to (blue). k > 1: the ``chunk``-th chunk of the prefix decoder (prefix = chunk * k);
    its trained rows are marked."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    prefix = None
    if k > 1:
        prefix = min(chunk * k, n_frames - 1)
    m = visibility_maps(n_frames, tf, k, prefix)
    rows = m["inputs"].shape[0]
    labels = [f"pos {j}{' *' if m['trained'][j] else ''}" for j in range(rows)]
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08,
                        subplot_titles=("input frames (frozen codec embedding)", "output steps (delayed tokens)"))
    colours = [[0, _UNSEEN], [1, _SEEN]]
    for col, key, what in ((1, "inputs", "input frame"), (2, "outputs", "output step")):
        fig.add_trace(go.Heatmap(z=m[key].int().tolist(), x=list(range(n_frames)), y=labels, colorscale=colours,
                                 zmin=0, zmax=1, showscale=False, xgap=1, ygap=1,
                                 hovertemplate=f"%{{y}}, {what} %{{x}}: %{{z}}<extra></extra>"), row=1, col=col)
        fig.update_xaxes(title_text=what, row=1, col=col)
    fig.update_yaxes(autorange="reversed")
    what = "k = 1: causal mask" if k == 1 else f"k = {k}: chunk after prefix {m['prefix']} (input only at positions <= prefix)"
    fig.update_layout(title=f"What each position sees, t_f = {tf} frames, {what}; * = position with a loss",
                      height=180 + 22 * rows)
    return fig


# ----------------------------------------------------------------------------- chapter 7


def all_chunks_figure(n_frames: int = 12, tf: int = 0, k: int = 4, phase: int = 0):
    """Chapter 7: the attention mask of ``all_chunks`` (rows attend to columns; blue) over the context copy
    (positions with their input) and the chunk copy (without), rows with a loss marked *."""
    import plotly.graph_objects as go

    x = torch.arange(n_frames).view(1, 1, n_frames)
    layout = all_chunks(align(x, torch.zeros(1, 1, n_frames, dtype=torch.long), 0, tf), k, phase)
    n = n_frames
    trained = layout.aligned.loss_mask[0, 0]
    names = [f"{'ctx' if i < n else 'chunk'} {i % n}{' *' if trained[i] else ''}" for i in range(2 * n)]
    cols = [f"{'ctx' if i < n else 'chunk'} {i % n}" for i in range(2 * n)]
    z = layout.attention.int().tolist()
    fig = go.Figure(go.Heatmap(z=z, x=cols, y=names, colorscale=[[0, _UNSEEN], [1, _SEEN]], zmin=0, zmax=1,
                               showscale=False, xgap=1, ygap=1,
                               hovertemplate="%{y} attends %{x}: %{z}<extra></extra>"))
    fig.add_shape(type="line", x0=n - 0.5, x1=n - 0.5, y0=-0.5, y1=2 * n - 0.5, line=dict(color="black"))
    fig.add_shape(type="line", y0=n - 0.5, y1=n - 0.5, x0=-0.5, x1=2 * n - 0.5, line=dict(color="black"))
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(title=f"Every k = {k} chunk in one pass (t_f = {tf} frames; chunks start at 0 and {phase} + m k)"
                            "<br>ctx = positions with their input, chunk = without; * = row with a loss",
                      height=220 + 22 * 2 * n, xaxis_title="attends to", yaxis_title="row")
    return fig



def loss_mask_figure(n_frames: int = 12, tf: int = 0, n_q: int = 4, k: int = 1, prefix: int = 4):
    """Chapter 7: which targets carry a loss (orange; grey: a target that is context only), per level
    and position, for k = 1 (every output token) or one k > 1 prefix-decoder chunk (``prefix`` is
    clamped into the window); the top row shows where an input term is fed (blue)."""
    import plotly.graph_objects as go

    a = align(torch.zeros(1, 1, n_frames, dtype=torch.long), torch.zeros(1, n_q, n_frames, dtype=torch.long), 0, tf)
    if k == 1:
        keep, mask, length = ~a.input_pad_mask[0], a.loss_mask[0], a.length
    else:
        prefix = min(int(prefix), a.length - 1)
        keep, mask = chunk_masks(a, prefix, k)
        keep, mask, length = keep & ~a.input_pad_mask[0], mask[0], min(prefix + k, a.length)
    z = [[1 if bool(keep[j]) else 0 for j in range(length)]]
    text = [["x" if bool(keep[j]) else "" for j in range(length)]]
    for q in range(n_q):
        z.append([2 if bool(mask[q, j]) else (0 if int(a.target_frames[q, j]) < 0 else 0.5) for j in range(length)])
        text.append([str(int(a.target_frames[q, j])) if int(a.target_frames[q, j]) >= 0 else "" for j in range(length)])
    names = ["input term"] + [f"target L{q}" for q in range(n_q)]
    fig = go.Figure(go.Heatmap(
        z=z, x=list(range(length)), y=names, text=text, texttemplate="%{text}", zmin=0, zmax=2, showscale=False,
        colorscale=[[0, _UNSEEN], [0.25, "#cfcfcf"], [0.5, _SEEN], [1, _TRAINED]], xgap=2, ygap=2,
        hovertemplate="%{y}, position %{x}: frame %{text}<extra></extra>"))
    n = int(mask.sum())
    title = (f"k = 1: loss on every output token ({n} targets)" if k == 1 else
             f"k = {k}, prefix {prefix}: loss on the chunk only ({n} targets); no input term inside the chunk")
    fig.update_layout(title=f"{title}, t_f = {tf}", xaxis_title="sequence position", height=150 + 40 * (n_q + 1))
    fig.update_yaxes(autorange="reversed")
    return fig


def lr_figure(cfg, total: int, label: str = ""):
    """Chapter 7: the learning rate of ``streamlib.train.lr_at`` over ``total`` steps."""
    import plotly.graph_objects as go

    from streamlib.train import lr_at

    every = max(1, total // 1000)
    steps = list(range(0, total, every)) + [total - 1]
    fig = go.Figure(go.Scatter(x=steps, y=[lr_at(s, cfg, total) for s in steps], mode="lines", name=label or "lr"))
    fig.update_layout(title=f"Learning rate {label}: warm-up {cfg.warmup_steps} steps, cosine to {cfg.min_lr:g}",
                      xaxis_title="step", yaxis_title="learning rate", height=360)
    return fig


def loss_curves_figure(histories: dict[str, list[dict]], title: str = "Training loss"):
    """Chapter 7: train loss (lines) and validation loss (markers) of ``train``'s log rows, by label."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for label, rows in histories.items():
        fig.add_trace(go.Scatter(x=[r["step"] for r in rows], y=[r["train_loss"] for r in rows], mode="lines",
                                 name=f"{label} train"))
        val = [r for r in rows if r.get("val_loss", "") != ""]
        if val:
            fig.add_trace(go.Scatter(x=[r["step"] for r in val], y=[r["val_loss"] for r in val],
                                     mode="lines+markers", name=f"{label} validation"))
    fig.update_layout(title=title, xaxis_title="step", yaxis_title="cross entropy (nats per token)", height=400)
    return fig


def val_curves_figure(cards: dict[str, dict], title: str = "Validation loss of the shipped models"):
    """The validation curves stored in checkpoint cards (``val_curve``), by label."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for label, card in cards.items():
        curve = card.get("val_curve") or []
        fig.add_trace(go.Scatter(x=[s for s, _ in curve], y=[v for _, v in curve], mode="lines+markers", name=label))
    fig.update_layout(title=title, xaxis_title="step",
                      yaxis_title="cross entropy (nats per token)", height=420)
    return fig


def lookahead_figure(own: dict[float, float], swapped: dict[float, float]):
    """Validation loss against t_f (seconds) on common targets, with each window's own input
    and with another song's; the gap between the lines is how much the models listen."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, points, dash in (("own input", own, "solid"), ("another song's input", swapped, "dot")):
        tfs = sorted(points)
        fig.add_trace(go.Scatter(x=tfs, y=[points[t] for t in tfs], mode="lines+markers", name=name,
                                 line={"dash": dash}))
    fig.update_layout(title="k = 1 models: validation loss against future visibility", height=400,
                      xaxis_title="t_f (s)", yaxis_title="cross entropy on common targets (nats per token)")
    return fig


def paired_difference_figure(diffs: dict[str, Sequence[float]], title: str = "Per-window loss differences"):
    """One box per comparison of per-window loss differences (``streamlib.compare.window_losses``),
    every window a dot; above zero the first model of the pair is worse on that window."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, d in diffs.items():
        fig.add_trace(go.Box(y=d, name=name, boxpoints="all", jitter=0.4, pointpos=0))
    fig.add_hline(y=0, line={"dash": "dot", "color": "grey"})
    fig.update_layout(title=title, height=400, showlegend=False, yaxis_title="loss difference (nats per token)")
    return fig


__all__ = ["all_chunks_figure", "attention_figure", "fusion_figure", "fusion_terms", "lookahead_figure", "loss_curves_figure", "loss_mask_figure",
           "lr_figure", "paired_difference_figure", "val_curves_figure", "visibility_maps"]
