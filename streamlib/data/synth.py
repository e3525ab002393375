"""Chapter 2 (Multitrack data): a synthesised data set in the exact Slakh2100 layout.

``synthesize(out, tracks, seed)`` composes songs (``streamlib.data.compose``), renders every part
separately with the General MIDI SoundFont that ships with pretty_midi (``TimGM6mb.sf2``, rendered
in tune by FluidSynth: ``streamlib.data.render``), and writes, like Slakh2100::

    OUT/{train,validation,test}/TrackNNNNN/
        mix.flac            sum of the stems (mono, 16-bit FLAC)
        all_src.mid         every part in one MIDI file
        metadata.yaml       Slakh fields + extra ``synth`` fields (below)
        MIDI/SNN.mid        one MIDI file per stem
        stems/SNN.flac      one audio file per stem
    OUT/synth.json          the recipe and track counts, written when the set is complete

Levels follow Slakh: each stem is brought to a loudness (LUFS) that depends on its part, the mix is
the sum of the stems, and one overall gain puts the mix peak at ``target_peak`` dBFS; the stems carry
the same gain, so ``mix == sum(stems)`` up to 16-bit rounding.

Extra metadata (not in Slakh2100): ``synth: {version, renderer, seed, index, sample_rate, duration,
n_samples, tempo, time_signature, key, modulation, sections, beats, downbeats, chords}`` with times
in seconds, ``chords`` as ``[start, end, "Root:quality"]`` (Harte / mir_eval labels), ``sections``
as ``[start, end, name]`` and ``modulation`` as ``{time, key, semitones}`` or null; each stem also
has ``part`` (drums, bass, comp, lead, pad, arp, counter, perc, fx).

Determinism: track ``i`` is drawn from ``numpy.random.default_rng([seed, i])`` alone, YAML is dumped
with sorted keys and rounded floats, and FLAC/MIDI writers store no time stamps, so the same seed
gives byte-identical files and a resumed run equals an uninterrupted one. Each track is written to a
temporary folder and renamed when complete; finished tracks are skipped. A folder holding tracks of
another ``SYNTH_VERSION`` (an older composer or renderer) is refused with a clear error rather than
completed with a mixture of both.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

from streamlib.config import ConfigError
from streamlib.data.compose import TPQ, Part, Song, compose_song, longest_song_seconds, shortest_song_seconds
from streamlib.data.render import fluidsynth_version, render_notes

SPLITS = ("train", "validation", "test")
TARGET_PEAK_DB = -1.0
# Loudness (LUFS) each part is brought to before mixing.
PART_LOUDNESS = {"drums": -16.0, "bass": -18.0, "comp": -20.0, "lead": -18.0, "pad": -24.0, "arp": -23.0,
                 "counter": -23.0, "perc": -25.0, "fx": -28.0}
TAIL_SECONDS = 1.0  # release tail after the last bar
MAX_RENDER_PEAK = 20.0  # a rendered part louder than this (before levelling) is a renderer blow-up
MIN_SAMPLE_RATE = 16_000  # the codecs run at 16 kHz or more
SYNTH_VERSION = 2  # 1: symusic renderer (out of tune); 2: FluidSynth, chord substitutions, modulations


@dataclass(frozen=True)
class Recipe:
    """Everything that determines a synthesised set."""

    tracks: int = 240
    seed: int = 0
    version: int = SYNTH_VERSION
    sample_rate: int = 16_000
    min_seconds: float = 30.0
    max_seconds: float = 60.0
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)

    def split_of(self, index: int) -> str:
        """Split of track ``index`` (1-based): the first 80 % train, then validation, then test (like Slakh)."""
        n_val = int(round(self.tracks * self.split_fractions[1]))
        n_test = int(round(self.tracks * self.split_fractions[2]))
        n_train = self.tracks - n_val - n_test
        if index <= n_train:
            return "train"
        return "validation" if index <= n_train + n_val else "test"


BOOK_RECIPE = Recipe()
QUICK_RECIPE = Recipe(tracks=20, seed=0, min_seconds=15.0, max_seconds=25.0)


# ----------------------------------------------------------------------------- MIDI and audio


def _score(song: Song, parts: list[Part]):
    from symusic import Note, Score, Tempo, TimeSignature, Track

    score = Score(TPQ)
    score.tempos.append(Tempo(0, song.tempo))
    score.time_signatures.append(TimeSignature(0, song.beats_per_bar, 4))
    for p in parts:
        track = Track(name=p.role, program=p.program, is_drum=p.is_drum)
        for s, d, pitch, v in p.notes:
            track.notes.append(Note(s, d, pitch, v))
        score.tracks.append(track)
    return score


def render_part(song: Song, part: Part, sample_rate: int, n_samples: int) -> np.ndarray:
    """Mono float32 audio of one part, exactly ``n_samples`` long (FluidSynth, a fresh synthesizer)."""
    notes = [(song.seconds(s), song.seconds(s + d), pitch, v) for s, d, pitch, v in part.notes]
    return render_notes(notes, part.program, part.is_drum, sample_rate, n_samples)


def _loudness(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness (LUFS, pyloudnorm). Above 16 kHz it is measured on every ``round(sr/16k)``-th
    sample: the K-weighting is flat above 2 kHz, so folding the top octave down changes it by ~0.01 dB
    and the levelling of a 44.1 kHz set costs what it does at 16 kHz."""
    import pyloudnorm

    if not np.any(audio):
        return float("-inf")
    step = max(1, round(sample_rate / 16_000))
    with np.errstate(divide="ignore"):
        return float(pyloudnorm.Meter(sample_rate / step).integrated_loudness(audio[::step].astype(np.float64)))


