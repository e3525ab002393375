"""Chapter 2 (Multitrack data): a small rule-based composer for the synthesised Slakh-format set.

Every song has what an accompanist can learn from: one tempo (70-180 BPM) and metre (4/4 or 3/4),
a key and mode, sections (intro / verse / chorus / bridge / outro) built from 4-bar phrases, a chord
progression per section, and parts that follow the harmony and enter and leave with the sections.
Two things make the harmony something an accompanist must *listen* for rather than predict from its
own past: a phrase sometimes swaps one chord for another chord of the key (``SUBSTITUTION``), and
some songs modulate at a section start in their second half (``MODULATION``: every pitched part and
the chord labels move by the same interval from there on).

========  ======================================================  =============================
part      what it plays                                           GM families drawn from
========  ======================================================  =============================
drums     kick / snare / hats pattern, fills, crashes            GM percussion (``is_drum``)
bass      roots, root-fifth, octaves or a walking line           Bass (rarely Strings, Synth Lead)
comp      voice-led chords: block, held, syncopated, strummed    Piano, Organ, Guitar, Chrom. Perc.
lead      motif-based melody, chord tones on strong beats        Lead, Reed, Brass, Pipe, Ethnic, ...
pad       sustained voice-led chords                             Synth Pad, Ensemble, Strings, Organ
arp       arpeggiated chord tones in 8ths / 16ths                Chrom. Perc., Guitar, Ethnic, ...
counter   long chord tones above the comp                        Strings, Brass, Reed, Pipe
perc      a repeated pitched-percussion rhythm                   Percussive (GM 112-118)
fx        swells and hits at section starts                      Synth Effects, Sound Effects
========  ======================================================  =============================

So all 16 non-vocal categories of ``streamlib.tokens.categories`` can occur. Notes are humanised
(velocity and timing jitter). Time is in MIDI ticks (``TPQ`` per quarter note) here; the song knows
how to turn ticks into seconds for the ground-truth beats, downbeats and chords it reports.
Everything is drawn from one ``numpy.random.Generator``, so a seed fixes the song.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

TPQ = 480  # ticks per quarter note
MAX_PITCH = 84  # melodic notes stay <= C6 (folded down by octaves)
MIN_PHRASES = 2  # a song has at least two 4-bar phrases
TEMPO_RANGE = (70, 180)  # BPM
SUBSTITUTION = 0.25  # probability that a 4-bar phrase swaps one chord for another chord of the key
MODULATION = 0.3  # probability that a song changes key at a section start in its second half
MODULATION_SHIFTS = (1, 2, 3, -2, 5, -5)  # semitones
MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

# Progressions as 0-based scale degrees, four chords each.
PROGRESSIONS = {
    "major": [(0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 0), (1, 4, 0, 0), (0, 3, 5, 4), (5, 3, 0, 4), (0, 2, 3, 4)],
    "minor": [(0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 4), (0, 3, 6, 2), (0, 5, 3, 4), (0, 2, 5, 6)],
}
FORM = ("intro", "verse", "verse", "chorus", "chorus", "verse", "verse", "chorus", "chorus", "bridge",
        "chorus", "chorus", "verse", "verse", "chorus", "chorus")  # 4-bar phrases; the last becomes "outro"
SECTION_TYPES = ("intro", "verse", "chorus", "bridge", "outro")

# Probability that a part plays in a section type (intro, verse, chorus, bridge, outro).
ACTIVITY = {
    "drums": (0.5, 1.0, 1.0, 0.7, 0.7),
    "bass": (0.5, 1.0, 1.0, 1.0, 0.8),
    "comp": (1.0, 0.9, 1.0, 0.8, 1.0),
    "lead": (0.2, 0.9, 1.0, 0.6, 0.3),
    "pad": (0.5, 0.4, 0.9, 0.9, 0.6),
    "arp": (0.3, 0.6, 0.8, 0.6, 0.3),
    "counter": (0.0, 0.4, 0.8, 0.5, 0.2),
    "perc": (0.3, 0.6, 0.8, 0.5, 0.3),
    "fx": (0.5, 0.2, 0.4, 0.5, 0.5),
}
# Probability that a song has the part at all.
PART_PROBABILITY = {"drums": 0.9, "bass": 1.0, "comp": 0.9, "lead": 0.85, "pad": 0.6, "arp": 0.5,
                    "counter": 0.35, "perc": 0.3, "fx": 0.2}

# GM programs (0-based) per part: list of (weight, programs of one family). Pitched parts use only
# programs that FluidSynth renders within 20 cents of the written note with TimGM6mb (octave aside;
# tests/test_data_render.py): celesta (8) and glockenspiel (9) are inharmonic, the accordions and
# harmonica (21-23) are detuned by design (-29 cents), orchestra hit (55) and whistle (78) have no
# stable pitch. perc and fx are unpitched parts.
PROGRAM_POOLS: dict[str, list[tuple[float, tuple[int, ...]]]] = {
    "bass": [(0.9, (32, 33, 34, 35, 36, 37, 38, 39)), (0.05, (43,)), (0.05, (81, 87))],
    "comp": [(0.35, (0, 1, 2, 3, 4, 5, 6, 7)), (0.2, (16, 17, 18, 19, 20)),
             (0.3, (24, 25, 26, 27, 28, 29, 30)), (0.15, (10, 11, 12, 13, 14, 15))],
    "lead": [(0.2, (80, 81, 82, 83, 84, 85, 86, 87)), (0.15, (64, 65, 66, 67, 68, 69, 70, 71)),
             (0.15, (56, 57, 58, 59, 60, 61, 62, 63)), (0.15, (72, 73, 74, 75, 76, 77, 79)),
             (0.08, (40, 41)), (0.1, (26, 27, 29, 30)), (0.05, (0, 1, 4)), (0.04, (11, 12, 13)),
             (0.08, (104, 105, 106, 107, 108, 109, 110, 111))],
    "pad": [(0.4, (88, 89, 90, 91, 92, 93, 94, 95)), (0.3, (48, 49, 50, 51, 52, 53, 54)),
            (0.15, (40, 41, 42, 44)), (0.15, (16, 19, 20))],
    "arp": [(0.3, (10, 11, 12, 13, 14)), (0.2, (24, 25, 27)), (0.15, (0, 1, 2, 4, 5, 6)),
            (0.15, (80, 81)), (0.15, (104, 105, 106, 107, 108)), (0.05, (45, 46))],
    "counter": [(0.4, (40, 41, 42, 43, 44, 48, 49)), (0.25, (56, 57, 58, 59, 60, 61)),
                (0.2, (64, 65, 66, 67, 68, 69, 70, 71)), (0.15, (72, 73, 74, 75, 76, 77, 79))],
    "perc": [(1.0, (112, 113, 114, 115, 116, 117, 118))],
    "fx": [(0.75, (96, 97, 98, 99, 100, 101, 102, 103)), (0.25, (120, 121, 122, 123, 124, 125, 126, 127))],
}
UNPITCHED_ROLES = ("drums", "perc", "fx")


def pitched_programs() -> list[int]:
    """Every GM program a pitched part can draw (what the tuning test renders)."""
    return sorted({p for role, pool in PROGRAM_POOLS.items() if role not in UNPITCHED_ROLES
                   for _, family in pool for p in family})


ROLES = ("drums", "bass", "comp", "lead", "pad", "arp", "counter", "perc", "fx")

# GM percussion keys
KICK, SNARE, CLAP, HAT, PEDAL_HAT, OPEN_HAT, CRASH, RIDE = 36, 38, 39, 42, 44, 46, 49, 51
TOMS = (50, 48, 47, 45)


@dataclass
class Chord:
    start: int  # tick
    end: int
    root: int  # pitch class
    pcs: tuple[int, ...]  # pitch classes, root first

    @property
    def label(self) -> str:
        """``Root:quality`` in the Harte / mir_eval style, e.g. ``A:min``, ``G:7``."""
        iv = tuple((p - self.root) % 12 for p in self.pcs[1:])
        names = {(4, 7): "maj", (3, 7): "min", (3, 6): "dim", (4, 8): "aug", (4, 7, 11): "maj7",
                 (4, 7, 10): "7", (3, 7, 10): "min7", (3, 6, 10): "hdim7", (3, 6, 9): "dim7"}
        return f"{PITCH_NAMES[self.root]}:{names.get(iv, 'maj')}"


@dataclass
class Part:
    role: str
    program: int  # 0-based GM program; 0 for drums (written as 128 in metadata, like Slakh)
    is_drum: bool
    notes: list[tuple[int, int, int, int]] = field(default_factory=list)  # (start tick, duration, pitch, velocity)


@dataclass
class Song:
    tempo: float  # quarter notes per minute
    beats_per_bar: int
    key: int
    mode: str
    n_bars: int
    sections: list[tuple[str, int, int]]  # (name, first bar, number of bars)
    chords: list[Chord]
    parts: list[Part]
    modulation: tuple[int, int] | None = None  # (first bar in the new key, semitones)

    @property
    def bar_ticks(self) -> int:
        return self.beats_per_bar * TPQ

    @property
    def end_tick(self) -> int:
        return self.n_bars * self.bar_ticks

    def seconds(self, tick: float) -> float:
        return float(tick) / TPQ * 60.0 / self.tempo

    @property
    def duration(self) -> float:
        return self.seconds(self.end_tick)

    def beats(self) -> list[float]:
        """Ground-truth beat times in seconds (one per quarter note)."""
        return [round(self.seconds(t), 4) for t in range(0, self.end_tick, TPQ)]

    def downbeats(self) -> list[float]:
        """Times of the first beat of every bar, in seconds."""
        return [round(self.seconds(t), 4) for t in range(0, self.end_tick, self.bar_ticks)]

    def chord_list(self) -> list[list]:
        """``[[start_s, end_s, label], ...]``; consecutive identical chords are merged."""
        out: list[list] = []
        for c in self.chords:
            start, end = round(self.seconds(c.start), 4), round(self.seconds(c.end), 4)
            if out and out[-1][2] == c.label:
                out[-1][1] = end
            else:
                out.append([start, end, c.label])
        return out

    def section_list(self) -> list[list]:
        """``[[start_s, end_s, name], ...]``."""
        return [[round(self.seconds(b * self.bar_ticks), 4), round(self.seconds((b + n) * self.bar_ticks), 4), s]
                for s, b, n in self.sections]

    @property
    def key_name(self) -> str:
        return f"{PITCH_NAMES[self.key]} {self.mode}"

    def modulation_dict(self) -> dict | None:
        """``{time, key, semitones}`` of the key change (seconds, new key name), or None."""
        if self.modulation is None:
            return None
        bar, shift = self.modulation
        return {"time": round(self.seconds(bar * self.bar_ticks), 4), "semitones": shift,
                "key": f"{PITCH_NAMES[(self.key + shift) % 12]} {self.mode}"}


# ----------------------------------------------------------------------------- harmony


def _pick_program(rng: np.random.Generator, role: str) -> int:
    pool = PROGRAM_POOLS[role]
    w = np.array([p for p, _ in pool])
    family = pool[int(rng.choice(len(pool), p=w / w.sum()))][1]
    return int(family[int(rng.integers(len(family)))])


def _chord(key: int, mode: str, degree: int, seventh: bool) -> tuple[int, tuple[int, ...]]:
    scale = MAJOR if mode == "major" else MINOR
    n = 4 if seventh else 3
    pcs = [(key + scale[(degree + 2 * i) % 7]) % 12 for i in range(n)]
    if mode == "minor" and degree == 4:  # harmonic-minor dominant: raise the third
        pcs[1] = (pcs[1] + 1) % 12
    return pcs[0], tuple(pcs)


def _voicing(pcs: tuple[int, ...], low: int, high: int, previous: list[int] | None) -> list[int]:
    """Close voicing of ``pcs`` inside [low, high], the inversion nearest the previous voicing."""
    best, best_cost = None, None
    for inv in range(len(pcs)):
        order = pcs[inv:] + pcs[:inv]
        notes, p = [], low - 1
        for pc in order:
            p = p + 1 + (pc - p - 1) % 12
            notes.append(p)
        for shift in (0, 12):
            cand = [n + shift for n in notes]
            if cand[-1] > high:
                continue
            centre = 0.5 * (low + high) if previous is None else float(np.mean(previous))
            cost = abs(float(np.mean(cand)) - centre)
            if best_cost is None or cost < best_cost:
                best, best_cost = cand, cost
    return best if best is not None else [low + (pc - low) % 12 for pc in pcs]


def _nearest(pitch: int, pcs, low: int, high: int) -> int:
    cands = [p for p in range(low, high + 1) if p % 12 in pcs]
    return min(cands, key=lambda p: (abs(p - pitch), p))


# ----------------------------------------------------------------------------- humanisation


class _Writer:
    """Collects notes with velocity / timing jitter, clipped to the song."""

    def __init__(self, rng: np.random.Generator, end: int, timing: float, velocity: float):
        self.rng, self.end, self.timing, self.velocity = rng, end, timing, velocity
        self.notes: list[tuple[int, int, int, int]] = []

    def add(self, start: int, dur: int, pitch: int, vel: float) -> None:
        jitter = int(round(self.rng.normal(0.0, self.timing))) if self.timing else 0
        s = max(0, start + jitter)
        d = max(TPQ // 16, min(dur, self.end - s))
        if s >= self.end:
            return
        v = int(np.clip(round(vel + self.rng.normal(0.0, self.velocity)), 20, 127))
        self.notes.append((s, d, int(pitch), v))


# ----------------------------------------------------------------------------- parts


def _active_bars(rng: np.random.Generator, song: Song, role: str) -> list[bool]:
    probs = dict(zip(SECTION_TYPES, ACTIVITY[role]))
    on = [False] * song.n_bars
    for name, b, n in song.sections:
        if rng.random() < probs[name]:
            on[b:b + n] = [True] * n
    return on


def _section_of_bar(song: Song) -> list[tuple[str, int, int]]:
    out = []
    for s in song.sections:
        out += [s] * s[2]
    return out


def _drums(rng, song: Song, on: list[bool]) -> list:
    w = _Writer(rng, song.end_tick, timing=4.0, velocity=6.0)
    bpb, step = song.beats_per_bar, TPQ // 4
    style = rng.choice(["rock", "four", "half", "jazz"], p=[0.45, 0.25, 0.15, 0.15])
    steps = bpb * 4
    kicks = {"rock": [0, 8] if bpb == 4 else [0], "four": list(range(0, steps, 4)), "half": [0], "jazz": [0]}[style]
    snares = {"rock": [4, 12] if bpb == 4 else [4, 8], "four": [4, 12] if bpb == 4 else [4, 8],
              "half": [8] if bpb == 4 else [4], "jazz": []}[style]
    extra_kick = [k for k in (6, 10, 14) if k < steps and rng.random() < 0.3] if style == "rock" else []
    hats = list(range(0, steps, 2)) if style != "four" else list(range(2, steps, 4))
    sec = _section_of_bar(song)
    for bar in range(song.n_bars):
        if not on[bar]:
            continue
        t0 = bar * song.bar_ticks
        name, first, n = sec[bar]
        fill = bar == first + n - 1 and rng.random() < 0.6
        for k in kicks + extra_kick:
            if not (fill and k >= steps - 4):
                w.add(t0 + k * step, step, KICK, 100)
        for s in snares:
            if not (fill and s >= steps - 4):
                w.add(t0 + s * step, step, SNARE if style != "four" or rng.random() < 0.5 else CLAP, 98)
        if style == "jazz":
            for b in range(bpb):
                w.add(t0 + b * TPQ, step, RIDE, 85 if b % 2 else 75)
                if b % 2 == 1:
                    w.add(t0 + b * TPQ + 2 * TPQ // 3, step, RIDE, 65)
                    w.add(t0 + b * TPQ, step, PEDAL_HAT, 60)
        else:
            hat = RIDE if name == "chorus" and rng.random() < 0.3 else HAT
            for h in hats:
                if fill and h >= steps - 4:
                    continue
                open_hat = style == "four" and rng.random() < 0.3
                w.add(t0 + h * step, step, OPEN_HAT if open_hat else hat, 78 if h % 4 == 0 else 62)
        if bar == first and name != "intro" and rng.random() < 0.8:
            w.add(t0, TPQ, CRASH, 105)
        if fill:
            for i, s in enumerate(range(steps - 4, steps)):
                w.add(t0 + s * step, step, TOMS[i % 4] if rng.random() < 0.6 else SNARE, 90 + 3 * i)
    return w.notes


def _bass(rng, song: Song, on: list[bool]) -> list:
    w = _Writer(rng, song.end_tick, timing=6.0, velocity=7.0)
    style = rng.choice(["roots", "root5", "octave", "walking", "sync"], p=[0.25, 0.25, 0.2, 0.15, 0.15])
    low = 28 if rng.random() < 0.6 else 40
    for i, c in enumerate(song.chords):
        if not on[c.start // song.bar_ticks]:
            continue
        root = low + (c.root - low) % 12
        fifth = root + 7
        span = c.end - c.start
        nxt = song.chords[i + 1].root if i + 1 < len(song.chords) else c.root
        if style == "roots":
            for t in range(c.start, c.end, 2 * TPQ):
                w.add(t, min(2 * TPQ, c.end - t) - 20, root, 96)
        elif style == "root5":
            for j, t in enumerate(range(c.start, c.end, TPQ)):
                w.add(t, TPQ - 40, root if j % 2 == 0 else fifth, 94)
        elif style == "octave":
            for j, t in enumerate(range(c.start, c.end, TPQ // 2)):
                w.add(t, TPQ // 2 - 30, root + 12 * (j % 2), 92 if j % 2 == 0 else 80)
        elif style == "walking":
            beats = list(range(c.start, c.end, TPQ))
            target = low + (nxt - low) % 12
            tones = [root, root + (c.pcs[1] - c.root) % 12, fifth]
            for j, t in enumerate(beats):
                if j == len(beats) - 1 and len(beats) > 1:
                    p = target + (1 if rng.random() < 0.5 else -1)  # chromatic approach
                else:
                    p = tones[j % 3]
                w.add(t, TPQ - 30, p, 90)
        else:  # syncopated
            pattern = [0, 3, 6, 8, 11, 14] if span >= 4 * TPQ else [0, 3, 6, 8]
            for s in pattern:
                t = c.start + s * TPQ // 4
                if t < c.end:
                    w.add(t, TPQ // 2, root if s % 8 == 0 else (fifth if s in (6, 14) else root + 12), 95)
    return w.notes


def _comp(rng, song: Song, on: list[bool], program: int) -> list:
    w = _Writer(rng, song.end_tick, timing=6.0, velocity=8.0)
    guitar = 24 <= program <= 31
    style = rng.choice(["block", "held", "sync", "offbeat", "strum" if guitar else "block"])
    prev = None
    for c in song.chords:
        if not on[c.start // song.bar_ticks]:
            continue
        voicing = _voicing(c.pcs, 52, 77, prev)
        prev = voicing
        if style == "held":
            hits = [(c.start, c.end - c.start - 30)]
        elif style == "block":
            hits = [(t, TPQ - 60) for t in range(c.start, c.end, TPQ)]
        elif style == "offbeat":
            hits = [(t + TPQ // 2, TPQ // 3) for t in range(c.start, c.end, TPQ)]
        elif style == "sync":
            hits = [(c.start + s * TPQ // 4, d * TPQ // 4) for s, d in ((0, 5), (6, 2), (10, 5)) if
                    c.start + s * TPQ // 4 < c.end]
        else:  # strum: down-up eighths with staggered note onsets
            hits = [(t, TPQ // 2 - 20) for t in range(c.start, c.end, TPQ // 2)]
        for j, (t, d) in enumerate(hits):
            order = voicing if (style != "strum" or j % 2 == 0) else voicing[::-1]
            spread = 12 if style == "strum" else 0
            for n, p in enumerate(order):
                w.add(t + n * spread, max(d - n * spread, 40), p, 78 if j == 0 else 70)
    return w.notes


def _rhythm_motif(rng, bars: int, bpb: int) -> list[tuple[int, int]]:
    """Onsets/durations (ticks) for ``bars`` bars built from one-beat cells; ends with a long note."""
    cells = [[(0, 1.0)], [(0, 0.5), (0.5, 0.5)], [(0, 0.75), (0.75, 0.25)], [(0.5, 0.5)], [], [(0, 2.0)]]
    weights = np.array([0.3, 0.3, 0.1, 0.1, 0.1, 0.1])
    out, beat = [], 0
    total = bars * bpb
    while beat < total - 2:
        cell = cells[int(rng.choice(len(cells), p=weights / weights.sum()))]
        length = 2 if cell and cell[0][1] == 2.0 else 1
        if beat + length > total - 2:
            cell, length = [(0, 1.0)], 1
        out += [(int((beat + o) * TPQ), int(d * TPQ)) for o, d in cell]
        beat += length
    out.append((int((total - 2) * TPQ), int(2 * TPQ)))
    return out


def _lead(rng, song: Song, on: list[bool], low: int = 62, high: int = 84) -> list:
    w = _Writer(rng, song.end_tick, timing=8.0, velocity=8.0)
    scale = MAJOR if song.mode == "major" else MINOR
    scale_pcs = {(song.key + s) % 12 for s in scale}
    pitches = [p for p in range(low, high + 1) if p % 12 in scale_pcs]
    motifs: dict[str, tuple[list, list]] = {}
    phrase = 2  # bars per motif
    chord_at = {}
    for c in song.chords:
        for t in range(c.start, c.end, TPQ // 4):
            chord_at[t] = c
    for name, first, n in song.sections:
        if name not in motifs:
            rhythm = _rhythm_motif(rng, phrase, song.beats_per_bar)
            steps = [int(rng.choice([-2, -1, -1, 0, 1, 1, 2, 3, -3])) for _ in rhythm]
            motifs[name] = (rhythm, steps)
        rhythm, steps = motifs[name]
        for g in range(first, first + n, phrase):
            if not on[g]:
                continue
            t0 = g * song.bar_ticks
            start_chord = chord_at.get(t0, song.chords[-1])
            p = _nearest(int(0.5 * (low + high)) + int(rng.integers(-4, 5)), start_chord.pcs, low, high)
            idx = min(range(len(pitches)), key=lambda i: abs(pitches[i] - p))
            last_group = g + phrase >= first + n
            for j, ((o, d), s) in enumerate(zip(rhythm, steps)):
                t = t0 + o
                if t >= song.end_tick or not on[min(t // song.bar_ticks, song.n_bars - 1)]:
                    continue
                idx = int(np.clip(idx + s, 0, len(pitches) - 1))
                pitch = pitches[idx]
                c = chord_at.get(t - t % (TPQ // 4), start_chord)
                if o % TPQ == 0 and (o // TPQ) % 2 == 0 or j == len(rhythm) - 1:  # strong beat: chord tone
                    pitch = _nearest(pitch, (c.root,) if (j == len(rhythm) - 1 and last_group) else c.pcs, low, high)
                    idx = min(range(len(pitches)), key=lambda i: abs(pitches[i] - pitch))
                w.add(t, d - 30, pitch, 92 if o % TPQ == 0 else 82)
    return w.notes


def _pad(rng, song: Song, on: list[bool]) -> list:
    w = _Writer(rng, song.end_tick, timing=3.0, velocity=5.0)
    prev = None
    for c in song.chords:
        if not on[c.start // song.bar_ticks]:
            continue
        voicing = _voicing(c.pcs, 55, 79, prev)
        prev = voicing
        for p in voicing:
            w.add(c.start, c.end - c.start - 10, p, 68)
    return w.notes


def _arp(rng, song: Song, on: list[bool]) -> list:
    w = _Writer(rng, song.end_tick, timing=4.0, velocity=7.0)
    rate = TPQ // 4 if song.tempo < 110 else TPQ // 2
    shape = rng.choice(["up", "down", "updown"])
    for c in song.chords:
        if not on[c.start // song.bar_ticks]:
            continue
        tones = sorted(_voicing(c.pcs, 58, 72, None))
        tones = tones + [tones[0] + 12]
        seq = {"up": tones, "down": tones[::-1], "updown": tones + tones[-2:0:-1]}[shape]
        for j, t in enumerate(range(c.start, c.end, rate)):
            w.add(t, int(rate * 0.9), seq[j % len(seq)], 80 if j % 4 == 0 else 68)
    return w.notes


def _counter(rng, song: Song, on: list[bool]) -> list:
    w = _Writer(rng, song.end_tick, timing=5.0, velocity=6.0)
    p = 72
    for c in song.chords:
        if not on[c.start // song.bar_ticks]:
            continue
        half = (c.end - c.start) // 2 if c.end - c.start >= 4 * TPQ else c.end - c.start
        for t in range(c.start, c.end, half):
            p = _nearest(p + int(rng.integers(-2, 3)), c.pcs[1:], 64, 84)
            w.add(t, min(half, c.end - t) - 20, p, 74)
    return w.notes


def _perc(rng, song: Song, on: list[bool], program: int) -> list:
    w = _Writer(rng, song.end_tick, timing=4.0, velocity=8.0)
    steps = song.beats_per_bar * 4
    pattern = sorted({0} | {int(s) for s in rng.choice(steps, size=int(rng.integers(2, 6)), replace=False)})
    pitched = program in (112, 114)
    for c in song.chords:
        if not on[c.start // song.bar_ticks]:
            continue
        for bar_start in range(c.start, c.end, song.bar_ticks):
            for s in pattern:
                t = bar_start + s * TPQ // 4
                if t < c.end:
                    pitch = 72 + (c.root - 72) % 12 if pitched else 60
                    w.add(t, TPQ // 4, pitch, 90 if s == 0 else 75)
    return w.notes


def _fx(rng, song: Song, on: list[bool], program: int) -> list:
    w = _Writer(rng, song.end_tick, timing=0.0, velocity=5.0)
    by_start = {c.start: c for c in song.chords}
    for name, first, n in song.sections:
        if not on[first]:
            continue
        t = first * song.bar_ticks
        c = by_start.get(t, song.chords[0])
        if program >= 120:  # sound effect: one hit at the section start
            w.add(t, TPQ, 60, 70)
        else:  # synth effect swell over two bars
            w.add(t, 2 * song.bar_ticks - 20, 60 + (c.root - 60) % 12, 70)
            w.add(t, 2 * song.bar_ticks - 20, 67 + (c.pcs[2 % len(c.pcs)] - 67) % 12, 64)
    return w.notes


# ----------------------------------------------------------------------------- the song


def shortest_song_seconds(beats_per_bar: int = 3) -> float:
    """The shortest song the composer can write: two 4-bar phrases at the fastest tempo."""
    return MIN_PHRASES * 4 * beats_per_bar * 60.0 / TEMPO_RANGE[1]


def longest_song_seconds() -> float:
    """The longest song the composer can write: every phrase of ``FORM`` in 4/4 at the slowest tempo."""
    return len(FORM) * 4 * 4 * 60.0 / TEMPO_RANGE[0]


def compose_song(rng: np.random.Generator, min_seconds: float = 30.0, max_seconds: float = 60.0) -> Song:
    """Compose one song of whole 4-bar phrases lasting ``min_seconds``..``max_seconds``.

    The tempo is drawn from the part of ``TEMPO_RANGE`` where two phrases fit in ``max_seconds``
    (4/4 becomes 3/4 when even that is too long); raises ``ValueError`` when ``max_seconds`` is below
    ``shortest_song_seconds()``. A song can be shorter than ``min_seconds`` only when no whole number
    of phrases fits the range at its tempo.
    """
    bpb = 3 if rng.random() < 0.15 or max_seconds < shortest_song_seconds(4) else 4
    if max_seconds < shortest_song_seconds(bpb):
        raise ValueError(
            f"songs last at least {shortest_song_seconds(3):.1f} s (two 4-bar phrases at {TEMPO_RANGE[1]} BPM); "
            f"got a maximum of {max_seconds:g} s"
        )
    slowest = max(TEMPO_RANGE[0], int(np.ceil(MIN_PHRASES * 4 * bpb * 60.0 / max_seconds)))
    tempo = float(int(rng.integers(slowest, TEMPO_RANGE[1] + 1)))
    key = int(rng.integers(12))
    mode = "major" if rng.random() < 0.6 else "minor"
    seventh = rng.random() < 0.25
    chords_per_bar = 2 if (tempo < 100 and bpb == 4 and rng.random() < 0.3) else 1
    phrase_seconds = 4 * bpb * 60.0 / tempo
    target = rng.uniform(min_seconds, max_seconds)
    most = min(len(FORM), int(np.floor(max_seconds / phrase_seconds + 1e-9)))
    fewest = min(most, max(MIN_PHRASES, int(np.ceil(min_seconds / phrase_seconds - 1e-9))))
    n_phrases = int(np.clip(round(target / phrase_seconds), fewest, most))
    names = list(FORM[:n_phrases])
    if n_phrases >= 3:
        names[-1] = "outro"
    sections: list[tuple[str, int, int]] = []
    for i, name in enumerate(names):
        if sections and sections[-1][0] == name:
            s = sections[-1]
            sections[-1] = (name, s[1], s[2] + 4)
        else:
            sections.append((name, 4 * i, 4))
    pool = PROGRESSIONS[mode]
    progs = {t: pool[int(rng.integers(len(pool)))] for t in ("verse", "chorus", "bridge")}
    progs["intro"], progs["outro"] = progs["verse"], progs["chorus"]
    n_bars = 4 * n_phrases
    bar_ticks = bpb * TPQ
    chords: list[Chord] = []
    span = bar_ticks // chords_per_bar
    for name, first, n in sections:
        prog = progs[name]
        per_phrase = 4 * chords_per_bar
        for phrase in range(n // 4):
            degrees = [prog[j % 4] for j in range(per_phrase)]
            if rng.random() < SUBSTITUTION:  # one chord of this phrase becomes another chord of the key
                j = int(rng.integers(per_phrase - 1))
                degrees[j] = int(rng.choice([d for d in range(7) if d != degrees[j]]))
            for j, degree in enumerate(degrees):
                if name == "outro" and phrase == n // 4 - 1 and j == per_phrase - 1:
                    degree = 0  # end on the tonic
                root, pcs = _chord(key, mode, degree, seventh)
                start = (first + 4 * phrase) * bar_ticks + j * span
                chords.append(Chord(start, start + span, root, pcs))
    song = Song(tempo, bpb, key, mode, n_bars, sections, chords, [])
    late = [b for _, b, _ in sections if b >= n_bars // 2 and b > 0]
    if late and rng.random() < MODULATION:
        song.modulation = (int(rng.choice(late)), int(rng.choice(MODULATION_SHIFTS)))

    roles = [r for r in ROLES if rng.random() < PART_PROBABILITY[r]]
    if "drums" not in roles and "comp" not in roles:
        roles.insert(0, "comp")
    for role in roles:
        on = _active_bars(rng, song, role)
        if not any(on):
            on[song.sections[-1][1]:] = [True] * song.sections[-1][2]
        if role == "drums":
            part = Part(role, 0, True, _drums(rng, song, on))
        else:
            program = _pick_program(rng, role)
            if role == "bass":
                notes = _bass(rng, song, on)
            elif role == "comp":
                notes = _comp(rng, song, on, program)
            elif role == "lead":
                notes = _lead(rng, song, on)
            elif role == "pad":
                notes = _pad(rng, song, on)
            elif role == "arp":
                notes = _arp(rng, song, on)
            elif role == "counter":
                notes = _counter(rng, song, on)
            elif role == "perc":
                notes = _perc(rng, song, on, program)
            else:
                notes = _fx(rng, song, on, program)
            part = Part(role, program, False, notes)
        if not part.is_drum:
            part.notes = [(s, d, _fold(p), v) for s, d, p, v in _modulate(song, part.notes)]
        if part.notes:
            part.notes.sort()
            song.parts.append(part)
    if song.modulation is not None:  # the chord labels follow the parts into the new key
        song.chords = [Chord(c.start, c.end, c.root, c.pcs) if c.start < song.modulation[0] * song.bar_ticks else
                       Chord(c.start, c.end, (c.root + song.modulation[1]) % 12,
                             tuple((p + song.modulation[1]) % 12 for p in c.pcs)) for c in song.chords]
    return song


def _modulate(song: Song, notes: list) -> list:
    """Transpose the notes that start at or after the modulation bar (parts are written in the home key)."""
    if song.modulation is None:
        return notes
    bar, shift = song.modulation
    at = bar * song.bar_ticks
    return [(s, d, p + shift if s >= at else p, v) for s, d, p, v in notes]


def _fold(pitch: int) -> int:
    """Fold a pitch above ``MAX_PITCH`` down by whole octaves."""
    return pitch - 12 * ((pitch - MAX_PITCH + 11) // 12) if pitch > MAX_PITCH else pitch
