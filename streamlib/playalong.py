"""Does the accompanist play along? Free-running generation scored against the song (chapters 7 and 9).

A loss says how well a model predicts the true stem with the true history; it does not say whether the
model, left to itself, plays the song's chords on the song's beats. This module generates each held-out
clip's stem from its input mixture and scores it with the play-along metrics of
``streamlib.metrics.scorer`` (harmonic agreement with the song's chords, beat F1 against the song's
beats), next to three references on the same clips:

* the ground-truth stem (the ceiling), and the same stem through the codec (``codec_round_trip``: what a
  perfect accompanist speaking this codec would play, the ceiling a model can reach);
* the random-pairing floor (another clip's true stem of the same instrument class);
* the same model fed **another song's input** (paper A.2's control): a model that listens scores
  lower with it; one that ignores its input scores the same. The **listening gap** (kind ``listening_gap``)
  is that difference taken clip by clip, with its own interval: paired, it resolves a smaller gap than two
  separate intervals do.

``prompt_frames`` > 0 asks a sharper question (a *continuation*): the clip's true stem is teacher-forced for
its first frames, and only what the model plays after them is scored, against the same window of every
reference (``continuation_clips``). The prompt tells the model the key and the note it is on, so a model that
keeps the key from its own history scores above the floor here even if it ignores its input; whether it
*listens* shows in the control, which gets the same prompt and another song's input.

``render`` generates offline with the model's own causal layout (every input frame known up front,
the generator sees only what t_f allows), which is what the streaming engine produces without its
clock; ``streamlib.sweep`` streams through the engine when speed matters too. ``verdict`` checks the
bar of the issue "Accompanists that play along" on the rows.
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import numpy as np
import torch

from streamlib.config import FRAME_RATE

PLAY_ALONG_METRICS = ("harmonic_agreement", "beat_f1_song")
CONTROL_KIND = "random_input"
GAP_KIND = "listening_gap"  # own input minus another song's, clip by clip (``MetricScorer.paired_gap``)
GAP_SUFFIX = " (own input minus another song's)"  # its rows' system: the model's label + this


def input_chroma_for(acc, input_audio: np.ndarray, sample_rate: int, frames: int) -> torch.Tensor | None:
    """The causal chroma ``[12, frames]`` of ``input_audio`` for a model with the chroma input path
    (``cfg.input_chroma``, ``streamlib.input_chroma``); None for every other model."""
    if not getattr(acc.cfg, "input_chroma", False):  # (test doubles carry a bare cfg)
        return None
    from streamlib.input_chroma import causal_chroma

    c = causal_chroma(input_audio, sample_rate)[:, :frames]
    return torch.from_numpy(np.pad(c, ((0, 0), (0, frames - c.shape[1]))))


def render(acc, codec, input_audio: np.ndarray, category: int, frames: int, *, seed: int = 0,
           temperature: float = 1.0, top_k: int = 200, guidance: float = 1.0,
           prompt_audio: np.ndarray | None = None, prompt_frames: int = 0) -> np.ndarray:
    """Generate ``frames`` output frames for ``input_audio`` (mono, the codec's rate) and decode them.

    The input is encoded once; the generator reads it through the model's visibility rule, so output
    frame f depends on input frames ``<= f + t_f - 1`` only (chapter 5), as when streamed.
    ``guidance``: classifier-free guidance scale (``Generator``; 1 = none). ``prompt_frames`` > 0: the first
    frames are ``prompt_audio`` (the true stem) through the codec, teacher-forced; the model plays the rest.
    """
    if not 0 <= prompt_frames < frames:
        raise ValueError(f"prompt_frames must be in [0, {frames}), got {prompt_frames}")
    if prompt_frames and (prompt_audio is None or len(prompt_audio) < prompt_frames * codec.hop):
        raise ValueError(f"a prompt of {prompt_frames} frames needs {prompt_frames * codec.hop} samples of the true stem")
    torch.manual_seed(seed)
    with torch.inference_mode():
        x = torch.as_tensor(np.asarray(input_audio, dtype=np.float32))[None, None]
        codes = codec.encode(x, n_q=acc.cfg.n_q)[0]
        gen = acc.generator(category, temperature=temperature, top_k=top_k, guidance=guidance)
        gen.feed_input(codes, input_chroma_for(acc, input_audio, codec.sample_rate, codes.shape[-1]))
        parts = []
        if prompt_frames:
            y = torch.as_tensor(np.asarray(prompt_audio[: prompt_frames * codec.hop], dtype=np.float32))[None, None]
            parts.append(codec.encode(y, n_q=acc.cfg.n_q)[0][:, :prompt_frames].to(codes.device))
            gen.feed_output(parts[0])
        parts.append(gen.generate(int(frames) - prompt_frames))
        return codec.decode(torch.cat(parts, dim=1)[None]).reshape(-1).cpu().numpy()


def generate_clips(acc, clips, codec, *, seed: int = 0, paired: bool = True, guidance: float = 1.0,
                   temperature: float = 1.0, prompt_frames: int = 0,
                   progress: Callable[[int], None] | None = None) -> list[np.ndarray]:
    """One stem per clip; ``paired=False`` feeds clip i the input of clip i + 1 (another song, as a rule).

    The input is cut to what the model may see (``clip.frames`` plus its lookahead t_f + D): a control
    clip's input is as long as the clip's own. ``guidance`` and ``temperature`` go to ``render``; so does
    ``prompt_frames`` of the clip's own true stem (the control gets the same prompt, another song's input)."""
    out = []
    hop = clips[0].sample_rate // FRAME_RATE
    for i, clip in enumerate(clips):
        src = clip if paired else clips[(i + 1) % len(clips)]
        audio = render(acc, codec, src.input_mix, clip.category, clip.frames, seed=seed + i, guidance=guidance,
                       temperature=temperature, prompt_audio=clip.target, prompt_frames=prompt_frames)
        out.append(audio[: clip.frames * hop])
        if progress:
            progress(i)
    return out


def continuation_clips(clips, prompt_frames: int) -> list:
    """The clips from ``prompt_frames`` on (stems cut, song time moved on): what a continuation is scored
    against. Stems rendered for the whole clip are cut the same way with ``audio[prompt_frames * hop:]``."""
    from dataclasses import replace

    from streamlib.sweep import _hop

    if not clips:
        return []
    if not 0 <= prompt_frames < min(c.frames for c in clips):
        raise ValueError(f"prompt_frames must be in [0, {min(c.frames for c in clips)}), got {prompt_frames}")
    cut = prompt_frames * _hop(clips[0])
    return [replace(c, input_stems=[a[cut:] for a in c.input_stems], target=c.target[cut:],
                    frames=c.frames - prompt_frames,
                    info={**c.info, "start_s": float(c.info.get("start_s", 0.0)) + prompt_frames / FRAME_RATE})
            for c in clips]


def codec_round_trip(clips, codec, n_q: int) -> list[np.ndarray]:
    """Each clip's true stem encoded and decoded from ``n_q`` levels: the stems of a perfect accompanist that
    speaks ``codec`` (kind ``codec_ceiling`` in ``play_along``; chapter 3 measures the same on held-out songs)."""
    from streamlib.sweep import _hop

    hop = _hop(clips[0])
    out = []
    with torch.inference_mode():
        for clip in clips:
            x = torch.as_tensor(np.asarray(clip.target[: clip.frames * hop], dtype=np.float32))[None, None]
            out.append(codec.decode(codec.encode(x, n_q=n_q)).reshape(-1).cpu().numpy()[: clip.frames * hop])
    return out


def example_panels(models: dict[str, object], clip, target: str, seconds: float = 5.0, *,
                   seed: int = 0, guidance: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """Look and listen (chapters 7 and 9): the input mixture (every stem of an example clip but ``target``), the
    true ``target`` stem and each model's stem generated from that input, all ``seconds`` long.

    ``clip``: a ``streamlib.data.examples.ExampleClip``; ``models``: label -> accompanist, each decoded by its
    own codec (``codec_for``), with the whole clip as input so that a lookahead has input to read;
    ``guidance``: label -> classifier-free guidance scale (default 1, none, for a label not in it).
    """
    from streamlib.codec import codec_for

    if target not in clip.stems:
        raise KeyError(f"{target!r} is not a stem of {clip.name} ({sorted(clip.stems)})")
    n = int(seconds * clip.sample_rate)
    if n > len(clip.stems[target]):
        raise ValueError(f"{clip.name} is {len(clip.stems[target]) / clip.sample_rate:g} s long, not {seconds:g} s")
    full_input = np.sum([a for s, a in clip.stems.items() if s != target], axis=0).astype(np.float32)
    panels = {"input mixture": full_input[:n], f"true stem ({target})": clip.stems[target][:n]}
    for label, acc in models.items():
        codec = codec_for(acc)
        if codec.sample_rate != clip.sample_rate:
            raise ValueError(f"{label}: its codec runs at {codec.sample_rate} Hz, the clip at {clip.sample_rate} Hz")
        audio = render(acc, codec, full_input, clip.categories[target], int(seconds * FRAME_RATE), seed=seed,
                       guidance=(guidance or {}).get(label, 1.0))
        panels[label] = audio[:n]
    return panels


def panel_scores(panels: dict[str, np.ndarray], clip) -> dict[str, float]:
    """Harmonic agreement of every panel but the input with the clip's chords (``streamlib.metrics.harmony``)."""
    from streamlib.metrics.harmony import harmonic_agreement

    return {name: harmonic_agreement(audio, clip.info["chords"], clip.sample_rate)
            for name, audio in panels.items() if name != "input mixture"}


