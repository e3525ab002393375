"""Chapter 2 (Multitrack data): silence filter and (input mixture, target stem) examples.

Silence (paper A.3): the A-weighted short-time RMS at 50 Hz -- hop ``sr/50``, a Hann window of
``n_fft = 2*hop`` centred on each hop -- is compared with -60 dB (re full scale: a full-scale 1 kHz
sine reads -3 dB). The A-weighting curve comes from ``librosa.A_weighting`` and is applied to the
power spectrum (torch STFT); Parseval makes the unweighted version equal the windowed RMS.

Examples (paper 4.1): a target stem whose category may be generated (never Vocal or Unknown), an
input mixture of other stems of the same track -- ``N_in ~ U{1..N-1}`` of them, summed (``"paper"``)
or all of them, mean-mixed (``"public"``, the public reference code) -- and a window (10 s by
default). A window is kept only when input and target are both non-silent in at least half of its
frames (``windows_overlap_ok``); otherwise a new (target, input, window) is drawn, at most
``max_retries`` times. The input's activity is the OR of its stems' masks (a mixture sounds where
any of its stems does), so retries cost no audio.

Everything random comes from ``numpy.random.default_rng([seed, epoch, index])``: an example depends
on its index only, so any number of DataLoader workers gives the same batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence
from functools import lru_cache

import numpy as np
import torch

from streamlib.config import FRAME_RATE, to_frames
from streamlib.tokens.categories import TARGET_CATEGORIES

SILENCE_DB = -60.0
POLICIES = ("paper", "public")


class SamplingError(ValueError):
    """No valid example could be drawn (too short, no target stem, or every retry rejected)."""


# ----------------------------------------------------------------------------- silence filter


def frame_hop(sr: int) -> int:
    """Samples per 50 Hz frame; the rate must be a multiple of 50."""
    if sr % FRAME_RATE:
        raise ValueError(f"sample rate {sr} Hz is not a multiple of the {FRAME_RATE} Hz frame rate")
    return sr // FRAME_RATE


@lru_cache(maxsize=8)
def _a_weights(sr: int, n_fft: int) -> torch.Tensor:
    import librosa

    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    gains = 10.0 ** (librosa.A_weighting(np.maximum(freqs, 1e-3)) / 10.0)  # power gains
    return torch.from_numpy(gains.astype(np.float64))


def frame_rms_db(audio: np.ndarray | torch.Tensor, sr: int, a_weighting: bool = True) -> np.ndarray:
    """A-weighted RMS level (dB re full scale) of every 50 Hz frame: ``ceil(len / hop)`` values."""
    x = torch.as_tensor(np.asarray(audio, dtype=np.float64) if not isinstance(audio, torch.Tensor) else audio)
    x = x.double().reshape(-1)
    hop = frame_hop(sr)
    n_fft = 2 * hop
    n_frames = max(1, -(-x.numel() // hop))
    left = hop // 2  # frame i is centred on the middle of hop cell i
    right = (n_frames - 1) * hop + n_fft - left - x.numel()
    x = torch.nn.functional.pad(x, (left, right))
    window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
    spec = torch.stft(x, n_fft, hop_length=hop, window=window, center=False, return_complex=True)
    power = spec.abs() ** 2  # [bins, frames]
    power[1:-1] *= 2.0  # one-sided spectrum: count the negative frequencies
    if a_weighting:
        power = power * _a_weights(sr, n_fft)[:, None]
    mean_square = power.sum(0) / (n_fft * float((window**2).sum()))
    return (10.0 * torch.log10(mean_square.clamp_min(1e-20))).numpy()[:n_frames]


def active_frames(audio: np.ndarray | torch.Tensor, sr: int, threshold_db: float = SILENCE_DB) -> np.ndarray:
    """Boolean mask of non-silent 50 Hz frames: A-weighted RMS above ``threshold_db`` (default -60 dB)."""
    return frame_rms_db(audio, sr) > threshold_db


def overlap_fraction(active_in: np.ndarray, active_tgt: np.ndarray) -> float:
    """Fraction of frames in which input and target are both non-silent."""
    a, b = np.asarray(active_in, dtype=bool), np.asarray(active_tgt, dtype=bool)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"activity masks must have the same non-empty shape, got {a.shape} and {b.shape}")
    return float(np.mean(a & b))


def windows_overlap_ok(active_in: np.ndarray, active_tgt: np.ndarray, min_overlap: float = 0.5) -> bool:
    """The paper's rule: keep a window when input and target share >= ``min_overlap`` non-silent frames."""
    return overlap_fraction(active_in, active_tgt) >= min_overlap


# ----------------------------------------------------------------------------- choosing examples


@dataclass(frozen=True)
class Example:
    """Where an example comes from: stems (indices into ``track.stems``) and a frame window."""

    track: int  # index into the data set
    target: int
    inputs: tuple[int, ...]
    start: int  # first frame (50 Hz)
    frames: int
    category: int
    overlap: float
    tries: int


def choose_inputs(rng: np.random.Generator, n_stems: int, target: int, policy: str = "paper") -> tuple[int, ...]:
    """Other stems forming the input mixture: ``N_in ~ U{1..N-1}`` of them (paper) or all (public)."""
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    others = [i for i in range(n_stems) if i != target]
    if not others:
        raise SamplingError("a track needs at least two stems")
    if policy == "public":
        return tuple(others)
    n_in = int(rng.integers(1, len(others) + 1))
    return tuple(sorted(int(i) for i in rng.choice(others, size=n_in, replace=False)))


