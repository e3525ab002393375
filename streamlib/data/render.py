"""Chapter 2 (Multitrack data): rendering MIDI notes to audio with FluidSynth, in tune.

The synthesised set is rendered by FluidSynth (``libfluidsynth``, the reference SoundFont
synthesizer, through the ``pyfluidsynth`` binding) with the General MIDI SoundFont that ships with
pretty_midi (``TimGM6mb.sf2``). Chapter 2 measures the tuning: every General MIDI program the
composer can pick lands within a few cents of its MIDI note (``tests/test_data_render.py``).
An earlier renderer (symusic 0.5.8) put many programs of this SoundFont a semitone or more off,
which left the book's songs out of tune: measure a renderer before building on it.

Rendering is offline and deterministic: a fresh synthesizer per part (no state leaks between
parts), reverb and chorus off (dry stems), events applied at exact sample positions, and float
output (no 16-bit dither).

FluidSynth is a system library: ``apt install libfluidsynth3`` (Debian/Ubuntu), ``brew install
fluid-synth`` (macOS); the README's set-up and ``.ci/run`` install it.
"""

from __future__ import annotations

import ctypes
from functools import lru_cache
from pathlib import Path

import numpy as np

DRUM_CHANNEL = 9
DRUM_BANK = 128


class RendererError(RuntimeError):
    """FluidSynth is missing or failed."""


def soundfont_path() -> Path:
    """pretty_midi's bundled General MIDI SoundFont."""
    import pretty_midi

    path = Path(pretty_midi.__path__[0]) / "TimGM6mb.sf2"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; reinstall pretty_midi (its wheel ships TimGM6mb.sf2)")
    return path


@lru_cache(maxsize=1)
def _fluidsynth():
    """The ``pyfluidsynth`` module and a float writer bound to the same library."""
    try:
        import fluidsynth
    except ImportError as err:  # pyfluidsynth raises ImportError when libfluidsynth is not found
        raise RendererError(
            f"FluidSynth is not available ({err}). Install the system library: "
            "'apt install libfluidsynth3' (Debian/Ubuntu) or 'brew install fluid-synth' (macOS), "
            "and the binding: pip install pyfluidsynth"
        ) from None
    c_void_p, c_int = ctypes.c_void_p, ctypes.c_int
    write_float = fluidsynth.cfunc(
        "fluid_synth_write_float", c_int,
        ("synth", c_void_p, 1), ("len", c_int, 1),
        ("lout", c_void_p, 1), ("loff", c_int, 1), ("lincr", c_int, 1),
        ("rout", c_void_p, 1), ("roff", c_int, 1), ("rincr", c_int, 1),
    )
    return fluidsynth, write_float


def fluidsynth_version() -> str:
    """Version of the loaded libfluidsynth (for cards and the chapter)."""
    fluidsynth, _ = _fluidsynth()
    major, minor, micro = ctypes.c_int(), ctypes.c_int(), ctypes.c_int()
    fluidsynth._fl.fluid_version(ctypes.byref(major), ctypes.byref(minor), ctypes.byref(micro))
    return f"{major.value}.{minor.value}.{micro.value}"


def render_notes(
    notes: list[tuple[float, float, int, int]],
    program: int,
    is_drum: bool,
    sample_rate: int,
    n_samples: int,
    soundfont: str | Path | None = None,
) -> np.ndarray:
    """Mono float32 audio, exactly ``n_samples`` long, of ``notes`` played by one GM instrument.

    ``notes`` are ``(start_s, end_s, midi_pitch, velocity)``; ``program`` is the 0-based GM program
    (ignored for drums, which use the SoundFont's standard kit on channel 10).
    """
    fluidsynth, write_float = _fluidsynth()
    synth = fluidsynth.Synth(gain=0.5, samplerate=float(sample_rate))
    try:
        synth.setting("synth.reverb.active", 0)
        synth.setting("synth.chorus.active", 0)
        sfid = synth.sfload(str(soundfont or soundfont_path()))
        if sfid < 0:
            raise RendererError(f"FluidSynth could not load the SoundFont {soundfont or soundfont_path()}")
        channel = DRUM_CHANNEL if is_drum else 0
        synth.program_select(channel, sfid, DRUM_BANK if is_drum else 0, 0 if is_drum else int(program))

        events: list[tuple[int, int, int, int]] = []  # (sample, 0 = off / 1 = on, pitch, velocity)
        for start, end, pitch, velocity in notes:
            on = int(round(start * sample_rate))
            off = max(on + 1, int(round(end * sample_rate)))
            events.append((on, 1, int(pitch), int(velocity)))
            events.append((off, 0, int(pitch), 0))
        events.sort()  # at equal times note-offs come first, so a repeated key re-strikes cleanly

        left = np.zeros(n_samples, dtype=np.float32)
        right = np.zeros(n_samples, dtype=np.float32)
        pos = 0

        def advance(to: int) -> None:
            nonlocal pos
            to = min(to, n_samples)
            if to > pos:
                write_float(synth.synth, to - pos, left.ctypes.data, pos, 1, right.ctypes.data, pos, 1)
                pos = to

        for at, kind, pitch, velocity in events:
            if at >= n_samples:
                break
            advance(at)
            if kind:
                synth.noteon(channel, pitch, velocity)
            else:
                synth.noteoff(channel, pitch)
        advance(n_samples)
    finally:
        synth.delete()
    return 0.5 * (left + right)


__all__ = ["RendererError", "fluidsynth_version", "render_notes", "soundfont_path"]