def play_along(models: dict[str, object], clips, codec, scorer, *, seed: int = 0, control: bool = True,
               sampling: dict[str, dict] | None = None, prompt_frames: int = 0,
               log: Callable[[str], None] | None = print) -> list[dict]:
    """Rows in the sweep's CSV layout: ground truth, the ground truth through ``codec`` at the models' levels
    (kind ``codec_ceiling``), random pairing, every model with its own input and, with ``control``, with another
    song's input (kind ``random_input``). ``models``: label -> accompanist; ``sampling``: label ->
    ``generate_clips`` settings (``guidance``, ``temperature``; default plain sampling). ``prompt_frames`` > 0:
    continuations (module docstring); every row is scored on the clips after the prompt, and each row's
    ``note`` says so."""
    from streamlib.stream import ModelEntry
    from streamlib.sweep import _hop, random_pairing, result_rows, score

    hop = _hop(clips[0])
    after = continuation_clips(clips, prompt_frames)
    cut = prompt_frames * hop

    def noted(out: list[dict]) -> list[dict]:
        if prompt_frames:
            for r in out:
                r["note"] = f"continuation after a {prompt_frames / FRAME_RATE:g} s true-stem prompt; " + r["note"]
        return out

    def scored(system: str, kind: str, stems: list[np.ndarray]) -> list[dict]:
        return noted(score(system, kind, [a[cut:] for a in stems], after, scorer, seed=seed))

    rows = scored("ground truth", "ground_truth", [c.target[: c.frames * hop] for c in clips])
    n_q = max((acc.cfg.n_q for acc in models.values()), default=4)
    rows += scored(f"ground truth through the codec ({n_q} levels)", "codec_ceiling", codec_round_trip(clips, codec, n_q))
    rows += scored("random pairing", "random_floor", random_pairing(clips, seed))
    for label, acc in models.items():
        spec = getattr(acc, "spec", None)
        entry = ModelEntry(label, "offline_prefix" if acc.offline else "streaming", None,
                           None if spec is None else spec.tf, None if spec is None else spec.k, acc)
        values = {}  # per-clip scores of each stem set, computed once: for its rows and for the paired gap
        options = (sampling or {}).get(label, {})
        temperature, guidance = options.get("temperature", 1.0), options.get("guidance", 1.0)
        for paired in (True, False) if control else (True,):
            t0 = time.perf_counter()
            stems = [a[cut:] for a in generate_clips(acc, clips, codec, seed=seed, paired=paired,
                                                     prompt_frames=prompt_frames, **options)]
            name = label if paired else f"{label} (another song's input)"
            kind = entry.kind if paired else CONTROL_KIND
            values[paired] = scorer.clip_values(stems, after)
            rows += noted(result_rows(name, kind, scorer(stems, after, seed=seed, values=values[paired]), after,
                                      entry=entry, temperature=temperature, guidance=guidance))
            if log:
                log(f"{name}: {len(clips)} clips in {time.perf_counter() - t0:.0f} s")
        if control:
            gap = scorer.paired_gap(values[True], values[False], after, seed=seed)
            rows += noted(result_rows(label + GAP_SUFFIX, GAP_KIND, gap, after, entry=entry, temperature=temperature,
                                      guidance=guidance))
    return rows


