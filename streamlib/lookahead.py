"""How much can lookahead help on a data set? A model-free probe of the token cache (used for the first
codec's models, docs/first_codec_training_log.md).

A model with future visibility t_f sees input frames up to ``f + t_f - 1`` when it predicts output
frame ``f`` (chapter 5). Whether that helps depends on the data: how strongly does the input at
frame ``f + d`` tell us about the target at frame ``f``, for each lag ``d``? This module measures
it without any model, on the codec's own representation: the *flux* of a stream at frame f is the
distance between consecutive quantised latents (the sum of the frozen codebook vectors of the
first ``n_q`` levels, as the model embeds its input), a proxy for onsets and changes. The probe is
the correlation between the target's flux at f and the input mixture's flux at f + d, averaged
over every (mixture, target) pair of a split.

A peak at d = 0 says the coincident input frame carries onset information that the past does not;
the height of the curve at d > 0 against d < 0 says what lookahead *beyond* the present adds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch


def latent_flux(codes: np.ndarray, tables: np.ndarray) -> np.ndarray:
    """Flux ``[T-1]`` of codes ``[Q, T]``: norm of the frame-to-frame change of sum_q tables[q][codes[q]]."""
    latent = sum(tables[q][codes[q]] for q in range(tables.shape[0]))
    return np.linalg.norm(np.diff(latent, axis=0), axis=1)


def lagged_correlation(target: np.ndarray, source: np.ndarray, lag: int) -> float:
    """Pearson correlation of ``target[f]`` with ``source[f + lag]`` over the frames where both exist."""
    if lag >= 0:
        a, b = target[: len(target) - lag], source[lag:]
    else:
        a, b = target[-lag:], source[: len(source) + lag]
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def flux_lag_correlation(tokens: str | Path, tables: Sequence[torch.Tensor] | torch.Tensor, lags: Sequence[int],
                         split: str = "validation", max_tracks: int | None = None) -> dict[int, tuple[float, float]]:
    """``{lag: (mean, standard error)}`` of the target-vs-input flux correlation over every
    (mixture, target) pair of ``split`` in a token cache (``streamlib.codec.tokenize``).

    ``tables``: the codec's codebook tables of the levels to use (``CausalCodec.codebook_tables(n_q)``).
    """
    files = sorted((Path(tokens) / split).glob("*.npz"))[:max_tracks]
    if not files:
        raise FileNotFoundError(f"no token files in {Path(tokens) / split}")
    tab = torch.stack(list(tables)).float().numpy()
    n_q = tab.shape[0]
    values: dict[int, list[float]] = {int(d): [] for d in lags}
    for path in files:
        with np.load(path) as z:
            stems, mixes, targets = z["stems"], z["mix_codes"], z["mix_target"]
        for m, t in enumerate(targets):
            fy = latent_flux(stems[int(t), :n_q].astype(np.int64), tab)
            fx = latent_flux(mixes[m, :n_q].astype(np.int64), tab)
            for d in values:
                r = lagged_correlation(fy, fx, d)
                if np.isfinite(r):
                    values[d].append(r)
    return {d: (float(np.mean(v)), float(np.std(v) / np.sqrt(len(v)))) for d, v in values.items() if v}


def flux_lag_figure(result: dict[int, tuple[float, float]], frame_rate: float = 50.0):
    """Bar chart of ``flux_lag_correlation``'s result against the lag in seconds (error bars: 2 s.e.)."""
    import plotly.graph_objects as go

    lags = sorted(result)
    fig = go.Figure(go.Bar(x=[d / frame_rate for d in lags], y=[result[d][0] for d in lags],
                           error_y={"type": "data", "array": [2 * result[d][1] for d in lags]}))
    fig.update_layout(title="How the input at frame f + d tells about the target at frame f (flux correlation)",
                      xaxis_title="lag d (s); d > 0 is lookahead", yaxis_title="correlation", height=360)
    return fig


__all__ = ["flux_lag_correlation", "flux_lag_figure", "lagged_correlation", "latent_flux"]
