"""Chapter 2 (Multitrack data): one reader for Slakh2100 (original and redux), babyslakh_16k and the
synthesised set.

Layout (REFERENCE section 4)::

    ROOT/[train|validation|test|omitted/]TrackNNNNN/{mix.flac, all_src.mid, metadata.yaml,
                                                    MIDI/SNN.mid, stems/SNN.flac}

babyslakh_16k has the Track folders directly under ROOT and WAV files at 16 kHz; both are accepted.
Only metadata is read when the data set is opened (plus each audio file's header), so a 100 GB tree
opens quickly; audio is read when asked for and resampled to ``sample_rate`` by ``streamlib.audio``.

Gotchas handled: stem numbers with gaps (S00, S02, S05, ...), stems with ``audio_rendered: false``
(no audio: left out), yaml files with a stray character before the first key, and Slakh's own
``inst_class`` strings (ignored: the category comes from ``program_num`` via
``streamlib.tokens.categories.program_to_category``; drums are Percussive).

Bad tracks -- missing metadata, malformed yaml, missing or unreadable audio, fewer than two usable
stems -- are skipped with one warning that counts them (``SlakhDataset.skipped`` lists the reasons);
a folder without any track raises ``SlakhError``.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

from streamlib.audio import AudioError, load_audio
from streamlib.tokens.categories import CATEGORIES, program_to_category

SPLITS = ("train", "validation", "test", "omitted")
AUDIO_EXTENSIONS = (".flac", ".wav")
_FIRST_KEY = re.compile(r"^[A-Za-z_][\w-]*:", re.MULTILINE)


class SlakhError(ValueError):
    """A folder that holds no usable Slakh-format track, or a bad request (unknown split / stem)."""


@dataclass
class Stem:
    """One source of a track; ``category`` comes from the GM program (drums -> Percussive)."""

    name: str  # "S01"
    path: Path  # the audio file
    program: int  # 0-based GM program, 128 for drums (as in Slakh)
    is_drum: bool
    category: int
    inst_class: str = ""  # Slakh's own label (informative only)
    midi_path: Path | None = None

    @property
    def category_name(self) -> str:
        return CATEGORIES[self.category]


@dataclass
class Track:
    """A multitrack song: stems with categories, metadata, lazily loaded audio."""

    name: str
    split: str | None
    path: Path
    metadata: dict
    stems: list[Stem]
    mix_path: Path | None
    native_rate: int
    n_samples: int  # length of the longest stem at the native rate
    sample_rate: int | None = None  # rate audio is returned at (None: native)
    _active: dict = field(default_factory=dict, repr=False)

    @property
    def rate(self) -> int:
        return self.sample_rate or self.native_rate

    @property
    def duration(self) -> float:
        return self.n_samples / self.native_rate

    def stem(self, name: str) -> Stem:
        for s in self.stems:
            if s.name == name:
                return s
        raise SlakhError(f"{self.name} has no usable stem {name!r}; stems: {[s.name for s in self.stems]}")

    def load_stem(self, name: str, start: float = 0.0, duration: float | None = None) -> np.ndarray:
        """Mono float32 audio of one stem at ``self.rate`` (optionally a segment, in seconds).

        Stems shorter than the track are zero-padded, so every stem of a track has the same length.
        """
        audio, _ = load_audio(self.stem(name).path, self.rate, start=start, duration=duration)
        want = self._want_samples(start, duration)
        return np.pad(audio[:want], (0, max(0, want - audio.shape[0])))

    def load_mix(self, start: float = 0.0, duration: float | None = None) -> np.ndarray:
        """The track's own mix (mix.flac), or the sum of its stems when there is none."""
        if self.mix_path is None:
            return np.sum([self.load_stem(s.name, start, duration) for s in self.stems], axis=0)
        audio, _ = load_audio(self.mix_path, self.rate, start=start, duration=duration)
        want = self._want_samples(start, duration)
        return np.pad(audio[:want], (0, max(0, want - audio.shape[0])))

    def active(self, name: str) -> np.ndarray:
        """Non-silent 50 Hz frames of one stem (``sampling.active_frames``), cached per track."""
        if name not in self._active:
            from streamlib.data.sampling import active_frames

            self._active[name] = active_frames(self.load_stem(name), self.rate)
        return self._active[name]

    def _want_samples(self, start: float, duration: float | None) -> int:
        total = int(round(self.n_samples * self.rate / self.native_rate))
        first = int(round(start * self.rate))
        return max(0, total - first) if duration is None else int(round(duration * self.rate))


