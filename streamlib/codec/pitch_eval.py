"""Does a codec keep the notes? Pitch fidelity and probes of its tokens (chapter 3).

A codec for accompaniment must keep rhythm *and* notes: the accompanist hears its input only through
the codes (the input embedding ``e_x`` of Eq. 2 is the sum of their codebook vectors). Mel distance
does not tell whether the notes survived, so ``pitch_fidelity`` measures, on held-out songs of a
synthesised set (which knows its chords, beats and MIDI):

* ``chroma``: chroma similarity (``streamlib.pitch``) of the reconstruction from ``q`` levels to
  the original, on 10 s excerpts of mixes and of pitched stems, next to *another song's* excerpt
  (the floor) and a 4 kHz low-pass of the original (a reference that keeps the notes);
* ``chord_probe``: a logistic-regression probe (scikit-learn) predicting the current chord's root
  from ``e_x`` of a mix's first ``q`` levels, trained on half of the songs and tested on the other
  half, next to the same probe on the original audio's chroma and the majority class;
* ``bass_probe``: the pitch class of the lowest sounding note of a bass stem, probed from the stem's
  own ``e_x``, next to the same probe on its audio (chroma + log-mel);
* ``beat_probe``: is this frame within one frame of a beat? ROC AUC of a probe on a mix's ``e_x``;
* ``harmony``: harmonic agreement (``streamlib.metrics.harmony``: the share of chroma energy on the
  tones of the song's current chord) of the pitched stems, original and reconstructed from ``q`` levels,
  next to another song's stem against this song's chords (the floor). It is the ceiling of the play-along
  metric of chapter 9 for any accompanist that speaks this codec: a perfect model's stems are
  reconstructions;
* ``perplexity``: of each level's code histogram over all excerpts (1024 = every code equally used);
* ``mel``: dac's multi-scale mel distance of mixes at ``q`` levels (``streamlib.codec.quality``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import yaml

from streamlib.data.compose import UNPITCHED_ROLES
from streamlib.pitch import FRAME_RATE, chord_frames, chroma, chroma_similarity

PROBE_STRIDE = 2  # every other frame (neighbouring frames are nearly copies)


@dataclass
class Excerpt:
    track: str
    kind: str  # "mix" or a part name ("bass", "comp", ...)
    audio: np.ndarray
    start: float  # seconds into the track
    meta: dict
    midi: Path | None = None
    codes: torch.Tensor | None = field(default=None, repr=False)


def load_excerpts(root: str | Path, seconds: float = 10.0, max_tracks: int = 24, start: float = 4.0) -> list[Excerpt]:
    """One excerpt of each track's mix and of each pitched stem that sounds in it (all splits)."""
    tracks = sorted(Path(root).glob("*/Track*"))[:max_tracks]
    if len(tracks) < 4:
        raise FileNotFoundError(f"{root}: pitch fidelity needs at least 4 tracks of a synthesised set, found {len(tracks)}")
    out = []
    for t in tracks:
        meta = yaml.safe_load((t / "metadata.yaml").read_text())
        sr = int(meta["synth"]["sample_rate"])
        a, n = int(start * sr), int(seconds * sr)
        mix, _ = sf.read(str(t / "mix.flac"), start=a, frames=n, dtype="float32")
        if len(mix) < n:
            continue
        out.append(Excerpt(t.name, "mix", mix, start, meta))
        for name, info in meta["stems"].items():
            if info["part"] in UNPITCHED_ROLES:
                continue
            stem, _ = sf.read(str(t / "stems" / f"{name}.flac"), start=a, frames=n, dtype="float32")
            if np.sqrt(np.mean(stem**2)) > 1e-3:
                out.append(Excerpt(t.name, info["part"], stem, start, meta, t / "MIDI" / f"{name}.mid"))
    return out


def _encode_all(codec, excerpts: list[Excerpt]) -> None:
    for e in excerpts:
        if e.codes is None:
            e.codes = codec.encode(torch.from_numpy(e.audio)[None, None], sample_rate=codec.sample_rate)[0]


def _embed(codec, codes: torch.Tensor, q: int) -> np.ndarray:
    """``e_x`` frames ``[T, D]`` of the first ``q`` levels."""
    return codec.embed_codes(codes[None, :q])[0].T.float().cpu().numpy()


def _log_chroma(audio: np.ndarray, sr: int, n: int) -> np.ndarray:
    c = chroma(audio, sr)[:, :n]
    return np.log1p(c / max(float(c.max()), 1e-9) * 100).T


