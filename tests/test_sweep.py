"""Sweep: tidy CSV schema on a tiny grid, random pairing, clips from the quick set, figures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_stream import StandIn

from streamlib.codec import CausalCodec
from streamlib.config import StreamSpec, get_preset
from streamlib.stream import ModelEntry, is_streaming_card, shipped_models
from streamlib.sweep import (
    CSV_COLUMNS, DEFAULT_CSV, Clip, SweepError, load_clips, random_pairing, read_csv, run_sweep, swept_cards, sweep_figure,
)
from streamlib.sweep import paper_findings as sweep_findings

SR = 16_000


class RmsScorer:
    """A test scorer: per-clip RMS with a bootstrap interval, and the paired gap of two systems; the real one is
    MetricScorer, with the same three calls."""

    def clip_values(self, generated, clips):
        return {"rms": {i: float(np.sqrt(np.mean(g ** 2))) for i, g in enumerate(generated)}}

    @staticmethod
    def _interval(values, seed, note):
        values = np.asarray(values)
        rng = np.random.default_rng(seed)
        boots = [rng.choice(values, len(values)).mean() for _ in range(200)]
        return (float(values.mean()), float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5)),
                len(values), note)

    def __call__(self, generated, clips, seed=0, values=None):
        values = self.clip_values(generated, clips) if values is None else values
        return {"rms": self._interval(list(values["rms"].values()), seed, "test metric")}

    def paired_gap(self, a, b, clips, seed=0):
        return {"rms": self._interval([a["rms"][i] - b["rms"][i] for i in a["rms"]], seed, "paired test gap")}


rms_scorer = RmsScorer()


def make_clips(n=4, frames=20, lookahead=8):  # t_f up to 5 plus the delay pattern's 3 frames
    rng = np.random.default_rng(0)
    clips = []
    for i in range(n):
        samples = (frames + lookahead) * 320
        stems = [rng.normal(0, 0.1, samples).astype(np.float32) for _ in range(2)]
        clips.append(Clip(f"c{i}", category=i % 2, sample_rate=SR, input_stems=stems,
                          target=rng.normal(0, 0.05 * (i + 1), samples).astype(np.float32), frames=frames))
    return clips


@pytest.fixture(scope="module")
def codec():
    torch.manual_seed(0)
    return CausalCodec(get_preset("debug").codec)


def test_csv_schema_on_a_tiny_grid(codec, tmp_path):
    grid = [(-5, 1), (0, 2), (5, 1)]
    models = [ModelEntry(f"tf{tf} k{k}", "streaming", None, tf, k, accompanist=StandIn(StreamSpec(tf, k, window=50)))
              for tf, k in grid]
    out = tmp_path / "sweep.csv"
    rows = run_sweep(models, make_clips(), codec, rms_scorer, out, progress=None)
    table = read_csv(out)
    assert out.read_text().splitlines()[0] == ",".join(CSV_COLUMNS)
    assert len(table) == len(rows) == 2 + len(grid)
    kinds = [r["kind"] for r in table]
    assert kinds[:2] == ["ground_truth", "random_floor"] and kinds[2:] == ["streaming"] * 3
    for r, (tf, k) in zip(table[2:], grid):
        assert (r["tf_frames"], r["k_frames"]) == (tf, k)
        assert r["tf_s"] == pytest.approx(tf / 50) and r["k_s"] == pytest.approx(k / 50)
        assert r["ci_low"] <= r["value"] <= r["ci_high"] and r["n"] == 4 and r["x_real_time"] > 0
    assert table[0]["tf_s"] is None and table[0]["value"] == pytest.approx(np.mean([0.05 * (i + 1) for i in range(4)]), rel=0.1)
    fig = sweep_figure(table, "rms")
    assert len(fig.data) == 2  # k = 1 and k = 2 lines
    with pytest.raises(SweepError):
        sweep_figure(table, "nope")


def test_random_pairing_uses_same_category():
    clips = make_clips(4)
    floor = random_pairing(clips, seed=0)
    for i, f in enumerate(floor):
        j = next(j for j, c in enumerate(clips) if np.array_equal(c.target[: len(f)], f))
        assert j != i and clips[j].category == clips[i].category
    with pytest.raises(SweepError):
        random_pairing(clips[:1])


def test_load_clips_from_quick_set():
    from streamlib.data import book_dataset

    clips = load_clips(2, 1.0, lookahead_frames=10, root=book_dataset(quick=True), seed=0)
    assert len(clips) == 2
    for c in clips:
        assert c.frames == 50 and len(c.target) == 60 * 320
        assert all(len(s) == 60 * 320 for s in c.input_stems) and 1 <= len(c.input_stems)
        assert c.category not in (16, 17)
    again = load_clips(2, 1.0, lookahead_frames=10, root=book_dataset(quick=True), seed=0)
    assert [c.name for c in again] == [c.name for c in clips]
    bass = load_clips(4, 1.0, root=book_dataset(quick=True), seed=0, targets=(4,), per_song=2)  # --targets Bass
    assert [c.category for c in bass] == [4, 4, 4, 4]


def test_shipped_models_parses_names(tmp_path):
    for name in ("book_tf-10_k5", "book_tf+50_k1", "book_offline_prefix", "book_masked", "other_tf0_k1"):
        (tmp_path / f"{name}.safetensors").write_bytes(b"")
    found = shipped_models(tmp_path)
    assert [(e.kind, e.tf, e.k) for e in found] == [("streaming", 50, 1), ("streaming", -10, 5),
                                                    ("offline_prefix", None, None), ("offline_masked", None, None)]


def test_the_masked_model_joins_the_sweep_as_an_offline_system(codec, tmp_path):
    """Chapter 12's model runs on each clip's whole input (t_f = T, k = T): a row of its own, no (t_f, k)."""
    from streamlib.model.masked import MaskedAccompanist, masked_preset

    torch.manual_seed(0)
    masked = MaskedAccompanist(masked_preset("debug").model, codec.codebook_tables(4)).eval()
    entry = ModelEntry("offline masked", "offline_masked", None, None, None, accompanist=masked)
    clips = make_clips(n=3)
    rows = run_sweep([entry], clips, codec, rms_scorer, tmp_path / "sweep.csv", progress=None)
    row = rows[-1]
    assert (row["system"], row["kind"]) == ("offline masked", "offline_masked")
    assert row["tf_frames"] == row["k_frames"] == ""
    assert row["n"] == 3 and row["value"] > 0 and row["x_real_time"] > 0
    again = run_sweep([entry], clips, codec, rms_scorer, None, progress=None)[-1]
    assert again["value"] == row["value"]  # seeded per clip
    fig = sweep_figure(read_csv(tmp_path / "sweep.csv"), "rms")
    assert any("offline masked" in str(a.text) for a in fig.layout.annotations)


def test_committed_sweep_rows_are_the_models_of_their_cards():
    """Every model row of results/sweep_book.csv keeps the weights hash of the checkpoint it ran, and that hash
    is the card of a shipped model or of one retrained since (results/first_codec_cards/) at the row's (t_f, k):
    the committed sweep's rows are never taken for a retrained model's."""
    rows = [r for r in read_csv(DEFAULT_CSV) if r["checkpoint"]]
    cards = swept_cards(rows)
    assert rows and set(cards) == {r["checkpoint"] for r in rows}
    for r in rows:
        card = cards[r["checkpoint"]]
        assert card is not None, f"{r['checkpoint']}: no shipped or archived card has weights {r['weights_sha256']}"
        spec = (card["spec"]["tf"], card["spec"]["k"]) if is_streaming_card(card) else (None, None)
        assert (r["tf_frames"], r["k_frames"]) == spec, r["checkpoint"]


def test_the_committed_sweep_meets_the_play_along_bar():
    """Issue 16's bar on results/sweep_book.csv, the shipped accompanists streamed on 48 held-out clips with the
    another-song's-input control (chapter 10, section 10.5): at k = 1 and at k = 10 every check of
    ``play_along_bar`` is testable and holds (seven at k = 1, four at k = 10, where only t_f = -1 s and +1 s are
    shipped)."""
    from streamlib.playalong import play_along_bar

    rows = read_csv(DEFAULT_CSV)
    streaming = [r for r in rows if r["kind"] == "streaming"]
    assert {r["guidance"] for r in streaming} == {4.0} and min(int(r["n"]) for r in streaming) >= 32
    by_k = {k: [r for r in rows if r["kind"] not in ("streaming", "random_input", "listening_gap")
                or any(r["system"] == m["system"] or r["system"].startswith(m["system"] + " (")
                       for m in streaming if m["k_frames"] == k)]
            for k in {r["k_frames"] for r in streaming}}
    assert set(by_k) == {1, 10}
    for k, n in ((1, 7), (10, 4)):
        checks = play_along_bar(by_k[k])
        assert len(checks) == n and all(c["holds"] is True for c in checks), [c for c in checks if c["holds"] is not True]


def _row(kind, metric, value, tf=None, k=None):
    return {"kind": kind, "metric": metric, "value": value, "tf_frames": tf, "k_frames": k}


def test_paper_findings_on_known_rows():
    rows = [_row("ground_truth", "coherence", 0.9), _row("random_floor", "coherence", 0.2),
            _row("offline_prefix", "coherence", 0.7), _row("offline_masked", "coherence", 0.8)]
    for tf, v1, v5 in [(-50, 0.22, 0.20), (-10, 0.25, 0.21), (0, 0.26, 0.24), (10, 0.6, 0.65), (50, 0.7, 0.72)]:
        rows += [_row("streaming", "coherence", v1, tf, 1), _row("streaming", "coherence", v5, tf, 5)]
    rows += [_row("streaming", "fad", v, tf, 1) for tf, v in [(-50, 1.0), (0, 1.1), (50, 0.95)]]
    found = {(f["claim"], f["metric"]): f["reproduces"] for f in sweep_findings(rows)}
    assert found[("quality rises from t_f <= 0 to t_f > 0", "coherence")] is True
    assert found[("t_f <= 0 sits near the random-pairing floor", "coherence")] is True
    assert found[("the offline prefix decoder beats streaming at t_f <= 0", "coherence")] is True
    assert found[("for t_f < 0 a larger k hurts coherence", "coherence")] is True
    assert found[("the offline masked model beats every streaming model", "coherence")] is True
    assert found[("FAD stays roughly flat across t_f", "fad")] is True
    flipped = [dict(r, value=1 - r["value"]) if r["metric"] == "coherence" else r for r in rows]
    found = {(f["claim"], f["metric"]): f["reproduces"] for f in sweep_findings(flipped)}
    assert found[("quality rises from t_f <= 0 to t_f > 0", "coherence")] is False
    assert found[("for t_f < 0 a larger k hurts coherence", "coherence")] is False
    assert found[("the offline masked model beats every streaming model", "coherence")] is False


def test_sweep_targets_option_names_categories():
    """``sweep --targets Bass`` reaches load_clips as category ids (its draw is tested above); a category that
    is never a target is refused by argparse with its name."""
    import inspect

    from streamlib.cli import build_parser
    from streamlib.sweep import sweep_command
    from streamlib.tokens.categories import category_id

    args = build_parser().parse_args(["sweep", "--targets", "Bass", "--quick"])
    assert args.targets == [category_id("Bass")]
    assert "targets" in inspect.signature(sweep_command).parameters
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sweep", "--targets", "Vocal"])


class TemperatureStandIn(StandIn):
    """A stand-in accompanist that records the sampling temperature and guidance scale it is asked for."""

    temperatures: list
    scales: list

    def generator(self, category, temperature=1.0, top_k=200, **options):
        self.temperatures = getattr(self, "temperatures", []) + [temperature]
        self.scales = getattr(self, "scales", []) + [options.get("guidance", 1.0)]
        return super().generator(category, temperature, top_k, **options)


def test_the_control_adds_another_songs_input_and_the_paired_gap(codec, tmp_path):
    """``sweep --control``: each streaming model also plays every clip with another clip's input, and the paired
    gap (own minus another's, clip by clip) gets a row of its own; ``--temperature`` and ``--guidance`` reach the
    sampler and the model rows."""
    from streamlib.playalong import GAP_SUFFIX

    acc = TemperatureStandIn(StreamSpec(0, 1, window=50))
    entry = ModelEntry("tf0 k1", "streaming", None, 0, 1, accompanist=acc)
    rows = run_sweep([entry], make_clips(), codec, rms_scorer, tmp_path / "sweep.csv", progress=None, control=True,
                     temperature=0.5, guidance=3.0)
    table = {r["system"]: r for r in read_csv(tmp_path / "sweep.csv")}
    assert len(rows) == len(table) == 5
    assert table["tf0 k1 (another song's input)"]["kind"] == "random_input"
    gap = table["tf0 k1" + GAP_SUFFIX]
    assert gap["kind"] == "listening_gap" and gap["ci_low"] <= gap["value"] <= gap["ci_high"] and gap["n"] == 4
    assert set(acc.temperatures) == {0.5} and len(acc.temperatures) == 8  # 4 clips, own input and another's
    assert table["tf0 k1"]["temperature"] == 0.5 and table["ground truth"]["temperature"] is None
    assert set(acc.scales) == {3.0} and len(acc.scales) == 8
    assert table["tf0 k1"]["guidance"] == 3.0 and table["tf0 k1" + GAP_SUFFIX]["guidance"] == 3.0
    assert table["ground truth"]["guidance"] is None