def _gm_name(program: int, is_drum: bool) -> str:
    import pretty_midi

    return "Drums" if is_drum else pretty_midi.program_to_instrument_name(program)


def _family(program: int, is_drum: bool) -> str:
    from streamlib.tokens.categories import CATEGORIES, program_to_category

    return "Drums" if is_drum else CATEGORIES[program_to_category(program, is_drum)]


# ----------------------------------------------------------------------------- one track


def write_track(folder: Path, recipe: Recipe, index: int) -> dict:
    """Compose, render and write track ``index`` into ``folder`` (which must not exist). Returns a summary."""
    rng = np.random.default_rng([recipe.seed, index])
    song = compose_song(rng, recipe.min_seconds - TAIL_SECONDS, recipe.max_seconds - TAIL_SECONDS)
    sr = recipe.sample_rate
    n = int(np.ceil((song.duration + TAIL_SECONDS) * sr))
    stems, parts, loudness = [], [], []
    for part in song.parts:
        audio = render_part(song, part, sr, n)
        if not np.isfinite(audio).all() or np.abs(audio).max() > MAX_RENDER_PEAK:
            continue  # a rare numerical blow-up of the SoundFont renderer: leave the part out
        parts.append(part)
        loud = _loudness(audio, sr)
        gain_db = 0.0 if not np.isfinite(loud) else PART_LOUDNESS[part.role] + rng.uniform(-2, 2) - loud
        audio *= np.float32(10 ** (gain_db / 20))
        stems.append(audio)
        loudness.append(loud + gain_db)
    mix = np.sum(stems, axis=0)
    peak = float(np.max(np.abs(mix)))
    overall = (10 ** (TARGET_PEAK_DB / 20) / peak) if peak > 0 else 1.0
    overall_db = 20 * np.log10(overall)

    tmp = folder.parent / f".{folder.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "stems").mkdir(parents=True)
    (tmp / "MIDI").mkdir()
    stems_yaml = {}
    for i, (part, audio) in enumerate(zip(parts, stems)):
        name = f"S{i:02d}"
        sf.write(str(tmp / "stems" / f"{name}.flac"), np.clip(audio * overall, -1, 1), sr, subtype="PCM_16")
        _score(song, [part]).dump_midi(str(tmp / "MIDI" / f"{name}.mid"))
        loud = loudness[i]
        stems_yaml[name] = {
            "audio_rendered": True,
            "inst_class": _family(part.program, part.is_drum),
            "integrated_loudness": round(float(loud + overall_db), 3) if np.isfinite(loud) else None,
            "is_drum": part.is_drum,
            "midi_program_name": _gm_name(part.program, part.is_drum),
            "midi_saved": True,
            "part": part.role,
            "plugin_name": "TimGM6mb.sf2",
            "program_num": 128 if part.is_drum else part.program,
        }
    sf.write(str(tmp / "mix.flac"), np.clip(mix * overall, -1, 1), sr, subtype="PCM_16")
    _score(song, parts).dump_midi(str(tmp / "all_src.mid"))
    meta = {
        "UUID": str(uuid.UUID(bytes=rng.bytes(16))),
        "audio_dir": "stems",
        "midi_dir": "MIDI",
        "lmd_midi_dir": f"synth/seed{recipe.seed}/{index:05d}",
        "normalized": True,
        "normalization_factor": -13.0,
        "overall_gain": round(float(overall), 6),
        "target_peak": TARGET_PEAK_DB,
        "stems": stems_yaml,
        "synth": {
            "version": recipe.version,
            "renderer": f"FluidSynth {fluidsynth_version()}",
            "seed": recipe.seed,
            "index": index,
            "sample_rate": sr,
            "duration": round(n / sr, 4),
            "n_samples": n,
            "tempo": song.tempo,
            "time_signature": f"{song.beats_per_bar}/4",
            "key": song.key_name,
            "modulation": song.modulation_dict(),
            "sections": song.section_list(),
            "beats": song.beats(),
            "downbeats": song.downbeats(),
            "chords": song.chord_list(),
        },
    }
    with open(tmp / "metadata.yaml", "w") as f:
        yaml.safe_dump(meta, f, sort_keys=True, default_flow_style=None, width=120)
    os.replace(tmp, folder)
    return {"seconds": n / sr, "stems": len(stems)}