def _read_yaml(path: Path) -> dict:
    """Parse metadata.yaml, tolerating stray characters before the first key."""
    text = path.read_text(encoding="utf-8", errors="replace").lstrip("\ufeff")
    m = _FIRST_KEY.search(text)
    candidates = [text[k:] for k in range(4)] + ([text[m.start():]] if m else [])
    error = "no top-level key"
    for candidate in candidates:  # as is, without 1-3 stray leading characters, from the first key line
        try:
            data = yaml.safe_load(candidate)
        except yaml.YAMLError as e:
            error = str(e).splitlines()[0]
            continue
        if isinstance(data, dict) and isinstance(data.get("stems"), dict):
            return data
        error = "no 'stems' mapping"
    raise ValueError(f"malformed metadata.yaml ({error})")


def _find_audio(folder: Path, stem: str) -> Path | None:
    for ext in AUDIO_EXTENSIONS:
        if (folder / f"{stem}{ext}").exists():
            return folder / f"{stem}{ext}"
    return None


def read_track(path: Path, split: str | None = None) -> Track:
    """Read one Track folder; raises ``ValueError`` (with the reason) when it is unusable."""
    meta_path = path / "metadata.yaml"
    if not meta_path.exists():
        raise ValueError("no metadata.yaml")
    meta = _read_yaml(meta_path)
    audio_dir = path / str(meta.get("audio_dir") or "stems")
    midi_dir = path / str(meta.get("midi_dir") or "MIDI")
    stems: list[Stem] = []
    rates, lengths, problems = set(), [], []
    for name in sorted(meta["stems"]):
        info = meta["stems"][name] or {}
        if info.get("audio_rendered", True) is False:
            continue
        audio = _find_audio(audio_dir, name)
        if audio is None:
            problems.append(f"{name}: audio missing")
            continue
        try:
            header = sf.info(str(audio))
        except (RuntimeError, sf.LibsndfileError) as e:
            problems.append(f"{name}: unreadable audio ({str(e).splitlines()[0][:60]})")
            continue
        if header.frames == 0:
            problems.append(f"{name}: empty audio")
            continue
        is_drum = bool(info.get("is_drum", False))
        program = info.get("program_num")
        program = None if program is None else int(program)
        category = program_to_category(program if program is not None and 0 <= program <= 127 else None, is_drum)
        midi = midi_dir / f"{name}.mid"
        stems.append(Stem(name, audio, 128 if is_drum else (program if program is not None else -1), is_drum,
                          category, str(info.get("inst_class", "")), midi if midi.exists() else None))
        rates.add(header.samplerate)
        lengths.append(header.frames)
    if problems:
        warnings.warn(f"{path.name}: skipped stems: {'; '.join(problems)}", stacklevel=3)
    if len(stems) < 2:
        raise ValueError(f"{len(stems)} usable stem(s), need 2" + (f" ({'; '.join(problems)})" if problems else ""))
    if len(rates) != 1:
        raise ValueError(f"stems have different sample rates {sorted(rates)}")
    mix = _find_audio(path, "mix")
    return Track(path.name, split, path, meta, stems, mix, rates.pop(), max(lengths))