def _ci(rows, system: str, metric: str) -> dict | None:
    return next((r for r in rows if r["system"] == system and r["metric"] == metric), None)


def verdict(rows: Sequence[dict], metrics: Sequence[str] = PLAY_ALONG_METRICS) -> list[dict]:
    """The play-along bar, per model and metric: above the random-pairing floor with non-overlapping
    95 % intervals, and above the same model fed another song's input (non-overlapping intervals); and
    ``listens``: the paired listening gap's interval above 0 (None without a gap row).

    Returns ``{system, metric, value, floor, control, above_floor, above_control, gap, listens}`` rows
    (``control`` / ``gap`` None when the rows have no control for that model).
    """
    out = []
    for metric in metrics:
        floor = _ci(rows, "random pairing", metric)
        if floor is None:
            continue
        for r in rows:
            if r["metric"] != metric or r["kind"] not in ("streaming", "offline_prefix"):
                continue
            ctrl = _ci(rows, f"{r['system']} (another song's input)", metric)
            gap = _ci(rows, r["system"] + GAP_SUFFIX, metric)
            out.append({
                "system": r["system"], "metric": metric, "value": r["value"], "ci_low": r["ci_low"],
                "ci_high": r["ci_high"], "floor": floor["value"], "floor_ci_high": floor["ci_high"],
                "control": None if ctrl is None else ctrl["value"],
                "above_floor": r["ci_low"] > floor["ci_high"],
                "above_control": None if ctrl is None else r["ci_low"] > ctrl["ci_high"],
                "gap": None if gap is None else gap["value"],
                "listens": None if gap is None else gap["ci_low"] > 0,
            })
    return out