def _log_mel(audio: np.ndarray, sr: int, n: int) -> np.ndarray:
    import librosa

    m = librosa.feature.melspectrogram(y=audio, sr=sr, n_fft=1024, hop_length=sr // FRAME_RATE, n_mels=64)
    return np.log(m[:, :n] + 1e-6).T


def probe(train_x, train_y, test_x, test_y, auc: bool = False) -> float:
    """Accuracy (or ROC AUC) of a standardised logistic-regression probe (scikit-learn)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500, C=0.1))
    model.fit(np.concatenate(train_x), np.concatenate(train_y))
    x, y = np.concatenate(test_x), np.concatenate(test_y)
    if auc:
        return float(roc_auc_score(y, model.predict_proba(x)[:, 1]))
    return float((model.predict(x) == y).mean())


def _split(excerpts: list[Excerpt]) -> set[str]:
    tracks = sorted({e.track for e in excerpts})
    return set(tracks[: len(tracks) // 2])


def _chord_roots(e: Excerpt, n: int) -> np.ndarray:
    offset = int(round(e.start * FRAME_RATE))
    roots, _ = chord_frames(e.meta["synth"]["chords"], offset + n)
    return roots[offset:]


def _beat_labels(e: Excerpt, n: int) -> np.ndarray:
    y = np.zeros(n, dtype=np.int64)
    for b in e.meta["synth"]["beats"]:
        f = int(round((float(b) - e.start) * FRAME_RATE))
        y[max(0, f - 1): max(0, f + 2)] = 1
    return y


def _lowest_pitch_class(midi: Path, start: float, n: int) -> np.ndarray:
    import pretty_midi

    roll = pretty_midi.PrettyMIDI(str(midi)).get_piano_roll(fs=FRAME_RATE)
    a = int(round(start * FRAME_RATE))
    roll = np.pad(roll, ((0, 0), (0, max(0, a + n - roll.shape[1]))))[:, a: a + n]
    sounding = roll > 0
    lowest = np.where(sounding.any(axis=0), sounding.argmax(axis=0) % 12, -1)
    return lowest


def _frames(x: np.ndarray, y: np.ndarray, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    idx = np.arange(0, len(y), PROBE_STRIDE)
    if keep is not None:
        idx = idx[keep[idx]]
    return x[idx], y[idx]


def _probe_task(excerpts, features, labels, keep=None, auc=False) -> float:
    first = _split(excerpts)
    sets = {True: ([], []), False: ([], [])}
    for e in excerpts:
        y = labels(e)
        x = features(e)[: len(y)]
        y = y[: len(x)]
        k = keep(y) if keep is not None else None
        fx, fy = _frames(x, y, k)
        sets[e.track in first][0].append(fx)
        sets[e.track in first][1].append(fy)
    return probe(*sets[True], *sets[False], auc=auc)


def _majority(excerpts, labels, keep) -> float:
    first = _split(excerpts)
    kept = {id(e): (y := labels(e))[keep(y)] for e in excerpts}
    train = np.concatenate([kept[id(e)] for e in excerpts if e.track in first])
    test = np.concatenate([kept[id(e)] for e in excerpts if e.track not in first])
    values, counts = np.unique(train, return_counts=True)
    return float((test == values[counts.argmax()]).mean())


@torch.inference_mode()
def pitch_fidelity(codec, excerpts: list[Excerpt], levels: tuple[int, ...] = (4,)) -> dict:
    """Every measurement of the module docstring for ``codec`` on ``excerpts`` (see ``load_excerpts``)."""
    from streamlib.codec.quality import distances, lowpass

    sr = codec.sample_rate
    _encode_all(codec, excerpts)
    mixes = [e for e in excerpts if e.kind == "mix"]
    stems = [e for e in excerpts if e.kind != "mix"]
    basses = [e for e in stems if e.kind == "bass"]
    n = mixes[0].codes.shape[-1]
    report: dict = {"excerpts": {"mixes": len(mixes), "stems": len(stems), "bass": len(basses),
                                 "seconds": len(mixes[0].audio) / sr}}

    def similarity(group, q):
        recon = [codec.decode(e.codes[None, :q])[0, 0].cpu().numpy() for e in group]
        return float(np.mean([chroma_similarity(e.audio, r, sr) for e, r in zip(group, recon)]))

    report["chroma"] = {f"{kind}_q{q}": similarity(group, q) for q in levels
                        for kind, group in (("mix", mixes), ("stem", stems))}
    report["chroma"]["mix_other_song"] = float(np.mean(
        [chroma_similarity(e.audio, mixes[(i + 1) % len(mixes)].audio, sr) for i, e in enumerate(mixes)]))
    report["chroma"]["stem_other_song"] = float(np.mean(
        [chroma_similarity(e.audio, stems[(i + 7) % len(stems)].audio, sr) for i, e in enumerate(stems)]))
    report["chroma"]["mix_lowpass_4k"] = float(np.mean(
        [chroma_similarity(e.audio, lowpass(torch.from_numpy(e.audio), sr).numpy(), sr) for e in mixes]))

    report["harmony"] = harmony_ceiling(codec, stems, levels)

    has_chord = lambda y: y >= 0  # noqa: E731
    report["chord_probe"] = {
        **{f"e_x_q{q}": _probe_task(mixes, lambda e, q=q: _embed(codec, e.codes, q), lambda e: _chord_roots(e, n),
                                    has_chord) for q in levels},
        "original_chroma": _probe_task(mixes, lambda e: _log_chroma(e.audio, sr, n), lambda e: _chord_roots(e, n),
                                       has_chord),
        "majority": _majority(mixes, lambda e: _chord_roots(e, n), has_chord),
    }
    if len({e.track for e in basses}) >= 4:
        lowest = lambda e: _lowest_pitch_class(e.midi, e.start, n)  # noqa: E731
        report["bass_probe"] = {
            **{f"e_x_q{q}": _probe_task(basses, lambda e, q=q: _embed(codec, e.codes, q), lowest, has_chord)
               for q in levels},
            "original_audio": _probe_task(
                basses, lambda e: np.concatenate([_log_chroma(e.audio, sr, n), _log_mel(e.audio, sr, n)], axis=1),
                lowest, has_chord),
            "majority": _majority(basses, lowest, has_chord),
        }
    report["beat_probe_auc"] = {f"e_x_q{q}": _probe_task(mixes, lambda e, q=q: _embed(codec, e.codes, q),
                                                         lambda e: _beat_labels(e, n), auc=True) for q in levels}
    codes = torch.cat([e.codes for e in excerpts], dim=-1)
    report["perplexity"] = {f"level{i}": code_perplexity(codes[i], codec.codebook_size) for i in range(min(4, codes.shape[0]))}
    clips = torch.from_numpy(np.stack([e.audio for e in mixes]))[:, None]
    report["mel"] = {f"mix_q{q}": distances(codec.decode(torch.stack([e.codes[:q] for e in mixes])), clips, sr)["mel"]
                     for q in levels}
    return report


def harmony_ceiling(codec, stems: list[Excerpt], levels: tuple[int, ...] = (4,)) -> dict:
    """Mean harmonic agreement of pitched stems with their songs' chords: the originals, their
    reconstructions from ``q`` levels (``stem_q{q}``), and another song's stem (``stem_other_song``);
    ``by_part`` holds the originals and reconstructions per part (``bass``, ``comp``, ...): the low bass
    is where a frame-rate decoder loses notes (docs/codec_experiments.md)."""
    from streamlib.metrics.harmony import harmonic_agreement

    _encode_all(codec, stems)
    sr = codec.sample_rate

    def agree(audio, e):
        return harmonic_agreement(audio, e.meta["synth"]["chords"], sr, offset_seconds=e.start)

    original = [agree(e.audio, e) for e in stems]
    rebuilt = {q: [agree(codec.decode(e.codes[None, :q])[0, 0].cpu().numpy(), e) for e in stems] for q in levels}
    out = {"stem_original": float(np.mean(original)), **{f"stem_q{q}": float(np.mean(v)) for q, v in rebuilt.items()}}
    others = [(e, stems[(i + 7) % len(stems)]) for i, e in enumerate(stems)]
    out["stem_other_song"] = float(np.mean([agree(o.audio, e) for e, o in others if o.track != e.track]))
    out["by_part"] = {}
    for part in sorted({e.kind for e in stems}):
        mine = [i for i, e in enumerate(stems) if e.kind == part]
        out["by_part"][part] = {"n": len(mine), "original": float(np.mean([original[i] for i in mine])),
                                **{f"q{q}": float(np.mean([v[i] for i in mine])) for q, v in rebuilt.items()}}
    return out


def code_perplexity(codes: torch.Tensor, size: int) -> float:
    """exp(entropy) of the histogram of ``codes`` over a codebook of ``size`` (``size`` = every code equally used)."""
    p = torch.bincount(codes.reshape(-1).cpu(), minlength=size).double()
    p = p[p > 0] / p.sum()
    return float(torch.exp(-(p * p.log()).sum()))


__all__ = ["Excerpt", "code_perplexity", "harmony_ceiling", "load_excerpts", "pitch_fidelity", "probe"]