def _track_dirs(root: Path, split: str | None) -> list[tuple[Path, str | None]]:
    found = [d for d in sorted(root.iterdir()) if d.is_dir() and d.name.startswith("Track")] if root.is_dir() else []
    if found:  # babyslakh: Track folders directly under root
        if split is not None:
            raise SlakhError(f"{root} has no split folders (babyslakh layout); use split=None")
        return [(d, None) for d in found]
    splits = [s for s in SPLITS if (root / s).is_dir()]
    if split is not None:
        if split not in splits:
            raise SlakhError(f"{root}: no split {split!r}; found {splits or 'none'}")
        splits = [split]
    return [(d, s) for s in splits for d in sorted((root / s).iterdir()) if d.is_dir() and d.name.startswith("Track")]


class SlakhDataset:
    """The tracks of a Slakh-format folder (one split or all); audio stays on disk until asked for.

    >>> ds = SlakhDataset(book_dataset(), split="train", sample_rate=16_000)   # doctest: +SKIP
    >>> track = ds[0]; track.stems[0].category_name, track.load_stem(track.stems[0].name).shape  # doctest: +SKIP
    """

    def __init__(self, root: str | Path, split: str | None = None, sample_rate: int | None = None):
        self.root = Path(root)
        if not self.root.exists():
            raise SlakhError(f"{self.root}: no such folder")
        self.split, self.sample_rate = split, sample_rate
        self.tracks: list[Track] = []
        self.skipped: list[tuple[str, str]] = []
        with warnings.catch_warnings(record=True) as stem_warnings:
            warnings.simplefilter("always")
            for path, s in _track_dirs(self.root, split):
                try:
                    track = read_track(path, s)
                except (ValueError, OSError, AudioError) as e:
                    self.skipped.append((path.name, str(e)))
                    continue
                track.sample_rate = sample_rate
                self.tracks.append(track)
        self.stem_warnings = [str(w.message) for w in stem_warnings]
        if not self.tracks:
            detail = f" ({len(self.skipped)} unusable: {self.skipped[:3]})" if self.skipped else ""
            raise SlakhError(f"no usable Slakh-format track (TrackNNNNN/metadata.yaml + stems) under {self.root}"
                             + (f" split {split!r}" if split else "") + detail)
        if self.skipped or self.stem_warnings:
            warnings.warn(
                f"{self.root}: skipped {len(self.skipped)} of {len(self.skipped) + len(self.tracks)} tracks"
                + "".join(f"\n  {n}: {why}" for n, why in self.skipped[:10])
                + (f"\n  and {len(self.stem_warnings)} track(s) with skipped stems" if self.stem_warnings else ""),
                stacklevel=2,
            )

    def __len__(self) -> int:
        return len(self.tracks)

    def __getitem__(self, i: int) -> Track:
        return self.tracks[i]

    def __iter__(self):
        return iter(self.tracks)

    def by_name(self, name: str) -> Track:
        for t in self.tracks:
            if t.name == name:
                return t
        raise SlakhError(f"no track {name!r} in {self.root}")

    @property
    def hours(self) -> float:
        return sum(t.duration for t in self.tracks) / 3600

    def category_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for t in self.tracks:
            for s in t.stems:
                counts[s.category_name] = counts.get(s.category_name, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))

    def describe(self) -> str:
        """A short text summary: tracks per split, stems, hours, categories, skipped tracks."""
        per_split: dict[str, int] = {}
        for t in self.tracks:
            per_split[t.split or "-"] = per_split.get(t.split or "-", 0) + 1
        n_stems = sum(len(t.stems) for t in self.tracks)
        rates = sorted({t.native_rate for t in self.tracks})
        lines = [f"{self.root}: {len(self.tracks)} tracks {per_split}, {n_stems} stems, {self.hours:.2f} h, "
                 f"native rate {rates} Hz, skipped {len(self.skipped)}",
                 "categories: " + ", ".join(f"{k} {v}" for k, v in self.category_counts().items())]
        return "\n".join(lines)
