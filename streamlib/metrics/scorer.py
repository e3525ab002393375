"""Chapter 9 (Evaluation): ``MetricScorer``, every offline metric of the sweep for one system's outputs.

Called as ``scorer(generated, clips, seed=0)`` (``streamlib.sweep.score``) with one generated stem per
``Clip``; returns ``{metric: (value, ci_low, ci_high, n, note)}`` for

- ``beat_f1``: madmom beats of the input mixture (reference, cached per clip) vs those of the stem;
- ``coherence``, ``coherence_harmonic``, ``coherence_percussive``: the book's COCOLA-style model
  (``streamlib.metrics.coherence``), input mixture vs generated stem;
- ``fad``: the generated set vs the clips' true target stems (``logmel64-16k`` unless told otherwise);
- ``harmonic_agreement`` (beyond the paper; ``streamlib.metrics.harmony``): share of the stem's chroma
  energy on the tones of the song's current chord, over clips whose song knows its chords and whose
  target is pitched (a silent stem has no chroma and is left out; the note counts them);
- ``beat_f1_song``: madmom beats of the stem vs the song's true beats (not the input mix's tracked ones),
  over clips whose song knows its beats;
- ``active_share``: the share of the clip's frames in which the stem sounds (A-weighted level above
  -60 dB, the silence rule of chapter 2): a diagnostic, not a quality, that shows a generator falling
  silent (the true stems of the sampled clips sound in at least half of theirs).

The last two need ``clip.info`` from ``streamlib.sweep.song_truth`` and are skipped when no clip has it.

Per-clip metrics are means over clips with a percentile bootstrap 95 % interval over songs (clips of one
song resampled together). FAD is one number
for the set; its interval is a bootstrap over clips (the same resampled clips on both sides). Every
signal is cut to the clip's evaluated length (``clip.frames`` 50 Hz frames, without the lookahead).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from streamlib.config import FRAME_RATE
from streamlib.metrics.coherence import CoherenceModel, coherence, load_coherence
from streamlib.metrics.fad import LOGMEL_NAME, embed, frechet_distance
from streamlib.metrics.harmony import harmonic_agreement
from streamlib.metrics.pairing import bootstrap_ci

if TYPE_CHECKING:
    from streamlib.sweep import Clip

MetricResult = tuple[float, float, float, int, str]
SWEEP_METRICS = ("beat_f1", "coherence", "coherence_harmonic", "coherence_percussive", "fad", "harmonic_agreement",
                 "beat_f1_song")  # the default: what the sweep reports
METRICS = SWEEP_METRICS + ("active_share",)  # every metric the scorer knows (active_share: a diagnostic, on request)
PLAY_ALONG = ("harmonic_agreement", "beat_f1_song")  # the metrics that need the song's chords and beats


class MetricScorer:
    """Beat F1, coherence (+ harmonic / percussive) and FAD with 95 % CIs; see the module docstring.

    ``coherence_model`` (or ``coherence_path``) replaces the shipped coherence checkpoint;
    ``fad_embedder`` + ``fad_embedding`` replace the log-mel FAD embedding (e.g. ``load_vggish(path)``).
    Reference beats are cached per (clip name, evaluated length), so scoring many systems on the same
    clips runs madmom on each input mixture once.
    """

    def __init__(self, coherence_model: CoherenceModel | None = None, coherence_path: str | Path | None = None,
                 fad_embedder: Callable | None = None, fad_embedding: str = LOGMEL_NAME, n_boot: int = 1000,
                 fad_boot: int = 200, metrics: Sequence[str] = SWEEP_METRICS):
        if fad_embedder is not None and fad_embedding == LOGMEL_NAME:
            raise ValueError("name the custom FAD embedding via fad_embedding")
        unknown = sorted(set(metrics) - set(METRICS))
        if unknown or not metrics:
            raise ValueError(f"unknown metrics {unknown}; choose from {METRICS}")
        self.metrics = tuple(m for m in METRICS if m in metrics)
        self._coherence, self._coherence_path = coherence_model, coherence_path
        self.fad_embedder, self.fad_embedding = fad_embedder, fad_embedding
        self.n_boot, self.fad_boot = n_boot, fad_boot
        self._reference_beats: dict[tuple[str, int], np.ndarray] = {}

    @property
    def coherence_model(self) -> CoherenceModel:
        """The coherence model, loaded on first use (raises ``CoherenceError`` when the checkpoint is missing)."""
        if self._coherence is None:
            self._coherence = load_coherence(self._coherence_path)
        return self._coherence

    def reference_beats(self, name: str, mix: np.ndarray, sample_rate: int) -> np.ndarray:
        """madmom beats of an input mixture, computed once per (name, length)."""
        from streamlib.metrics.beats import track_beats

        key = (name, len(mix))
        if key not in self._reference_beats:
            self._reference_beats[key] = track_beats(mix, sample_rate)
        return self._reference_beats[key]

    def clip_values(self, generated: Sequence[np.ndarray], clips: Sequence[Clip]) -> dict[str, dict[int, float]]:
        """Every per-clip metric's value per clip: ``{metric: {clip index: value}}``. A clip a metric cannot
        score is absent from its dict (no chords or beats known, an unpitched target, a silent stem for
        harmony); FAD is a set statistic and is not here. ``__call__`` aggregates these; ``paired_gap``
        compares two systems clip by clip."""
        from streamlib.metrics.beats import beat_f1_from_beats, track_beats

        if len(generated) != len(clips) or not clips:
            raise ValueError(f"need one generated stem per clip, got {len(generated)} for {len(clips)} clips")
        wanted = set(self.metrics)
        coherent = wanted & {"coherence", "coherence_harmonic", "coherence_percussive"}
        model = self.coherence_model if coherent else None
        values: dict[str, dict[int, float]] = {m: {} for m in self.metrics if m != "fad"}
        for i, (audio, clip) in enumerate(zip(generated, clips)):
            sr = clip.sample_rate
            n = min(len(audio), clip.frames * sr // FRAME_RATE)
            mix, stem = clip.input_mix[:n], np.asarray(audio, dtype=np.float32)[:n]
            stem_beats = track_beats(stem, sr) if wanted & {"beat_f1", "beat_f1_song"} else None
            if "beat_f1" in wanted:
                values["beat_f1"][i] = beat_f1_from_beats(self.reference_beats(clip.name, mix, sr), stem_beats)
            if "beat_f1_song" in wanted and clip.info.get("beats"):
                start = float(clip.info["start_s"])
                truth = np.asarray(clip.info["beats"], dtype=float) - start
                values["beat_f1_song"][i] = beat_f1_from_beats(truth[(truth >= 0) & (truth < n / sr)], stem_beats)
            if "harmonic_agreement" in wanted and clip.info.get("chords") and clip.info.get("pitched"):
                try:
                    values["harmonic_agreement"][i] = harmonic_agreement(stem, clip.info["chords"], sr,
                                                                         float(clip.info["start_s"]))
                except ValueError:  # no chroma energy: a silent stem plays no chord
                    pass
            if "active_share" in wanted:
                from streamlib.data.sampling import active_frames

                values["active_share"][i] = float(np.mean(active_frames(stem, sr))) if len(stem) else 0.0
            if coherent:
                c = coherence(mix, stem, sr, model)
                values["coherence"][i] = c["coherence"]
                values["coherence_harmonic"][i] = c["harmonic"]
                values["coherence_percussive"][i] = c["percussive"]
        return values

    def __call__(self, generated: Sequence[np.ndarray], clips: Sequence[Clip], seed: int = 0,
                 values: dict[str, dict[int, float]] | None = None) -> dict[str, MetricResult]:
        """``values``: this scorer's ``clip_values(generated, clips)`` when the caller has them already (it also
        wants ``paired_gap``): the per-clip metrics are then not computed again."""
        values = self.clip_values(generated, clips) if values is None else values
        model = self.coherence_model if set(self.metrics) & {"coherence", "coherence_harmonic",
                                                             "coherence_percussive"} else None
        scorable = [i for i, c in enumerate(clips) if c.info.get("chords") and c.info.get("pitched")]
        silent = sum(i not in values.get("harmonic_agreement", {}) for i in scorable)
        gen_cut, ref_cut = [], []
        for audio, clip in zip(generated, clips):
            n = min(len(audio), clip.frames * clip.sample_rate // FRAME_RATE)
            gen_cut.append(np.asarray(audio, dtype=np.float32)[:n])
            ref_cut.append(np.asarray(clip.target, dtype=np.float32)[:n])
        card = model.card.get("weights_sha256", "unsaved weights") if model is not None else ""
        coh_note = (f"in-house COCOLA-style model ({card}), not the "
                    "official COCOLA; mean over 5 s chunks (2.5 s hop); mean over clips, bootstrap 95 % CI over songs")
        notes = {
            "beat_f1": "madmom RNN+DBN beats, F-measure +-70 ms, reference = input-mix beats; mean over clips, "
                       "bootstrap 95 % CI over songs",
            "coherence": coh_note,
            "coherence_harmonic": coh_note.replace("model", "model, percussive channel zeroed", 1),
            "coherence_percussive": coh_note.replace("model", "model, harmonic channel zeroed", 1),
            "beat_f1_song": "madmom RNN+DBN beats of the stem vs the song's true beats, F-measure +-70 ms; "
                            "mean over clips whose song knows its beats, bootstrap 95 % CI over songs",
            "active_share": "share of frames above -60 dB (A-weighted, chapter 2's silence rule); mean over clips, "
                            "bootstrap 95 % CI over songs",
            "harmonic_agreement": "share of chroma energy (55 Hz-2 kHz) on the current chord's tones; mean over "
                                  "clips with a pitched target and known chords, bootstrap 95 % CI over songs"
                                  + (f"; {silent} silent stem(s) left out" if silent else ""),
        }
        out: dict[str, MetricResult] = {}
        for name, per_clip in values.items():
            if not per_clip:
                continue  # no clip carries what this metric needs (e.g. Slakh2100 without chord labels)
            songs = [str(clips[i].info.get("track", clips[i].name)) for i in per_clip]
            low, high = bootstrap_ci(list(per_clip.values()), n_boot=self.n_boot, seed=seed, groups=songs)
            out[name] = (float(np.mean(list(per_clip.values()))), low, high, len(per_clip), notes[name])
        if "fad" in self.metrics:
            out["fad"] = self._fad(gen_cut, ref_cut, clips[0].sample_rate, seed)
        return out

    def paired_gap(self, a: dict[str, dict[int, float]], b: dict[str, dict[int, float]], clips: Sequence[Clip],
                   seed: int = 0) -> dict[str, MetricResult]:
        """Clip by clip, ``a`` minus ``b`` (two systems' ``clip_values`` on ``clips``) on every per-clip metric,
        over the clips both score: the mean difference and its 95 % cluster-bootstrap interval over songs. With a
        model's stems from its own input and from another song's (same clips, prompt and sampling seed) this is
        how much it *listens*, measured in what it plays (chapter 7); pairing removes the clip-to-clip spread
        that two separate intervals keep."""
        out: dict[str, MetricResult] = {}
        for name in a:
            both = [i for i in a[name] if i in b[name]]
            if not both:
                continue
            diff = [a[name][i] - b[name][i] for i in both]
            songs = [str(clips[i].info.get("track", clips[i].name)) for i in both]
            low, high = bootstrap_ci(diff, n_boot=self.n_boot, seed=seed, groups=songs)
            out[name] = (float(np.mean(diff)), low, high, len(both),
                         "paired difference per clip (same clips and sampling seeds), mean over the clips both "
                         "score, bootstrap 95 % CI over songs")
        return out

    def _fad(self, generated: list[np.ndarray], reference: list[np.ndarray], sr: int, seed: int) -> MetricResult:
        """FAD of the set and a bootstrap-over-clips interval (widened to hold the value if it falls outside)."""
        eg = embed(generated, sr, self.fad_embedder)
        er = embed(reference, sr, self.fad_embedder)
        value = frechet_distance(np.concatenate(eg), np.concatenate(er))
        k = len(eg)
        rng = np.random.default_rng(seed)
        boots = []
        for _ in range(self.fad_boot):
            idx = rng.integers(0, k, size=k)
            boots.append(frechet_distance(np.concatenate([eg[i] for i in idx]), np.concatenate([er[i] for i in idx])))
        low, high = (float(q) for q in np.quantile(boots, [0.025, 0.975]))
        note = (f"FAD, embedding {self.fad_embedding}, N = {k} clips per set ({sum(map(len, eg))} / "
                f"{sum(map(len, er))} frames); compare only at equal N; 95 % CI: bootstrap over clips "
                f"({self.fad_boot} resamples)")
        if not low <= value <= high:
            note += "; widened to include the full-set value (FAD is biased by resampled duplicates)"
            low, high = min(low, value), max(high, value)
        return value, low, high, k, note