# ----------------------------------------------------------------------------- the whole set


def track_folder(out: Path, recipe: Recipe, index: int) -> Path:
    return Path(out) / recipe.split_of(index) / f"Track{index:05d}"


def check_recipe(recipe: Recipe) -> None:
    """Raise ``ConfigError`` (naming the ``data synth`` option) unless ``recipe`` can be made as asked: tracks
    last ``min_seconds``..``max_seconds``, which must leave room for the shortest song and ask no more than the
    longest (``compose_song`` writes whole 4-bar phrases, so a range narrower than a phrase may give shorter
    tracks)."""
    if recipe.tracks < 1:
        raise ConfigError(f"--tracks must be at least 1, got {recipe.tracks}")
    if recipe.sample_rate < MIN_SAMPLE_RATE:
        raise ConfigError(f"--sample-rate must be at least {MIN_SAMPLE_RATE} Hz, got {recipe.sample_rate}")
    if recipe.min_seconds <= 0:
        raise ConfigError(f"--min-seconds must be more than 0, got {recipe.min_seconds:g}")
    if recipe.max_seconds < recipe.min_seconds:
        raise ConfigError(f"--max-seconds {recipe.max_seconds:g} is below --min-seconds {recipe.min_seconds:g}")
    shortest, longest = shortest_song_seconds() + TAIL_SECONDS, longest_song_seconds() + TAIL_SECONDS
    if recipe.max_seconds < shortest:
        raise ConfigError(f"--max-seconds must be at least {shortest:g} s, got {recipe.max_seconds:g}: a track is at "
                          f"least two 4-bar phrases ({shortest_song_seconds():g} s at the fastest tempo, 3/4) and a "
                          f"{TAIL_SECONDS:g} s release tail")
    if recipe.min_seconds > longest:
        raise ConfigError(f"--min-seconds must be at most {longest:.1f} s, got {recipe.min_seconds:g}: the longest "
                          f"track is the whole song form ({longest_song_seconds():.1f} s at the slowest tempo, 4/4) "
                          f"and a {TAIL_SECONDS:g} s release tail")


