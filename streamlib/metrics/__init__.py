"""Chapter 9 (Evaluation): offline metrics — A.9 mixing, beat F1 (madmom), coherence (the book's COCOLA-style
model), FAD, pairing floor/ceiling, CIs, and ``MetricScorer`` (all of them for the sweep).

Heavy dependencies (madmom, pyloudnorm, torchaudio) load when the submodule is first used.
"""

from streamlib.metrics.coherence import CoherenceError, coherence, coherence_batch, coherence_matrix, load_coherence
from streamlib.metrics.fad import LOGMEL_NAME, embed, fad, frechet_distance, load_vggish, logmel_frames
from streamlib.metrics.mixing import loudness, mix_tracks, normalise
from streamlib.metrics.pairing import PairingError, bootstrap_ci, floor_and_ceiling, random_pairing
from streamlib.metrics.scorer import MetricScorer


def beat_f1(reference_audio, estimate_audio, sample_rate: int) -> float:
    """Beat F1 (see ``streamlib.metrics.beats.beat_f1``); imports madmom lazily."""
    from streamlib.metrics.beats import beat_f1 as _beat_f1

    return _beat_f1(reference_audio, estimate_audio, sample_rate)


__all__ = [
    "LOGMEL_NAME", "CoherenceError", "MetricScorer", "PairingError", "beat_f1", "bootstrap_ci", "coherence",
    "coherence_batch", "coherence_matrix", "embed", "fad", "floor_and_ceiling", "frechet_distance",
    "load_coherence", "load_vggish", "logmel_frames", "loudness", "mix_tracks", "normalise", "random_pairing",
]
