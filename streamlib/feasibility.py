"""Deployability of a (t_f, k) pair: the latency and throughput conditions of paper section 3.4.

Chapter 1 ("The streaming accompaniment problem") teaches this module.

Sign convention (Eq. (1), REFERENCE section 1): y(t : t+k) is conditioned on x(1 : t + t_f), so
t_f > 0 is lookahead and t_f < 0 is predicting ahead. Input sample x(t') is sensed at wall time
t'. The output chunk starting at y(t) needs x(t + t_f), which exists at wall time t + t_f and,
after the end-to-end system latency ``tau_sys`` (capture, transport, inference, output buffers),
can be rendered at t + t_f + tau_sys at the earliest. Rendering y(t) on time at wall time t, with a
safety margin ``tau_jitter``, requires

    t + t_f + tau_sys + tau_jitter <= t   <=>   lead := -t_f >= tau_sys + tau_jitter.

The paper writes "t_f >= tau_sys + tau_jitter" with t_f meaning the amount of predicting ahead;
we implement the self-consistent form on ``lead = -t_f``: only t_f <= -(tau_sys + tau_jitter) is
deployable in real time; t_f = 0 and every lookahead t_f > 0 are offline/buffered settings.
If ``tau_sys`` excludes model compute, pass ``gen_in_latency=True`` and the chunk's own generation
time t_gen(k) is added to the required lead.

Throughput: generating a chunk of k frames must take no longer than playing it,
t_gen(k) <= k (both in seconds), so generation keeps pace with playback.

t_f and k are in frames (50 Hz); wall-clock quantities (tau_sys, tau_jitter, t_gen) in seconds.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

import numpy as np

from streamlib.config import FRAME_RATE, ConfigError

TGen = Callable[[int], float]  # chunk length in frames -> mean wall time in seconds
_EPS = 1e-9


def linear_t_gen(per_call_s: float, per_frame_s: float) -> TGen:
    """A cost model ``t_gen(k) = per_call_s + per_frame_s * k`` (seconds; k in frames)."""
    if per_call_s < 0 or per_frame_s < 0:
        raise ConfigError(f"generation costs must be >= 0, got per_call={per_call_s}, per_frame={per_frame_s}")
    return lambda k: per_call_s + per_frame_s * k


def table_t_gen(measured: Mapping[int, float]) -> TGen:
    """``t_gen`` from measurements {k frames: seconds}, linear between them; outside their range
    it raises (no extrapolation)."""
    if not measured:
        raise ConfigError("table_t_gen needs at least one measurement")
    ks = sorted(int(k) for k in measured)
    ts = [float(measured[k]) for k in ks]
    if any(t < 0 or not math.isfinite(t) for t in ts):
        raise ConfigError(f"measured generation times must be finite and >= 0, got {ts}")

    def t_gen(k: int) -> float:
        if not ks[0] <= k <= ks[-1]:
            raise ConfigError(f"k={k} frames is outside the measured range {ks[0]}..{ks[-1]}")
        i = bisect.bisect_left(ks, k)
        if ks[i] == k:
            return ts[i]
        w = (k - ks[i - 1]) / (ks[i] - ks[i - 1])
        return (1 - w) * ts[i - 1] + w * ts[i]

    return t_gen


@dataclass(frozen=True)
class Feasibility:
    """Both conditions for one (tf, k) pair; times in seconds."""

    tf: int
    k: int
    lead_s: float
    required_lead_s: float
    t_gen_s: float
    k_s: float
    latency_ok: bool
    throughput_ok: bool

    @property
    def feasible(self) -> bool:
        return self.latency_ok and self.throughput_ok

    @property
    def status(self) -> str:
        """'feasible', 'latency', 'throughput' or 'both' (the failing condition(s))."""
        if self.feasible:
            return "feasible"
        if not self.latency_ok and not self.throughput_ok:
            return "both"
        return "latency" if not self.latency_ok else "throughput"

    @property
    def reason(self) -> str:
        """One line saying why the pair is (in)feasible."""
        parts = []
        if not self.latency_ok:
            parts.append(f"latency: lead -t_f = {self.lead_s:.3f} s < required {self.required_lead_s:.3f} s")
        if not self.throughput_ok:
            parts.append(f"throughput: t_gen(k) = {self.t_gen_s:.3f} s > k = {self.k_s:.3f} s")
        if parts:
            return "; ".join(parts)
        return (
            f"feasible: lead {self.lead_s:.3f} s >= {self.required_lead_s:.3f} s, "
            f"t_gen {self.t_gen_s:.3f} s <= k {self.k_s:.3f} s"
        )


def _check_times(tau_sys: float, tau_jitter: float) -> None:
    if not (math.isfinite(tau_sys) and tau_sys > 0):
        raise ConfigError(f"tau_sys must be a positive number of seconds, got {tau_sys}")
    if not (math.isfinite(tau_jitter) and tau_jitter >= 0):
        raise ConfigError(f"tau_jitter must be >= 0 seconds, got {tau_jitter}")


def _t_gen_of(t_gen: TGen, k: int) -> float:
    value = float(t_gen(k))
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"t_gen({k}) = {value} is not a finite non-negative number of seconds")
    return value


def check(
    tf: int,
    k: int,
    tau_sys: float,
    tau_jitter: float,
    t_gen: TGen,
    *,
    gen_in_latency: bool = False,
    frame_rate: int = FRAME_RATE,
) -> Feasibility:
    """Evaluate the latency condition (-tf >= tau_sys + tau_jitter [+ t_gen(k)]) and the
    throughput condition (t_gen(k) <= k) for one pair; ``tf``, ``k`` in frames."""
    if isinstance(tf, bool) or not isinstance(tf, (int, np.integer)):
        raise ConfigError(f"tf must be an integer number of frames, got {tf!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k must be a positive integer number of frames, got {k!r}")
    _check_times(tau_sys, tau_jitter)
    gen = _t_gen_of(t_gen, int(k))
    lead = -int(tf) / frame_rate
    required = tau_sys + tau_jitter + (gen if gen_in_latency else 0.0)
    k_s = int(k) / frame_rate
    return Feasibility(
        tf=int(tf),
        k=int(k),
        lead_s=lead,
        required_lead_s=required,
        t_gen_s=gen,
        k_s=k_s,
        latency_ok=lead >= required - _EPS,
        throughput_ok=gen <= k_s + _EPS,
    )


def max_deployable_tf(tau_sys: float, tau_jitter: float, frame_rate: int = FRAME_RATE) -> int:
    """The largest (least negative) t_f in frames meeting the latency condition."""
    _check_times(tau_sys, tau_jitter)
    return -math.ceil((tau_sys + tau_jitter) * frame_rate - _EPS * frame_rate)


@dataclass(frozen=True)
class FeasibilityGrid:
    """``cells[i][j]`` is the pair (tfs[j], ks[i]): rows are k, columns are t_f."""

    tfs: tuple[int, ...]
    ks: tuple[int, ...]
    cells: tuple[tuple[Feasibility, ...], ...]

    @property
    def feasible(self) -> np.ndarray:
        """Bool ``[len(ks), len(tfs)]``."""
        return np.array([[c.feasible for c in row] for row in self.cells], dtype=bool)

    @property
    def reasons(self) -> list[list[str]]:
        return [[c.reason for c in row] for row in self.cells]

    @property
    def status(self) -> list[list[str]]:
        return [[c.status for c in row] for row in self.cells]

    def pairs(self) -> list[tuple[int, int]]:
        """Feasible (tf, k) pairs, frames."""
        return [(c.tf, c.k) for row in self.cells for c in row if c.feasible]


def feasibility_grid(
    tfs: Iterable[int],
    ks: Iterable[int],
    tau_sys: float,
    tau_jitter: float,
    t_gen: TGen,
    *,
    gen_in_latency: bool = False,
    frame_rate: int = FRAME_RATE,
) -> FeasibilityGrid:
    """Both conditions for every (tf, k) in ``tfs x ks`` (frames)."""
    tfs, ks = tuple(int(t) for t in tfs), tuple(int(k) for k in ks)
    if not tfs or not ks:
        raise ConfigError("feasibility_grid needs at least one tf and one k")
    cells = tuple(
        tuple(check(tf, k, tau_sys, tau_jitter, t_gen, gen_in_latency=gen_in_latency, frame_rate=frame_rate) for tf in tfs)
        for k in ks
    )
    return FeasibilityGrid(tfs=tfs, ks=ks, cells=cells)


_STATUS_CODE = {"feasible": 0, "latency": 1, "throughput": 2, "both": 3}
_STATUS_COLOUR = ["#2ca02c", "#ff7f0e", "#1f77b4", "#7f7f7f"]


def feasibility_figure(grid: FeasibilityGrid, frame_rate: int = FRAME_RATE, title: str | None = None):
    """Plotly heatmap of the grid (x: t_f in s, y: k in s), coloured by which condition fails;
    hovering a cell shows its reason."""
    import plotly.graph_objects as go

    z = [[_STATUS_CODE[s] for s in row] for row in grid.status]
    n = len(_STATUS_COLOUR)
    scale = []
    for i, colour in enumerate(_STATUS_COLOUR):
        scale += [[i / n, colour], [(i + 1) / n, colour]]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=[tf / frame_rate for tf in grid.tfs],
            y=[k / frame_rate for k in grid.ks],
            text=grid.reasons,
            hovertemplate="t_f=%{x:.2f} s, k=%{y:.2f} s<br>%{text}<extra></extra>",
            colorscale=scale,
            zmin=-0.5,
            zmax=n - 0.5,
            colorbar=dict(
                tickvals=list(range(n)), ticktext=["feasible", "latency fails", "throughput fails", "both fail"]
            ),
            xgap=1,
            ygap=1,
        )
    )
    fig.update_layout(
        title=title or "Deployable (t_f, k) pairs",
        xaxis_title="future visibility t_f (s)   (< 0: predict ahead)",
        yaxis_title="chunk duration k (s)",
        height=420,
    )
    return fig


__all__ = [
    "TGen",
    "linear_t_gen",
    "table_t_gen",
    "Feasibility",
    "check",
    "max_deployable_tf",
    "FeasibilityGrid",
    "feasibility_grid",
    "feasibility_figure",
]