def play_along_bar(rows: Sequence[dict], metric: str = "harmonic_agreement",
                   beat_metric: str = "beat_f1_song") -> list[dict]:
    """The play-along bar of a sweep (chapter 10; the rows of ``sweep --control``), as stated checks:

    1. every streaming model at t_f >= 0 scores above the random-pairing floor with non-overlapping 95 %
       intervals, on ``metric`` (harmony) and on ``beat_metric`` (beats);
    2. at each k, the largest t_f scores above the smallest (t_f < 0) on ``metric``, non-overlapping intervals;
    3. the true-vs-another-song's-input control separates at every t_f >= 0: the paired listening gap's interval
       on ``metric`` lies above 0.

    Returns ``{check, systems, numbers, holds}`` rows; ``holds`` is None where the rows lack what a check needs
    (no t_f >= 0 model, no t_f < 0 model at a k, no control rows)."""
    def interval(r: dict) -> str:
        return f"{r['value']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"

    streaming = [r for r in rows if r["kind"] == "streaming" and r["metric"] == metric]
    listening = [r for r in streaming if r["tf_frames"] >= 0]
    out = []
    for m in (metric, beat_metric):
        floor = _ci(rows, "random pairing", m)
        for r in listening:
            mine = _ci(rows, r["system"], m)
            if floor is None or mine is None:
                out.append({"check": f"above the floor on {m}", "systems": r["system"], "numbers": "", "holds": None})
                continue
            out.append({"check": f"above the floor on {m}", "systems": r["system"],
                        "numbers": f"{interval(mine)} vs floor {interval(floor)}",
                        "holds": mine["ci_low"] > floor["ci_high"]})
    for k in sorted({r["k_frames"] for r in streaming}):
        at_k = sorted((r for r in streaming if r["k_frames"] == k), key=lambda r: r["tf_frames"])
        low, high = at_k[0], at_k[-1]
        if low["tf_frames"] >= 0 or high is low:
            out.append({"check": f"largest t_f above t_f < 0 on {metric}", "systems": f"k={k}", "numbers": "",
                        "holds": None})
            continue
        out.append({"check": f"largest t_f above t_f < 0 on {metric}",
                    "systems": f"{high['system']} vs {low['system']}",
                    "numbers": f"{interval(high)} vs {interval(low)}", "holds": high["ci_low"] > low["ci_high"]})
    for r in listening:
        gap = _ci(rows, r["system"] + GAP_SUFFIX, metric)
        out.append({"check": f"own input above another song's on {metric} (paired gap)", "systems": r["system"],
                    "numbers": "" if gap is None else interval(gap),
                    "holds": None if gap is None else gap["ci_low"] > 0})
    return out


