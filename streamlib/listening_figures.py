"""The controlled listening runs as a table and a figure (chapter 7, section 7.7 "Does the model listen?").

``python -m streamlib compare --by-frame-type --play-along N`` writes three CSVs per arm of an experiment
(``results/listening/<experiment>_<arm>_compare.csv``, ``_frame_types.csv``, ``_play_along.csv``; the runs and
commands are in ``docs/listening_experiments.md``). ``listening_runs`` merges them into one row per run,
``listening_table`` lays the rows out as the document's table and ``reliance_figure`` draws the input
reliance by frame type, one bar per run. ``gap_table`` lays out play-along rows with the paired listening gap
(``compare --play-along``, free or with ``--play-along-prompt``: section 7.9). (Chapter 11's blind listening
*study* is ``streamlib.listening``.)
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

from streamlib.compare import FRAME_TYPES
from streamlib.paths import REPO_ROOT
from streamlib.playalong import GAP_SUFFIX

LISTENING_DIR = REPO_ROOT / "results" / "listening"
RELIANCE_TYPES = ("all",) + FRAME_TYPES
METRICS = {"harmonic_agreement": "harmonic agreement", "beat_f1_song": "beat F1"}
_CONTROL = " (another song's input)"


def _rows(path: Path) -> list[dict]:
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run python -m streamlib compare ... "
                                "(docs/listening_experiments.md)")
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _interval(row: dict) -> tuple[float, float, float]:
    return float(row["value"]), float(row["ci_low"]), float(row["ci_high"])


def listening_runs(arms: Sequence[str] = ("paper", "noise30"), root: str | Path = LISTENING_DIR,
                   experiment: str = "exp") -> list[dict]:
    """One row per run of the given arms, from ``<root>/<experiment>_<arm>_{compare,frame_types,play_along}.csv``
    (``experiment``: "exp" for the 1,000-step runs, "c3k" for the 3,000-step ones).

    Each row: ``run`` (e.g. "paper_s0"), ``arm``, ``seed``, ``steps``, ``val_loss`` (clean-history loss on
    the common targets), ``reliance`` {frame type: nats per token, all RVQ levels}, and per play-along metric
    (``harmonic_agreement``, ``beat_f1_song``) ``play_along`` (value, 95 % low, high), ``control`` (the same
    model fed another song's input), ``floor`` (random pairing), ``ceiling`` (the true stem) and
    ``above_floor`` (its interval clear of the floor's, ``streamlib.playalong.verdict``).
    """
    from streamlib.playalong import verdict

    root, out = Path(root), []
    for arm in arms:
        compared = _rows(root / f"{experiment}_{arm}_compare.csv")
        types = _rows(root / f"{experiment}_{arm}_frame_types.csv")
        played = _rows(root / f"{experiment}_{arm}_play_along.csv")
        by_kind = {(r["kind"], r["metric"]): r for r in played if r["kind"] in ("ground_truth", "random_floor")}
        bars = verdict([dict(r, value=float(r["value"]), ci_low=float(r["ci_low"]), ci_high=float(r["ci_high"]))
                        for r in played])
        for c in compared:
            model = c["model"]
            reliance = {r["type"]: float(r["reliance"]) for r in types if r["model"] == model and r["level"] == "all"}
            mine = {r["metric"]: r for r in played if r["system"] == model}
            ctrl = {r["metric"]: r for r in played if r["system"] == model + _CONTROL}
            out.append({
                "run": model.removeprefix(f"{experiment}_"), "arm": arm, "seed": int(c["seed"]), "steps": int(c["steps"]),
                "val_loss": float(c["common_loss"]),
                "reliance": reliance,
                "play_along": {m: _interval(r) for m, r in mine.items()},
                "control": {m: float(r["value"]) for m, r in ctrl.items()},
                "floor": {m: _interval(by_kind["random_floor", m]) for m in mine if ("random_floor", m) in by_kind},
                "ceiling": {m: _interval(by_kind["ground_truth", m]) for m in mine if ("ground_truth", m) in by_kind},
                "above_floor": {v["metric"]: bool(v["above_floor"]) for v in bars if v["system"] == model},
            })
    return out


def listening_table(runs: Sequence[dict]) -> tuple[tuple[str, ...], list[tuple]]:
    """(header, rows) for ``streamlib.viz.markdown_table``: one line per run, then the true stem and the
    random-pairing floor (as in ``docs/listening_experiments.md``)."""
    fmt = lambda v: f"{v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]"  # noqa: E731
    header = ("run", "val loss", *(f"reliance, {t}" for t in RELIANCE_TYPES), *METRICS.values(),
              "another song's input: harmony / beat F1")
    rows = [(r["run"], f"{r['val_loss']:.3f}", *(f"{r['reliance'][t]:+.4f}" for t in RELIANCE_TYPES),
             *(fmt(r["play_along"][m]) if m in r["play_along"] else "" for m in METRICS),
             " / ".join(f"{r['control'][m]:.3f}" for m in METRICS if m in r["control"])) for r in runs]
    blank = ("",) * (1 + len(RELIANCE_TYPES))
    for key, label in (("ceiling", "ground truth"), ("floor", "random pairing")):
        refs = list(dict.fromkeys(tuple(r[key].get(m) for m in METRICS) for r in runs))
        for ref in refs:
            rows.append((label, *blank, *(fmt(v) if v else "" for v in ref), ""))
    return header, rows


def listening_gaps(paths: Sequence[str | Path], metric: str = "harmonic_agreement"
                   ) -> dict[str, tuple[float, float, float]]:
    """Per model of play-along CSVs, its paired listening gap for ``metric`` (own input minus another song's,
    clip by clip): (value, 95 % low, high), as in ``gap_table`` (chapter 7, sections 7.9-7.10)."""
    out = {}
    for path in map(Path, paths):
        for r in _rows(path):
            if r["metric"] == metric and r["kind"] == "listening_gap":
                out[r["system"].removesuffix(GAP_SUFFIX)] = _interval(r)
    return out


def gap_table(paths: Sequence[str | Path], metric: str = "harmonic_agreement") -> tuple[tuple[str, ...], list[tuple]]:
    """(header, rows) for ``streamlib.viz.markdown_table`` from play-along CSVs (``compare --play-along``): per
    model its own-input score, the same model with another song's input, the paired gap between them (own minus
    another song's, clip by clip, ``MetricScorer.paired_gap``) with its 95 % interval, and the file's floor and
    codec ceiling; "generated" says whether the stems were continued after a true-stem prompt or played from
    nothing. Models without a gap row (CSVs written before it existed) are left out."""
    fmt = lambda r: f"{float(r['value']):.3f} [{float(r['ci_low']):.3f}, {float(r['ci_high']):.3f}]"  # noqa: E731
    header = ("model", "generated", f"{METRICS.get(metric, metric)}, own input", "another song's input",
              "gap, own minus another's (paired)", "random pairing", "true stem through the codec")
    rows = []
    for path in map(Path, paths):
        played = [r for r in _rows(path) if r["metric"] == metric]
        ref = {r["kind"]: r for r in played if r["kind"] in ("random_floor", "codec_ceiling")}
        for gap in (r for r in played if r["kind"] == "listening_gap"):
            model = gap["system"].removesuffix(GAP_SUFFIX)
            own = next(r for r in played if r["system"] == model)
            ctrl = next(r for r in played if r["system"] == model + _CONTROL)
            note = gap["note"]
            how = note[: note.index(";")].replace("continuation after", "continued after") \
                if note.startswith("continuation") else "from nothing"
            rows.append((model, how, fmt(own), fmt(ctrl), f"{float(gap['value']):+.3f} [{float(gap['ci_low']):+.3f}, "
                         f"{float(gap['ci_high']):+.3f}]", *(fmt(ref[k]) if k in ref else "" for k in
                                                           ("random_floor", "codec_ceiling"))))
    return header, rows


def reliance_figure(runs: Sequence[dict], title: str | None = None):
    """Chapter 7: input reliance (nats per token) by frame type of the target, one bar per run; the arms
    in two colours, seed 1 hatched."""
    import plotly.graph_objects as go

    arms = list(dict.fromkeys(r["arm"] for r in runs))
    colours = ("#3b75af", "#e07b39", "#519e3e", "#8d69b8")
    fig = go.Figure()
    for r in runs:
        fig.add_trace(go.Bar(x=list(RELIANCE_TYPES), y=[r["reliance"][t] for t in RELIANCE_TYPES], name=r["run"],
                             marker={"color": colours[arms.index(r["arm"]) % len(colours)],
                                     "pattern": {"shape": "/" if r["seed"] % 2 else ""}}))
    steps = sorted({r["steps"] for r in runs})
    fig.update_layout(barmode="group", height=400, xaxis_title="frame type of the target",
                      yaxis_title="input reliance (nats per token)",
                      title=title or f"Input reliance by frame type, {' / '.join(f'{s:,}' for s in steps)} steps")
    return fig


__all__ = ["LISTENING_DIR", "gap_table", "listening_gaps", "listening_runs", "listening_table", "reliance_figure"]
