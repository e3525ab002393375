"""Chapter 9 (Evaluation): the paper's A.9 loudness pipeline that turns stems into a listening mix.

Steps (pyloudnorm, ITU-R BS.1770 integrated loudness):
1. every input track and the predicted/target track is normalised to ``STEM_LUFS`` (-18 LUFS), so the
   input tracks sit at equal loudness;
2. the predicted/target track is raised by ``TARGET_BOOST_DB`` (+5 dB) relative to each input track;
3. the sum is normalised to ``MIX_LUFS`` (-18 LUFS) and, if its peak exceeds ``PEAK_CAP``, scaled down
   so the peak equals the cap (peak capping wins over the loudness target).

Silent stems: a stem whose loudness is -inf (digital silence or quieter than BS.1770's gate) cannot be
normalised; it is kept silent (contributes nothing) instead of being amplified. If every track is silent
the mix is all zeros. Clips shorter than one 400 ms BS.1770 block raise ``AudioError``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pyloudnorm as pyln

from streamlib.audio import AudioError, db_to_gain, validate

STEM_LUFS = -18.0
MIX_LUFS = -18.0
TARGET_BOOST_DB = 5.0
PEAK_CAP = 0.99


def loudness(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness in LUFS (-inf for silence)."""
    audio = np.asarray(audio, dtype=np.float64)
    validate(audio, name="track")
    if len(audio) < int(0.4 * sample_rate):
        raise AudioError(f"track of {len(audio)} samples is shorter than one 400 ms BS.1770 block")
    return float(pyln.Meter(sample_rate).integrated_loudness(audio))


def normalise(audio: np.ndarray, sample_rate: int, lufs: float = STEM_LUFS) -> np.ndarray:
    """Scale ``audio`` to ``lufs``; a silent track (loudness -inf) is returned as zeros."""
    level = loudness(audio, sample_rate)
    if not np.isfinite(level):
        return np.zeros(len(audio), dtype=np.float64)
    return np.asarray(audio, dtype=np.float64) * db_to_gain(lufs - level)


def mix_tracks(
    input_tracks: Sequence[np.ndarray],
    target: np.ndarray,
    sample_rate: int,
    *,
    boost_db: float = TARGET_BOOST_DB,
    peak_cap: float = PEAK_CAP,
) -> np.ndarray:
    """A.9 mix of equal-loudness input tracks with the predicted/target track ``boost_db`` louder (float32)."""
    if not input_tracks:
        raise AudioError("mix_tracks needs at least one input track")
    n = len(target)
    if any(len(t) != n for t in input_tracks):
        raise AudioError(f"all tracks must have the same length; target {n}, inputs {[len(t) for t in input_tracks]}")
    mix = sum(normalise(t, sample_rate) for t in input_tracks)
    mix = mix + normalise(target, sample_rate) * db_to_gain(boost_db)
    if not np.any(mix):
        return np.zeros(n, dtype=np.float32)
    mix = normalise(mix, sample_rate, MIX_LUFS)
    peak = float(np.abs(mix).max())
    if peak > peak_cap:
        mix = mix * (peak_cap / peak)
    return mix.astype(np.float32)
