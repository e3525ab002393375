"""Chapter 9 (Evaluation): ``MetricScorer``, every offline metric of the sweep for one system's outputs.

Called as ``scorer(generated, clips, seed=0)`` (``streamlib.sweep.score``) with one generated stem per
``Clip``; returns ``{metric: (value, ci_low, ci_high, n, note)}`` for

- ``beat_f1``: madmom beats of the input mixture (reference, cached per clip) vs those of the stem;
- ``coherence``, ``coherence_harmonic``, ``coherence_percussive``: the book's COCOLA-style model
  (``streamlib.metrics.coherence``), input mixture vs generated stem;
- ``fad``: the generated set vs the clips' true target stems (``logmel64-16k`` unless told otherwise).

Per-clip metrics are means over clips with a percentile bootstrap 95 % interval. FAD is one number
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
from streamlib.metrics.pairing import bootstrap_ci

if TYPE_CHECKING:
    from streamlib.sweep import Clip

MetricResult = tuple[float, float, float, int, str]
METRICS = ("beat_f1", "coherence", "coherence_harmonic", "coherence_percussive", "fad")


class MetricScorer:
    """Beat F1, coherence (+ harmonic / percussive) and FAD with 95 % CIs; see the module docstring.

    ``coherence_model`` (or ``coherence_path``) replaces the shipped coherence checkpoint;
    ``fad_embedder`` + ``fad_embedding`` replace the log-mel FAD embedding (e.g. ``load_vggish(path)``).
    Reference beats are cached per (clip name, evaluated length), so scoring many systems on the same
    clips runs madmom on each input mixture once.
    """

    def __init__(self, coherence_model: CoherenceModel | None = None, coherence_path: str | Path | None = None,
                 fad_embedder: Callable | None = None, fad_embedding: str = LOGMEL_NAME, n_boot: int = 1000,
                 fad_boot: int = 200):
        if fad_embedder is not None and fad_embedding == LOGMEL_NAME:
            raise ValueError("name the custom FAD embedding via fad_embedding")
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

    def __call__(self, generated: Sequence[np.ndarray], clips: Sequence[Clip],
                 seed: int = 0) -> dict[str, MetricResult]:
        from streamlib.metrics.beats import beat_f1_from_beats, track_beats

        if len(generated) != len(clips) or not clips:
            raise ValueError(f"need one generated stem per clip, got {len(generated)} for {len(clips)} clips")
        model = self.coherence_model
        per_clip: dict[str, list[float]] = {m: [] for m in METRICS if m != "fad"}
        gen_cut, ref_cut = [], []
        for audio, clip in zip(generated, clips):
            sr = clip.sample_rate
            n = min(len(audio), clip.frames * sr // FRAME_RATE)
            mix, stem = clip.input_mix[:n], np.asarray(audio, dtype=np.float32)[:n]
            ref = self.reference_beats(clip.name, mix, sr)
            per_clip["beat_f1"].append(beat_f1_from_beats(ref, track_beats(stem, sr)))
            c = coherence(mix, stem, sr, model)
            per_clip["coherence"].append(c["coherence"])
            per_clip["coherence_harmonic"].append(c["harmonic"])
            per_clip["coherence_percussive"].append(c["percussive"])
            gen_cut.append(stem)
            ref_cut.append(np.asarray(clip.target, dtype=np.float32)[:n])
        k = len(clips)
        coh_note = (f"in-house COCOLA-style model ({model.card.get('weights_sha256', 'unsaved weights')}), not the "
                    "official COCOLA; mean over 5 s chunks (2.5 s hop); mean over clips, bootstrap 95 % CI")
        notes = {
            "beat_f1": "madmom RNN+DBN beats, F-measure +-70 ms, reference = input-mix beats; mean over clips, "
                       "bootstrap 95 % CI",
            "coherence": coh_note,
            "coherence_harmonic": coh_note.replace("model", "model, percussive channel zeroed", 1),
            "coherence_percussive": coh_note.replace("model", "model, harmonic channel zeroed", 1),
        }
        out: dict[str, MetricResult] = {}
        for name, values in per_clip.items():
            low, high = bootstrap_ci(values, n_boot=self.n_boot, seed=seed)
            out[name] = (float(np.mean(values)), low, high, k, notes[name])
        out["fad"] = self._fad(gen_cut, ref_cut, clips[0].sample_rate, seed)
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
