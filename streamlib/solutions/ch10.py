"""Solutions to ``book/exercises/10_replicating_tradeoffs.ipynb`` (chapter 10, "Replicating the trade-offs":
reading the sweep CSV of ``streamlib.sweep``)."""

from __future__ import annotations

from streamlib.solutions import Exercise, same_function


def best_system(rows: list[dict], metric: str = "coherence") -> tuple[str, str]:
    """10.1: (system, kind) of the row with the highest ``metric`` value."""
    best = max((r for r in rows if r["metric"] == metric), key=lambda r: r["value"])
    return best["system"], best["kind"]


def offline_beats_streaming(rows: list[dict], metric: str) -> bool | None:
    """10.2: is the offline prefix decoder above every streaming model with t_f <= 0 (higher is better)?
    None when the rows lack either."""
    offline = [r["value"] for r in rows if r["metric"] == metric and r["kind"] == "offline_prefix"]
    causal = [r["value"] for r in rows if r["metric"] == metric and r["kind"] == "streaming" and r["tf_frames"] <= 0]
    if not offline or not causal:
        return None
    return offline[0] > max(causal)


def grid_size(rows: list[dict]) -> tuple[int, int]:
    """10.3: (streaming models, distinct k) in the sweep's coherence rows."""
    stream = [r for r in rows if r["metric"] == "coherence" and r["kind"] == "streaming"]
    return len(stream), len({r["k_frames"] for r in stream})


def _rows() -> list[dict]:
    from streamlib.sweep import DEFAULT_CSV, read_csv

    return read_csv(DEFAULT_CSV)


def _expected1() -> tuple[str, str]:
    coh = [r for r in _rows() if r["metric"] == "coherence"]
    values = [r["value"] for r in coh]
    r = coh[values.index(max(values))]
    return r["system"], r["kind"]


def _variants():
    """The committed rows as they are, and copies with an offline prefix decoder row far above and far below
    every streaming model (the committed sweep may have none: the answer must then be None)."""
    rows = _rows()
    for metric in ("coherence", "beat_f1"):
        yield rows, metric
        causal = [r for r in rows if r["metric"] == metric and r["kind"] == "streaming"]
        others = [r for r in rows if not (r["metric"] == metric and r["kind"] == "offline_prefix")]
        for shift in (-10.0, 10.0):
            offline = dict(causal[0], kind="offline_prefix", system="offline prefix decoder", tf_frames=None,
                           k_frames=None, value=max(r["value"] for r in causal) + shift)
            yield others + [offline], metric


def _lib_offline(rows: list[dict], metric: str) -> bool | None:
    from streamlib.sweep import paper_findings

    for f in paper_findings(rows):
        if f["metric"] == metric and f["claim"].startswith("the offline prefix decoder beats"):
            return f["reproduces"]
    return None


def _expected3() -> tuple[int, int]:
    """From the cards of the models the sweep ran (shipped or archived since), not from today's shipped set."""
    from streamlib.stream import is_streaming_card
    from streamlib.sweep import swept_cards

    cards = [c for c in swept_cards(_rows()).values() if is_streaming_card(c)]
    return len(cards), len({c["spec"]["k"] for c in cards})


EXERCISES = [
    Exercise("10.1", "explore", "the system with the highest coherence", lambda: best_system(_rows()), _expected1),
    Exercise("10.2", "implement", "does the offline decoder beat every causal model?", lambda: offline_beats_streaming,
             lambda: _lib_offline, same_function(_variants)),
    Exercise("10.3", "compute", "how many streaming models and chunk sizes the sweep holds",
             lambda: grid_size(_rows()), _expected3),
]