def synthesize(out: str | Path, recipe: Recipe = BOOK_RECIPE, progress: bool = True) -> dict:
    """Write (or finish) the set described by ``recipe`` under ``out``; returns counts and timings.

    Finished tracks are skipped, so an interrupted run resumes where it stopped. A file lock
    (``out/.lock``) makes concurrent callers wait for each other instead of colliding.
    """
    check_recipe(recipe)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with file_lock(out / ".lock"):
        return _synthesize_locked(out, recipe, progress)


def _synthesize_locked(out: Path, recipe: Recipe, progress: bool) -> dict:
    from tqdm.auto import tqdm

    made, skipped, audio_seconds, t0 = 0, 0, 0.0, time.perf_counter()
    for index in tqdm(range(1, recipe.tracks + 1), desc="synth", unit="track", disable=not progress):
        folder = track_folder(out, recipe, index)
        if folder.is_dir():
            _check_version(folder, recipe)
            skipped += 1
            continue
        folder.parent.mkdir(parents=True, exist_ok=True)
        audio_seconds += write_track(folder, recipe, index)["seconds"]
        made += 1
    wall = time.perf_counter() - t0
    counts = {s: sum(1 for i in range(1, recipe.tracks + 1) if recipe.split_of(i) == s) for s in SPLITS}
    total_seconds = 0.0
    for i in range(1, recipe.tracks + 1):
        total_seconds += sf.info(str(track_folder(out, recipe, i) / "mix.flac")).duration
    summary = {"recipe": asdict(recipe), "splits": counts, "hours": round(total_seconds / 3600, 4)}
    (out / "synth.json").write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return {**summary, "made": made, "skipped": skipped, "wall_seconds": wall,
            "x_real_time": audio_seconds / wall if made and wall > 0 else None}


def _check_version(folder: Path, recipe: Recipe) -> None:
    """Refuse to complete a set whose finished tracks came from another composer/renderer version."""
    with open(folder / "metadata.yaml") as f:
        found = (yaml.safe_load(f).get("synth") or {}).get("version", 1)
    if found != recipe.version:
        raise ValueError(
            f"{folder.parent.parent} holds tracks of synth version {found} (this library writes version "
            f"{recipe.version}: in-tune FluidSynth rendering); delete that folder or choose another --out"
        )


def is_complete(out: str | Path, recipe: Recipe) -> bool:
    """True when ``out/synth.json`` records exactly this recipe (written after the last track)."""
    path = Path(out) / "synth.json"
    if not path.exists():
        return False
    try:
        return json.loads(path.read_text()).get("recipe") == json.loads(json.dumps(asdict(recipe)))
    except json.JSONDecodeError:
        return False


@contextlib.contextmanager
def file_lock(path: Path):
    """Exclusive advisory lock on ``path`` (created if needed), held for the ``with`` block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def book_dataset(quick: bool | None = None) -> Path:
    """The book's synthesised set: ``data/synth`` (quick mode: ``data/synth-quick``), made first if missing.

    Concurrent callers (several notebooks) wait on a file lock while one of them synthesises.
    ``STREAMLIB_DATA`` moves the data folder (``streamlib.paths.data_dir``).
    """
    from streamlib.config import quick_mode
    from streamlib.paths import data_dir

    quick = quick_mode() if quick is None else quick
    recipe = QUICK_RECIPE if quick else BOOK_RECIPE
    out = data_dir() / ("synth-quick" if quick else "synth")
    if not is_complete(out, recipe):
        synthesize(out, recipe)  # waits on the lock if another process is making it; then skips its tracks
    return out
