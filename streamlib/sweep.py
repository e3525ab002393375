"""The (t_f, k) sweep: stream the test clips through every model, score, tidy CSV, figures.

Chapter 10 ("Replicating the trade-offs"). Paper section 5: each model of the grid streams the
same held-out clips; every metric (beat F1, coherence with harmonic / percussive parts, FAD) is
reported with a bootstrap 95 % confidence interval, next to two reference rows on the same clips --
the ground-truth stem (ceiling) and the random-pairing floor (the target stem of another clip of
the same instrument class) -- and the offline prefix decoder. ``run_sweep`` writes one tidy CSV
(one row per system x metric); ``sweep_figure`` draws metric vs t_f, one line per k, with the
floor and the offline baseline as horizontal lines.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from streamlib import checkpoint
from streamlib.config import FRAME_RATE, to_seconds
from streamlib.metrics import MetricScorer
from streamlib.paths import REPO_ROOT
from streamlib.stream import ModelEntry, model_cards_by_hash, shipped_models

CSV_COLUMNS = (
    "system", "kind", "tf_frames", "k_frames", "tf_s", "k_s", "metric", "value", "ci_low", "ci_high",
    "n", "note", "clip_seconds", "x_real_time", "checkpoint", "weights_sha256", "temperature", "guidance",
)
KINDS = ("streaming", "offline_prefix", "ground_truth", "codec_ceiling", "random_floor", "random_input", "listening_gap")
DEFAULT_CSV = REPO_ROOT / "results" / "sweep_book.csv"


class SweepError(ValueError):
    """Nothing to sweep, or clips / models that do not fit together."""


# ----------------------------------------------------------------------------- clips


@dataclass
class Clip:
    """A test example: input stems and the true target stem, ``frames`` + lookahead long."""

    name: str
    category: int
    sample_rate: int
    input_stems: list[np.ndarray]
    target: np.ndarray
    frames: int  # evaluated output frames
    info: dict = field(default_factory=dict)

    @property
    def input_mix(self) -> np.ndarray:
        return np.sum(self.input_stems, axis=0).astype(np.float32)


def load_clips(n: int, seconds: float, lookahead_frames: int = 0, *, root: str | Path | None = None,
               split: str = "test", seed: int = 0, sample_rate: int = 16_000, policy: str = "paper",
               per_song: int = 1, targets: Sequence[int] | None = None) -> list[Clip]:
    """``n`` deterministic (input mixture, target) windows from the book set's test split.

    Each clip holds ``seconds`` of evaluated output plus ``lookahead_frames`` more input (paper A.7:
    a t_f > 0 model sees t_f more input than it outputs), chosen with the silence rule (A.3).
    ``per_song`` > 1 draws up to that many clips from each song (another target or start each time; in
    rounds over the songs) when the split has fewer songs than ``n``; the metrics' intervals then
    resample songs, not clips (``streamlib.metrics.pairing.bootstrap_ci``). ``targets``: category ids the
    target stem may have (default: any target category), e.g. the bass for a one-instrument accompanist.
    """
    from streamlib.data.sampling import SamplingError, draw_example, frame_hop
    from streamlib.data.slakh import SlakhDataset

    if root is None:
        from streamlib.data import book_dataset

        root = book_dataset()
    ds = SlakhDataset(root, split=split, sample_rate=sample_rate)
    frames = int(round(seconds * FRAME_RATE))
    window = frames + max(lookahead_frames, 0)
    rng = np.random.default_rng(seed)
    clips: list[Clip] = []
    order = rng.permutation(len(ds))
    seen: set[tuple[str, float, str]] = set()
    for t in np.tile(order, max(1, int(per_song))):
        if len(clips) == n:
            break
        track = ds[int(t)]
        try:
            ex = draw_example(rng, [s.category for s in track.stems], [track.active(s.name) for s in track.stems],
                              window, policy, track=int(t), allowed=targets)
        except SamplingError:
            continue
        hop = frame_hop(track.rate)
        start, dur = ex.start / FRAME_RATE, window / FRAME_RATE
        if (track.name, start, track.stems[ex.target].name) in seen:
            continue
        seen.add((track.name, start, track.stems[ex.target].name))

        def load(i: int) -> np.ndarray:
            return track.load_stem(track.stems[i].name, start, dur)[: window * hop]

        clips.append(Clip(
            name=f"{track.name}@{start:g}s", category=ex.category, sample_rate=track.rate,
            input_stems=[load(i) for i in ex.inputs], target=load(ex.target), frames=frames,
            info={"track": track.name, "start_s": start, "inputs": [track.stems[i].name for i in ex.inputs],
                  "target": track.stems[ex.target].name, **song_truth(track, ex.target)},
        ))
    if len(clips) < n:
        raise SweepError(f"only {len(clips)} usable test clips of {seconds} s in {root} ({split}), wanted {n}")
    return clips


def song_truth(track, target: int) -> dict:
    """What the song knows about itself, for the play-along metrics (chapter 9): its chords and beats in
    song time (the synthesised set's ``metadata.yaml`` -> ``synth``; absent for Slakh2100 without
    annotations) and whether the target stem is pitched (harmonic agreement is undefined for drums)."""
    from streamlib.data.compose import UNPITCHED_ROLES
    from streamlib.tokens.categories import CATEGORIES

    stem = track.stems[target]
    part = (track.metadata.get("stems", {}).get(stem.name) or {}).get("part")
    unpitched = stem.is_drum or part in UNPITCHED_ROLES or CATEGORIES[stem.category] in (
        "Percussive", "Sound Effects", "Synth Effects")
    synth = track.metadata.get("synth") or {}
    out: dict = {"pitched": not unpitched}
    if synth.get("chords"):
        out["chords"] = [[float(a), float(b), str(label)] for a, b, label in synth["chords"]]
    if synth.get("beats"):
        out["beats"] = [float(b) for b in synth["beats"]]
    return out


def random_pairing(clips: Sequence[Clip], seed: int = 0) -> list[np.ndarray]:
    """The floor: for each clip, the target stem of another clip of the same category (another clip
    of any category when none shares it)."""
    rng = np.random.default_rng(seed)
    out = []
    for i, c in enumerate(clips):
        same = [j for j, d in enumerate(clips) if j != i and d.category == c.category]
        pool = same or [j for j in range(len(clips)) if j != i]
        if not pool:
            raise SweepError("the random-pairing floor needs at least two clips")
        out.append(clips[int(rng.choice(pool))].target[: c.frames * _hop(c)])
    return out


def _hop(clip: Clip) -> int:
    return clip.sample_rate // FRAME_RATE


# ----------------------------------------------------------------------------- generation


def generate(entry: ModelEntry, clips: Sequence[Clip], codec=None, *, seed: int = 0,
             prompt_seconds: float = 0.0, paired: bool = True, temperature: float = 1.0, guidance: float = 1.0,
             progress: bool = False) -> tuple[list[np.ndarray], float]:
    """Run one system on every clip: streaming models through ``stream.stream``, the offline prefix
    decoder and the masked model (chapter 12) on the whole input; ``codec`` None: the codec the model's card
    names (``codec_for``).
    ``paired=False`` feeds each clip the input of the next clip (paper A.2's "random input" control).
    ``temperature``: the autoregressive models' sampling temperature (top-k 200 as in the paper; the masked
    model keeps its own sampling plan); ``guidance``: their classifier-free guidance scale (1: none; chapter 7,
    for models trained with input dropout). ``progress``: a progress bar over the clips.
    Returns (generated stems, mean speed in x real time)."""
    from tqdm.auto import tqdm

    from streamlib.codec import codec_for
    from streamlib.stream import stream

    acc = entry.load()
    codec = codec_for(acc) if codec is None else codec
    if clips and codec.sample_rate != clips[0].sample_rate:
        raise SweepError(f"{entry.label}: its codec runs at {codec.sample_rate} Hz, "
                         f"the clips at {clips[0].sample_rate} Hz")
    out, speeds = [], []
    desc = entry.label if paired else f"{entry.label} (another song's input)"
    for i, clip in enumerate(tqdm(clips, desc=desc, unit="clip", disable=not progress)):
        src = clip if paired else clips[(i + 1) % len(clips)]
        if entry.kind in ("offline_prefix", "offline_masked"):
            t0 = time.perf_counter()
            window = src.input_mix[: clip.frames * _hop(clip)]
            audio = (_offline(acc, codec, window, clip.category, seed + i, temperature, guidance)
                     if entry.kind == "offline_prefix"
                     else _masked(acc, codec, window, clip.category, seed + i))
            speeds.append(to_seconds(clip.frames) / (time.perf_counter() - t0))
        else:
            res = stream(acc, codec, src.input_mix, clip.category, seed=seed + i, output_frames=clip.frames,
                         prompt_audio=clip.target if prompt_seconds else None, prompt_seconds=prompt_seconds,
                         temperature=temperature, generator_kwargs={"guidance": guidance} if guidance != 1 else None)
            audio = res.accompaniment
            speeds.append(res.x_real_time)
        out.append(audio[: clip.frames * _hop(clip)])
    return out, float(np.mean(speeds))


def _offline(acc, codec, input_audio: np.ndarray, category: int, seed: int, temperature: float = 1.0,
             guidance: float = 1.0) -> np.ndarray:
    """The offline prefix decoder: the whole input first, then every output frame."""
    torch.manual_seed(seed)
    from streamlib.playalong import input_chroma_for

    codes = codec.encode(torch.from_numpy(input_audio)[None, None], n_q=acc.cfg.n_q)[0]
    gen = acc.generator(category, temperature=temperature, guidance=guidance)
    gen.feed_input(codes, input_chroma_for(acc, input_audio, codec.sample_rate, codes.shape[-1]))
    out = gen.generate(codes.shape[-1])
    return codec.decode(out[None]).reshape(-1).cpu().numpy()


def _masked(model, codec, input_audio: np.ndarray, category: int, seed: int) -> np.ndarray:
    """The masked model: the whole input window, then parallel unmasking with its own sampling plan and
    guidance scale (``generate_masked``)."""
    from streamlib.model.masked import generate_masked

    model.check_codec(codec)
    codes = codec.encode(torch.from_numpy(input_audio)[None, None], n_q=model.n_q)[0]
    out = generate_masked(model, codes, category, seed=seed)
    return codec.decode(out[None]).reshape(-1).cpu().numpy()


# ----------------------------------------------------------------------------- scoring


def score(system: str, kind: str, generated: Sequence[np.ndarray], clips: Sequence[Clip], scorer,
          *, entry: ModelEntry | None = None, x_real_time: float | None = None, seed: int = 0,
          values: dict | None = None, temperature: float | None = None,
          guidance: float | None = None) -> list[dict]:
    """Tidy rows (one per metric) for one system's generated stems on ``clips`` (``values``: their per-clip
    scores, ``scorer.clip_values``, when already computed)."""
    return result_rows(system, kind, scorer(generated, clips, seed=seed, values=values), clips, entry=entry,
                       x_real_time=x_real_time, temperature=temperature, guidance=guidance)


def result_rows(system: str, kind: str, results: dict, clips: Sequence[Clip], *, entry: ModelEntry | None = None,
                x_real_time: float | None = None, temperature: float | None = None,
                guidance: float | None = None) -> list[dict]:
    """Tidy rows (one per metric) of a scorer's ``{metric: (value, low, high, n, note)}``; ``temperature`` and
    ``guidance``: the sampling temperature and guidance scale of a model's rows (blank for the reference rows)."""
    base = {
        "system": system, "kind": kind,
        "tf_frames": entry.tf if entry and entry.tf is not None else "",
        "k_frames": entry.k if entry and entry.k is not None else "",
        "tf_s": to_seconds(entry.tf) if entry and entry.tf is not None else "",
        "k_s": to_seconds(entry.k) if entry and entry.k is not None else "",
        "clip_seconds": to_seconds(clips[0].frames),
        "x_real_time": "" if x_real_time is None else round(x_real_time, 3),
        "checkpoint": _relative(entry.path) if entry and entry.path else "",
        "weights_sha256": checkpoint.load_card(entry.path)["weights_sha256"] if entry and entry.path else "",
        "temperature": "" if temperature is None else temperature,
        "guidance": "" if guidance is None else guidance,
    }
    return [{**base, "metric": metric, "value": value, "ci_low": low, "ci_high": high, "n": n, "note": note}
            for metric, (value, low, high, n, note) in results.items()]