def draw_example(
    rng: np.random.Generator,
    categories: list[int],
    masks: list[np.ndarray],
    window_frames: int,
    policy: str = "paper",
    min_overlap: float = 0.5,
    max_retries: int = 20,
    track: int = 0,
    allowed: Sequence[int] | None = None,
) -> Example:
    """Draw (target, inputs, window) for one track from its stems' categories and activity masks.

    ``allowed``: target categories to choose from (default: every ``TARGET_CATEGORIES`` one), e.g. the bass
    only for a one-instrument accompanist. Raises ``SamplingError`` when the track is shorter than the
    window, has no target-able stem, or
    ``max_retries`` draws are all rejected by the overlap rule.
    """
    n_frames = min(len(m) for m in masks)
    if n_frames < window_frames:
        raise SamplingError(f"track has {n_frames} frames, window needs {window_frames}")
    targets = [i for i, c in enumerate(categories)
               if c in TARGET_CATEGORIES and (allowed is None or c in allowed)]
    if not targets or len(categories) < 2:
        raise SamplingError("no stem with a target category (Vocal/Unknown are never targets"
                            + ("" if allowed is None else f"; allowed here: {sorted(allowed)}") + ") or < 2 stems")
    best = 0.0
    for attempt in range(1, max_retries + 1):
        target = targets[int(rng.integers(len(targets)))]
        inputs = choose_inputs(rng, len(categories), target, policy)
        start = int(rng.integers(0, n_frames - window_frames + 1))
        window = slice(start, start + window_frames)
        active_in = np.any([masks[i][window] for i in inputs], axis=0)
        frac = overlap_fraction(active_in, masks[target][window])
        best = max(best, frac)
        if frac >= min_overlap:
            return Example(track, target, inputs, start, window_frames, categories[target], frac, attempt)
    raise SamplingError(f"no window with >= {min_overlap:.0%} shared activity in {max_retries} tries (best {best:.0%})")


# ----------------------------------------------------------------------------- torch data set


class ExampleDataset(torch.utils.data.Dataset):
    """``length`` examples per epoch drawn from a ``SlakhDataset``: input mixture, target stem, category.

    Item ``i`` is ``{"input": Tensor[1, N], "target": Tensor[1, N], "category": int, "track": str,
    "start": int (frame), "n_inputs": int}`` with ``N = window frames * sr / 50``; it depends on
    ``(seed, epoch, i)`` only. A track that cannot give an example (too short, all windows silent,
    unreadable audio) is replaced by another track drawn from the same generator, at most
    ``max_tracks`` times.
    """

    def __init__(self, dataset, window_seconds: float | str = 10.0, length: int = 1000, policy: str = "paper",
                 seed: int = 0, min_overlap: float = 0.5, max_retries: int = 20, max_tracks: int = 10):
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        if dataset.sample_rate is None:
            raise ValueError("open the SlakhDataset with a sample_rate (e.g. the codec's) to sample examples")
        self.data, self.policy, self.seed, self.length = dataset, policy, seed, length
        self.window_frames = to_frames(window_seconds, name="window_seconds")
        self.min_overlap, self.max_retries, self.max_tracks = min_overlap, max_retries, max_tracks
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw a different (still deterministic) set of examples for another epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def example(self, index: int) -> Example:
        """The ``Example`` (indices and window) for item ``index``, without loading window audio."""
        from streamlib.audio import AudioError

        rng = np.random.default_rng([self.seed, self.epoch, index])
        reasons = []
        for _ in range(self.max_tracks):
            t = int(rng.integers(len(self.data)))
            track = self.data[t]
            try:
                masks = [track.active(s.name) for s in track.stems]
                return draw_example(rng, [s.category for s in track.stems], masks, self.window_frames, self.policy,
                                    self.min_overlap, self.max_retries, track=t)
            except (SamplingError, AudioError) as e:
                reasons.append(f"{track.name}: {e}")
        raise SamplingError(f"item {index}: no usable track in {self.max_tracks} draws: {reasons[:3]}")

    def __getitem__(self, index: int) -> dict:
        ex = self.example(index)
        track = self.data[ex.track]
        hop = frame_hop(track.rate)
        n = ex.frames * hop
        start_s, dur_s = ex.start / FRAME_RATE, ex.frames / FRAME_RATE

        def window(i: int) -> np.ndarray:
            return track.load_stem(track.stems[i].name, start_s, dur_s)[:n]

        mix = np.sum([window(i) for i in ex.inputs], axis=0)
        if self.policy == "public":
            mix = mix / len(ex.inputs)
        return {
            "input": torch.from_numpy(np.ascontiguousarray(mix, dtype=np.float32))[None],
            "target": torch.from_numpy(np.ascontiguousarray(window(ex.target), dtype=np.float32))[None],
            "category": ex.category,
            "track": track.name,
            "start": ex.start,
            "n_inputs": len(ex.inputs),
        }


def _worker_init(worker_id: int) -> None:
    info = torch.utils.data.get_worker_info()
    seed = info.seed % 2**32
    np.random.seed(seed)
    torch.manual_seed(seed)


def make_loader(ds: ExampleDataset, batch_size: int = 8, num_workers: int = 0, seed: int = 0,
                shuffle: bool = False) -> torch.utils.data.DataLoader:
    """A DataLoader over ``ds``; workers get distinct seeds, and items are deterministic by index anyway."""
    g = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, num_workers=num_workers, shuffle=shuffle,
                                       generator=g, worker_init_fn=_worker_init if num_workers else None,
                                       persistent_workers=False)
