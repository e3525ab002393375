"""Chapter 9 (Evaluation): offline metrics — A.9 mixing, beat F1 (madmom), FAD, pairing floor/ceiling, CIs.

Heavy dependencies (madmom, pyloudnorm, torchaudio) load when the submodule is first used.
"""

from streamlib.metrics.fad import LOGMEL_NAME, embed, fad, frechet_distance, load_vggish, logmel_frames
from streamlib.metrics.mixing import loudness, mix_tracks, normalise
from streamlib.metrics.pairing import PairingError, bootstrap_ci, floor_and_ceiling, random_pairing


def beat_f1(reference_audio, estimate_audio, sample_rate: int) -> float:
    """Beat F1 (see ``streamlib.metrics.beats.beat_f1``); imports madmom lazily."""
    from streamlib.metrics.beats import beat_f1 as _beat_f1

    return _beat_f1(reference_audio, estimate_audio, sample_rate)


__all__ = [
    "LOGMEL_NAME", "PairingError", "beat_f1", "bootstrap_ci", "embed", "fad", "floor_and_ceiling",
    "frechet_distance", "load_vggish", "logmel_frames", "loudness", "mix_tracks", "normalise", "random_pairing",
]