def _relative(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def write_csv(rows: Sequence[dict], path: str | Path) -> Path:
    """The sweep's rows as a CSV of ``CSV_COLUMNS`` (floats to 6 significant digits), written atomically."""
    return checkpoint.write_csv(path, CSV_COLUMNS, ({c: _fmt(r.get(c, "")) for c in CSV_COLUMNS} for r in rows))


def swept_cards(rows: Sequence[dict]) -> dict[str, dict | None]:
    """The card of the weights each model row of a sweep was made from, by checkpoint: found by the row's
    ``weights_sha256`` among the shipped and the archived cards (``streamlib.stream.model_cards_by_hash``; None if
    neither has it), so rows of a model replaced since are not mistaken for today's."""
    cards = model_cards_by_hash()  # read once, not once per row
    return {r["checkpoint"]: cards.get(r["weights_sha256"]) for r in rows if r.get("weights_sha256")}


def _fmt(v):
    return f"{v:.6g}" if isinstance(v, float) else v


def read_csv(path: str | Path = DEFAULT_CSV) -> list[dict]:
    """Rows of a sweep CSV with numbers parsed (empty cells -> None; a weights hash stays text even when it
    reads as a number)."""
    def parse(key: str, v: str):
        if v == "":
            return None
        if key == "weights_sha256":
            return v
        try:
            return int(v)
        except ValueError:
            try:
                return float(v)
            except ValueError:
                return v

    with Path(path).open() as f:
        return [{k: parse(k, v) for k, v in row.items()} for row in csv.DictReader(f)]


def run_sweep(models: Sequence[ModelEntry], clips: Sequence[Clip], codec, scorer, out: str | Path | None = None,
              *, seed: int = 0, progress: Callable[[str], None] | None = print, control: bool = False,
              temperature: float = 1.0, guidance: float = 1.0, progress_bars: bool = False) -> list[dict]:
    """Every model on every clip, plus the ground-truth and random-pairing rows; CSV if ``out``. ``codec``
    None: each model streams through the codec its card names (a shipped set may mix codecs).

    ``control``: every streaming model also streams each clip with another clip's input (paper A.2; kind
    ``random_input``, system "<label> (another song's input)"): a model that listens scores lower with it; and
    the paired listening gap, own input minus another song's clip by clip (kind ``listening_gap``, system
    "<label> (own input minus another song's)", an interval over songs). ``temperature``: the models' sampling
    temperature (1: the paper's) and ``guidance`` their classifier-free guidance scale (1: none), both written in
    each model row (the masked model keeps its own)."""
    from streamlib.playalong import GAP_KIND, GAP_SUFFIX

    if not clips:
        raise SweepError("no clips to sweep")
    hop = _hop(clips[0])
    rows = score("ground truth", "ground_truth", [c.target[: c.frames * hop] for c in clips], clips, scorer, seed=seed)
    rows += score("random pairing", "random_floor", random_pairing(clips, seed), clips, scorer, seed=seed)
    for entry in models:
        t0 = time.perf_counter()
        temp = None if entry.kind == "offline_masked" else temperature
        scale = None if entry.kind == "offline_masked" else guidance
        sampling = {"temperature": temperature, "guidance": guidance}
        generated, speed = generate(entry, clips, codec, seed=seed, progress=progress_bars, **sampling)
        own = scorer.clip_values(generated, clips)
        rows += score(entry.label, entry.kind, generated, clips, scorer, entry=entry, x_real_time=speed, seed=seed,
                      values=own, temperature=temp, guidance=scale)
        if control and entry.kind == "streaming":
            generated, _ = generate(entry, clips, codec, seed=seed, paired=False, progress=progress_bars, **sampling)
            other = scorer.clip_values(generated, clips)
            rows += score(f"{entry.label} (another song's input)", "random_input", generated, clips, scorer,
                          entry=entry, seed=seed, values=other, temperature=temp, guidance=scale)
            rows += result_rows(entry.label + GAP_SUFFIX, GAP_KIND, scorer.paired_gap(own, other, clips, seed=seed),
                                clips, entry=entry, temperature=temp, guidance=scale)
        if progress:
            progress(f"{entry.label}: {len(clips)} clips in {time.perf_counter() - t0:.1f} s ({speed:.2f}x real time)")
    if out is not None:
        write_csv(rows, out)
    return rows


# ----------------------------------------------------------------------------- figures


def sweep_figure(rows: Sequence[dict], metric: str, title: str | None = None):
    """Paper-style figure: ``metric`` vs t_f (s), one line per k with CI error bars; the random-pairing
    floor, the ground truth and the offline systems (prefix decoder, masked model) as horizontal lines."""
    import plotly.graph_objects as go

    mine = [r for r in rows if r["metric"] == metric]
    if not mine:
        raise SweepError(f"no rows for metric {metric!r}")
    fig = go.Figure()
    ks = sorted({r["k_s"] for r in mine if r["kind"] == "streaming"})
    for k in ks:
        pts = sorted((r for r in mine if r["kind"] == "streaming" and r["k_s"] == k), key=lambda r: r["tf_s"])
        fig.add_trace(go.Scatter(
            x=[r["tf_s"] for r in pts], y=[r["value"] for r in pts], mode="lines+markers", name=f"k = {k:g} s",
            error_y=dict(type="data", symmetric=False,
                         array=[_nz(r["ci_high"], r["value"]) - r["value"] for r in pts],
                         arrayminus=[r["value"] - _nz(r["ci_low"], r["value"]) for r in pts]),
        ))
    styles = {"random_floor": ("dot", "grey"), "offline_prefix": ("dash", "black"),
              "offline_masked": ("dashdot", "purple"), "ground_truth": ("solid", "green")}
    for r in mine:
        if r["kind"] in styles:
            dash, colour = styles[r["kind"]]
            fig.add_hline(y=r["value"], line_dash=dash, line_color=colour,
                          annotation_text=r["system"], annotation_position="top left")
    note = next((r["note"] for r in mine if r.get("note")), "")
    fig.update_layout(
        title=title or f"{metric} vs future visibility" + (f" ({note})" if note else ""),
        xaxis_title="future visibility t_f (s)", yaxis_title=metric, height=420,
    )
    return fig


def _nz(v, default: float = 0.0) -> float:
    return v if isinstance(v, (int, float)) else default


# ----------------------------------------------------------------------------- the paper's findings


def _streaming(rows, metric):
    return [r for r in rows if r["metric"] == metric and r["kind"] == "streaming"]


def _one(rows, metric, kind):
    return next((r for r in rows if r["metric"] == metric and r["kind"] == kind), None)


def paper_findings(rows: Sequence[dict], higher_better: dict[str, bool] | None = None) -> list[dict]:
    """Check the paper's qualitative findings (REFERENCE section 8) on sweep rows.

    Each finding: ``claim``, ``metric``, ``ours`` (the numbers it rests on), ``reproduces`` (True,
    False, or None when the grid lacks the needed points). The tests are simple and stated:
    rise = mean over t_f > 0 above mean over t_f <= 0 (smallest k having both); near floor = every
    t_f <= 0 model within a quarter of the floor-to-ground-truth gap of the floor; larger k hurts
    for t_f < 0 = the larger k scores worse on average over the t_f < 0 both have; offline beats
    streaming = the offline prefix decoder above every t_f <= 0 model; the masked ceiling = the offline
    masked model (chapter 12) above every streaming model; FAD flat = the spread of
    streaming FAD within 30 % of its mean.
    """
    better = {"coherence": True, "beat_f1": True, "fad": False, **(higher_better or {})}
    out = []

    def sign(metric):
        return 1.0 if better.get(metric, True) else -1.0

    for metric in ("coherence", "beat_f1", "harmonic_agreement"):
        rs = _streaming(rows, metric)
        if not rs:
            continue
        ks = sorted({r["k_frames"] for r in rs if any(x["tf_frames"] > 0 for x in rs if x["k_frames"] == r["k_frames"])
                     and any(x["tf_frames"] <= 0 for x in rs if x["k_frames"] == r["k_frames"])})
        if ks:
            sel = [r for r in rs if r["k_frames"] == ks[0]]
            pos = float(np.mean([r["value"] for r in sel if r["tf_frames"] > 0]))
            neg = float(np.mean([r["value"] for r in sel if r["tf_frames"] <= 0]))
            out.append({"claim": "quality rises from t_f <= 0 to t_f > 0", "metric": metric,
                        "ours": f"k={to_seconds(ks[0]):g}s: mean t_f>0 {pos:.3f} vs t_f<=0 {neg:.3f}",
                        "reproduces": pos > neg})
        else:
            out.append({"claim": "quality rises from t_f <= 0 to t_f > 0", "metric": metric,
                        "ours": "grid lacks t_f > 0 and t_f <= 0 at one k", "reproduces": None})
        floor, truth = _one(rows, metric, "random_floor"), _one(rows, metric, "ground_truth")
        nonpos = [r for r in rs if r["tf_frames"] <= 0]
        if floor and truth and nonpos:
            gap = abs(truth["value"] - floor["value"])
            worst = max(abs(r["value"] - floor["value"]) for r in nonpos)
            out.append({"claim": "t_f <= 0 sits near the random-pairing floor", "metric": metric,
                        "ours": f"floor {floor['value']:.3f}, ground truth {truth['value']:.3f}, t_f<=0 models "
                                f"{min(r['value'] for r in nonpos):.3f}..{max(r['value'] for r in nonpos):.3f}",
                        "reproduces": worst <= 0.25 * gap})
        offline = _one(rows, metric, "offline_prefix")
        if offline and nonpos:
            best = max(sign(metric) * r["value"] for r in nonpos) * sign(metric)
            out.append({"claim": "the offline prefix decoder beats streaming at t_f <= 0", "metric": metric,
                        "ours": f"offline {offline['value']:.3f} vs best t_f<=0 {best:.3f}",
                        "reproduces": sign(metric) * offline["value"] > sign(metric) * best})
        masked = _one(rows, metric, "offline_masked")
        if masked and rs:
            best = max(sign(metric) * r["value"] for r in rs) * sign(metric)
            out.append({"claim": "the offline masked model beats every streaming model", "metric": metric,
                        "ours": f"masked {masked['value']:.3f} vs best streaming {best:.3f}",
                        "reproduces": sign(metric) * masked["value"] > sign(metric) * best})
    rs = _streaming(rows, "coherence")
    ks = sorted({r["k_frames"] for r in rs})
    if len(ks) >= 2:
        diffs = []
        for small, large in zip(ks, ks[1:]):
            for tf in {r["tf_frames"] for r in rs if r["tf_frames"] < 0}:
                a = [r["value"] for r in rs if r["k_frames"] == small and r["tf_frames"] == tf]
                b = [r["value"] for r in rs if r["k_frames"] == large and r["tf_frames"] == tf]
                if a and b:
                    diffs.append(b[0] - a[0])
        out.append({"claim": "for t_f < 0 a larger k hurts coherence", "metric": "coherence",
                    "ours": f"mean change with larger k: {np.mean(diffs):+.3f} over {len(diffs)} pairs" if diffs
                    else "no t_f < 0 shared by two k", "reproduces": bool(np.mean(diffs) < 0) if diffs else None})
    fad = _streaming(rows, "fad")
    if len(fad) >= 2:
        v = np.array([r["value"] for r in fad])
        spread = float((v.max() - v.min()) / max(abs(v.mean()), 1e-12))
        out.append({"claim": "FAD stays roughly flat across t_f", "metric": "fad",
                    "ours": f"streaming FAD {v.min():.3g}..{v.max():.3g} (spread {spread:.0%} of the mean)",
                    "reproduces": spread <= 0.3})
    return out


# ----------------------------------------------------------------------------- the command


def select_models(checkpoints: str | Path | None = None, only: str | None = None) -> list[ModelEntry]:
    """The shipped systems (``only``: a regular expression on checkpoint names), or a clear error if none."""
    import re

    models = shipped_models(checkpoints)
    if only:
        models = [m for m in models if re.search(only, m.path.stem)]
    if not models:
        raise SweepError(f"no accompanist checkpoints in {checkpoints or 'checkpoints/models'} (book_tf*_k*.safetensors)"
                         + (f" matching {only!r}" if only else ""))
    return models


def clip_lookahead(models: Sequence[ModelEntry]) -> int:
    """Input frames a clip needs beyond its output: the largest t_f plus the delay pattern's D (paper A.7)."""
    from streamlib.tokens.delay import added_latency_frames

    delay = added_latency_frames(models[0].load().n_q)
    return max([m.tf + delay for m in models if m.tf is not None] + [0])


def sweep_command(out: str | Path, *, checkpoints: str | Path | None = None, clips: int = 8, seconds: float = 10.0,
                  seed: int = 0, codec_path: str | Path | None = None, figures: bool = True,
                  only: str | None = None, control: bool = False, per_song: int = 1,
                  targets: Sequence[int] | None = None, dataset: str | Path | None = None,
                  temperature: float = 1.0, guidance: float = 1.0,
                  progress_bars: bool = False) -> tuple[list[dict], list[Path]]:
    """What ``python -m streamlib sweep`` does: models, clips, scores, CSV and HTML figures. ``targets``:
    category ids the clips' target stems may have (one-instrument accompanists, chapter 7 section 7.10);
    ``dataset``: the set whose test split the clips come from (default the book set)."""
    from dataclasses import replace

    from streamlib.codec import codec_for

    models = select_models(checkpoints, only)
    models[0] = replace(models[0], accompanist=models[0].load())  # loaded once: for the codec, the clips and the run
    first = codec_for(models[0].load(), codec_path)  # the clips are cut at its rate (generate checks the others)
    codec = first if codec_path else None  # None: each model streams through the codec its card names
    test = load_clips(clips, seconds, clip_lookahead(models), root=dataset, seed=seed, sample_rate=first.sample_rate,
                      per_song=per_song, targets=targets)
    rows = run_sweep(models, test, codec, MetricScorer(), out, seed=seed, control=control, temperature=temperature,
                     guidance=guidance, progress_bars=progress_bars)
    written = []
    if figures:
        for metric in sorted({r["metric"] for r in rows}):
            path = Path(out).with_name(f"{Path(out).stem}_{metric}.html")
            sweep_figure(rows, metric).write_html(path, include_plotlyjs="cdn")
            written.append(path)
    return rows, written