def stem_report(generated: np.ndarray, truth: np.ndarray, sample_rate: int, *, chords: list | None = None,
                beats: Sequence[float] | None = None) -> dict:
    """Play-along numbers of one generated stem next to the true one (clip time): harmonic agreement with
    ``chords`` and its chance level (the share of pitch classes the chords hold: a stem with flat chroma
    scores that), and beat F1 against ``beats``. Keys are absent where the clip lacks the annotation."""
    from streamlib.metrics.beats import beat_f1_from_beats, track_beats
    from streamlib.metrics.harmony import harmonic_agreement
    from streamlib.pitch import chord_frames

    out: dict = {}
    if chords:
        n = int(np.ceil(len(truth) * FRAME_RATE / sample_rate))
        _, tones = chord_frames(chords, n)
        has = tones.any(axis=0)
        out["chance"] = float(tones[:, has].sum(axis=0).mean() / 12) if has.any() else None
        for name, audio in (("generated", generated), ("truth", truth)):
            try:
                out[f"harmony_{name}"] = harmonic_agreement(audio, chords, sample_rate)
            except ValueError:  # silent: no chroma
                out[f"harmony_{name}"] = None
    if beats is not None and len(beats):
        ref = np.asarray(beats, dtype=float)
        for name, audio in (("generated", generated), ("truth", truth)):
            out[f"beats_{name}"] = beat_f1_from_beats(ref, track_beats(audio, sample_rate))
    return out


def verdict_line(report: dict, instrument: str) -> str:
    """One line for ``demo``: the numbers and whether the stem plays along. The rule (stated, not tuned):
    harmony counts when the generated stem is at least half-way from the chance level to the true stem,
    beats when its beat F1 is at least half the true stem's."""
    parts, ok = [], []
    if "chance" in report and report.get("harmony_truth") is not None:
        g, t, c = report.get("harmony_generated"), report["harmony_truth"], report["chance"]
        parts.append(f"on the chord tones {'silent' if g is None else f'{g:.2f}'} (true stem {t:.2f}, chance {c:.2f})")
        ok.append(g is not None and g >= c + 0.5 * (t - c))
    if "beats_truth" in report:
        g, t = report["beats_generated"], report["beats_truth"]
        parts.append(f"beat F1 against the song {g:.2f} (true stem {t:.2f})")
        ok.append(g >= 0.5 * t)
    if not parts:
        return f"{instrument}: no chords or beats known for this clip, no verdict"
    word = "plays along" if all(ok) else "partly plays along" if any(ok) else "does not play along yet"
    return f"{instrument} {word}: " + "; ".join(parts)


__all__ = ["CONTROL_KIND", "GAP_KIND", "GAP_SUFFIX", "PLAY_ALONG_METRICS", "continuation_clips", "example_panels", "generate_clips", "input_chroma_for", "panel_scores", "play_along", "play_along_bar", "render", "stem_report", "verdict",
           "verdict_line"]
