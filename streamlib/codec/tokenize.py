"""The token cache: every stem and a few sampled mixtures per target stem, encoded once.

Chapter 3 ("Causal codec tokenisation") builds it; chapter 7 (training) reads it with
``TokenWindows``. ``python -m streamlib tokenize --dataset DIR --out DIR`` writes::

    OUT/meta.json                   codec sha256, sample rate, hop, levels, seed, mixes policy
    OUT/<split>/TrackNNNNN.npz      one file per track:
        stems        int16 [S, Q, T]   codes of each stem
        categories   int8  [S]         instrument category (streamlib.tokens.categories)
        active       bool  [S, T]      non-silent frames (streamlib.data.sampling.active_frames)
        mix_codes    int16 [M, Q, T]   codes of sampled mixtures (sums of stems)
        mix_members  bool  [M, S]      which stems each mixture contains
        mix_target   int16 [M]         the stem each mixture accompanies (never a member)
        mix_active   bool  [M, T]
        mix_policy   int8  [M]         0 = paper (N_in ~ U{1..N-1} other stems, summed),
                                       1 = public code (all other stems, mean-mixed)
        mix_chroma   f16   [M, 12, T]  causal chroma of each mixture (``streamlib.input_chroma``), the
                                       optional second input path; a cache made before it gets it by
                                       re-running the same command (nothing is re-encoded)

Mixtures are drawn per target stem (a stem of a target category, in a track with at least two
stems): ``paper_mixes`` with the paper's policy and one with every other stem; the draw for a track
uses ``numpy.random.default_rng([seed, track_number])`` so the cache is reproducible and a resumed
run equals an uninterrupted one (finished tracks are skipped; each file is written atomically).
``CausalCodec.encode`` streams long signals in one-second chunks (codes identical to one pass).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from streamlib.checkpoint import file_sha256, write_json
from streamlib.tokens.categories import is_target_category

SPLITS = ("train", "validation", "test")
POLICIES = {"paper": 0, "public": 1}  # as streamlib.data.sampling.POLICIES


# ----------------------------------------------------------------------------- reading a track


def read_stems(track_dir: Path, sample_rate: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Usable stems of a Slakh-layout track (``streamlib.data.slakh``): names, audio ``[S, N]``, categories."""
    from streamlib.data.slakh import read_track

    track = read_track(Path(track_dir), Path(track_dir).parent.name)
    track.sample_rate = sample_rate
    audio = np.stack([track.load_stem(s.name) for s in track.stems]).astype(np.float32)
    return [s.name for s in track.stems], audio, np.asarray([s.category for s in track.stems], dtype=np.int8)


def sample_mixes(n_stems: int, categories: np.ndarray, rng: np.random.Generator,
                 paper_mixes: int = 2) -> list[tuple[np.ndarray, int, int]]:
    """``(members bool[S], target, policy)`` rows: per target stem, ``paper_mixes`` paper draws + all others.

    The draws are ``streamlib.data.sampling.choose_inputs`` (the data pipeline's own rule).
    """
    from streamlib.data.sampling import choose_inputs

    rows = []
    if n_stems < 2:
        return rows
    for t in range(n_stems):
        if not is_target_category(int(categories[t])):
            continue
        for policy, count in (("paper", paper_mixes), ("public", 1)):
            for _ in range(count):
                members = np.zeros(n_stems, dtype=bool)
                members[list(choose_inputs(rng, n_stems, t, policy))] = True
                rows.append((members, t, POLICIES[policy]))
    return rows


def _frames_mask(active: np.ndarray, frames: int) -> np.ndarray:
    out = np.zeros(frames, dtype=bool)
    n = min(frames, len(active))
    out[:n] = active[:n]
    return out


def encode_signals(codec, audio: np.ndarray, batch: int = 8) -> np.ndarray:
    """Codes ``int16 [M, Q, T]`` of signals ``[M, N]``, ``batch`` signals at a time."""
    out = [codec.encode(torch.from_numpy(audio[i : i + batch])[:, None]).cpu().numpy().astype(np.int16)
           for i in range(0, len(audio), batch)]
    return np.concatenate(out) if out else np.zeros((0, codec.n_codebooks, 0), dtype=np.int16)


def tokenize_track(codec, track: Path, seed: int, paper_mixes: int = 2) -> dict[str, np.ndarray]:
    """Every array of one cache file (see the module docstring)."""
    from streamlib.data.sampling import active_frames

    names, stems, cats = read_stems(track, codec.sample_rate)
    number = int(re.sub(r"\D", "", track.name) or 0)
    rng = np.random.default_rng([seed, number])
    rows = sample_mixes(len(names), cats, rng, paper_mixes)
    stem_codes = encode_signals(codec, stems)
    frames = stem_codes.shape[-1]
    active = np.stack([_frames_mask(active_frames(s, codec.sample_rate), frames) for s in stems])
    members = np.stack([r[0] for r in rows]) if rows else np.zeros((0, len(names)), dtype=bool)
    # paper mixes sum their stems, public ones average them (as streamlib.data.sampling mixes them);
    # identical (members, policy) rows are encoded once
    policy = np.asarray([r[2] for r in rows], dtype=np.int8)
    unique, inverse = unique_mixes(members, policy)
    mix_audio = (unique @ stems) if rows else np.zeros((0, stems.shape[1]), np.float32)
    mix_codes_u = encode_signals(codec, mix_audio)
    mix_active_u = (np.stack([_frames_mask(active_frames(m, codec.sample_rate), frames) for m in mix_audio])
                    if rows else np.zeros((0, frames), dtype=bool))
    return {
        "stems": stem_codes,
        "categories": cats,
        "active": active,
        "mix_codes": mix_codes_u[inverse] if rows else np.zeros((0,) + stem_codes.shape[1:], np.int16),
        "mix_members": members,
        "mix_target": np.asarray([r[1] for r in rows], dtype=np.int16),
        "mix_active": mix_active_u[inverse] if rows else np.zeros((0, frames), dtype=bool),
        "mix_policy": policy,
        "mix_chroma": mixes_chroma(mix_audio, codec.sample_rate, frames)[inverse],
        "stem_names": np.asarray(names),
    }


def unique_mixes(members: np.ndarray, policy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mixing weights ``[U, S]`` of the distinct mixtures and each row's index into them: paper mixes sum
    their stems, public ones average them (as ``streamlib.data.sampling`` mixes them); identical
    (members, policy) rows are mixed and encoded once."""
    weights = members.astype(np.float32)
    public = policy == POLICIES["public"]
    weights[public] /= np.maximum(weights[public].sum(axis=1, keepdims=True), 1)
    if not len(weights):
        return weights, np.zeros(0, int)
    unique, inverse = np.unique(weights, axis=0, return_inverse=True)
    return unique, np.asarray(inverse).reshape(-1)


def mixes_chroma(mix_audio: np.ndarray, sample_rate: int, frames: int) -> np.ndarray:
    """``float16 [M, 12, frames]``: the causal chroma (``streamlib.input_chroma``) of each mixture."""
    from streamlib.input_chroma import CHROMA_BINS, causal_chroma

    out = np.zeros((len(mix_audio), CHROMA_BINS, frames), np.float16)
    for i, m in enumerate(mix_audio):
        c = causal_chroma(m, sample_rate)[:, :frames]
        out[i, :, : c.shape[1]] = c
    return out


def add_chroma(track: Path, path: Path, sample_rate: int) -> None:
    """Give an existing cache file its ``mix_chroma`` (the stems are re-read and re-mixed, not re-encoded)."""
    _, stems, _ = read_stems(track, sample_rate)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    unique, inverse = unique_mixes(arrays["mix_members"], arrays["mix_policy"])
    frames = arrays["stems"].shape[-1]
    arrays["mix_chroma"] = mixes_chroma(unique @ stems, sample_rate, frames)[inverse]
    _save_npz(path, arrays)


def has_chroma(path: Path) -> bool:
    with np.load(path) as z:
        return "mix_chroma" in z.files


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


_WORKER: dict = {}


def _init_worker(codec_path: str | None, threads: int) -> None:
    from streamlib.codec import load_codec

    torch.set_num_threads(threads)
    _WORKER["codec"] = load_codec(codec_path)


def _make(codec, track: Path, path: Path, seed: int, paper_mixes: int) -> None:
    """Write one cache file, or give a file made before the chroma its ``mix_chroma``."""
    if path.exists():
        add_chroma(track, path, codec.sample_rate)
    else:
        _save_npz(path, tokenize_track(codec, track, seed, paper_mixes))


def _work(job: tuple[str, str, int, int]) -> str:
    track, path, seed, paper_mixes = job
    _make(_WORKER["codec"], Path(track), Path(path), seed, paper_mixes)
    return path


def tokenize_dataset(dataset: str | Path, out: str | Path, codec=None, *, seed: int = 0, paper_mixes: int = 2,
                     splits: tuple[str, ...] = SPLITS, progress: bool = True, max_tracks: int | None = None,
                     workers: int = 1, codec_path: str | Path | None = None) -> dict:
    """Encode every track of ``splits`` into ``out``; skips finished tracks. Returns the meta dict.

    ``workers > 1`` encodes tracks in that many processes (one torch thread each), each loading the
    codec from ``codec_path`` (default: the shipped one); the files are the same as with one worker.
    """
    from tqdm.auto import tqdm

    from streamlib.codec import codes_id, default_checkpoint, load_codec

    if codec is None:
        codec = load_codec(codec_path)
    dataset, out = Path(dataset), Path(out)
    ckpt = Path(codec_path) if codec_path else default_checkpoint()
    meta = {
        # the identity of the codes (codes_id): a codec with a retrained decoder alone makes the same tokens
        "codec_sha256": codes_id(codec.card) or (file_sha256(ckpt) if ckpt.exists() else None),
        "codec_card": {k: codec.card.get(k) for k in ("steps", "preset") if k in codec.card},
        "sample_rate": codec.sample_rate, "hop": codec.hop, "frame_rate": codec.sample_rate // codec.hop,
        "levels": codec.n_codebooks, "codebook_size": codec.codebook_size, "seed": seed,
        "mixes_policy": {"paper_mixes_per_target": paper_mixes, "public_mixes_per_target": 1,
                         "paper": "N_in ~ U{1..N-1} other stems, summed", "public": "all other stems, averaged",
                         "policy_codes": POLICIES, "targets": "stems of TARGET_CATEGORIES in tracks with >= 2 stems"},
        "dataset": str(dataset),
        "mix_chroma": "causal chroma of each mixture (streamlib.input_chroma)",
    }
    old = out / "meta.json"
    if old.exists():
        prev = json.loads(old.read_text())
        if prev.get("codec_sha256") != meta["codec_sha256"] or prev.get("seed") != seed:
            raise ValueError(f"{out} holds tokens of another codec or seed ({prev.get('codec_sha256')}, "
                             f"seed {prev.get('seed')}); use a new --out")
    out.mkdir(parents=True, exist_ok=True)
    write_json(old, {**meta, "complete": False})
    tracks = [t for s in splits for t in sorted((dataset / s).glob("Track*")) if t.is_dir()]
    if max_tracks is not None:
        tracks = tracks[:max_tracks]
    if not tracks:
        raise FileNotFoundError(f"no tracks under {dataset}/{{{','.join(splits)}}}")
    counts = {s: sum(t.parent.name == s for t in tracks) for s in splits}
    jobs = []
    for track in tracks:
        path = out / track.parent.name / f"{track.name}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or not has_chroma(path):
            jobs.append((str(track), str(path), seed, paper_mixes))
    bar = tqdm(total=len(tracks), initial=len(tracks) - len(jobs), desc="tokenize", unit="track",
               disable=not progress)
    if workers <= 1:
        for track, path, _, _ in jobs:
            _make(codec, Path(track), Path(path), seed, paper_mixes)
            bar.update(1)
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers, _init_worker, (str(ckpt), 1)) as pool:
            for _ in pool.imap_unordered(_work, jobs):
                bar.update(1)
    bar.close()
    meta.update(complete=True, tracks=counts)
    write_json(old, meta)
    return meta


# ----------------------------------------------------------------------------- reading the cache


class TokenWindows(Dataset):
    """Windows of (input mixture codes, target stem codes, category) from a token cache.

    Item ``i`` is mixture row ``i`` (of the chosen ``policy``: "paper", "public" or "both") at a window
    start drawn from ``default_rng([seed, i])`` until the input mixture and the target overlap in
    enough non-silent frames (``windows_overlap_ok``; at most ``tries`` draws, else the best one).
    Tracks shorter than the window are skipped. Codes are raw (0..codebook_size-1), ``n_q`` levels.
    ``chroma=True``: items also hold ``input_chroma`` (float ``[12, window]``, the cache's ``mix_chroma``).
    ``targets``: keep only mixture rows whose target stem has one of these category ids (default: all).
    """

    def __init__(self, root: str | Path, split: str, window_frames: int, n_q: int = 4, policy: str = "paper",
                 seed: int = 0, tries: int = 20, chroma: bool = False, targets: Sequence[int] | None = None):
        if policy not in ("paper", "public", "both"):
            raise ValueError(f"policy must be 'paper', 'public' or 'both', got {policy!r}")
        files = sorted((Path(root) / split).glob("Track*.npz"))
        if not files:
            raise FileNotFoundError(f"no token files under {Path(root) / split} (run python -m streamlib tokenize)")
        self.window, self.n_q, self.seed, self.tries = int(window_frames), int(n_q), int(seed), int(tries)
        self.chroma = bool(chroma)
        self.tracks: list[dict[str, np.ndarray]] = []
        self.names: list[str] = []  # track file stems, parallel to ``tracks``
        self.rows: list[tuple[int, int]] = []
        for f in files:
            with np.load(f) as z:
                if z["stems"].shape[1] < self.n_q:
                    raise ValueError(f"{f} has {z['stems'].shape[1]} levels, n_q={self.n_q} requested")
                if z["stems"].shape[-1] < self.window:
                    continue
                d = {k: z[k] for k in ("categories", "active", "mix_target", "mix_active", "mix_policy")}
                d["stems"] = np.ascontiguousarray(z["stems"][:, : self.n_q])
                d["mix_codes"] = np.ascontiguousarray(z["mix_codes"][:, : self.n_q])
                if self.chroma:
                    if "mix_chroma" not in z.files:
                        raise ValueError(f"{f} has no mix_chroma: re-run python -m streamlib tokenize with the "
                                         "same --dataset and --out to add it")
                    d["mix_chroma"] = z["mix_chroma"]
            for m in range(len(d["mix_target"])):
                wanted = targets is None or int(d["categories"][d["mix_target"][m]]) in targets
                if wanted and (policy == "both" or d["mix_policy"][m] == POLICIES[policy]):
                    self.rows.append((len(self.tracks), m))
            self.tracks.append(d)
            self.names.append(f.stem)

    def __len__(self) -> int:
        return len(self.rows)

    def track_name(self, i: int) -> str:
        """The track (file stem, e.g. ``Track00217``) item ``i`` comes from."""
        return self.names[self.rows[i][0]]

    def target_stem(self, i: int) -> int:
        """Index of item ``i``'s target among its track's stems (the order of ``read_stems``)."""
        t, m = self.rows[i]
        return int(self.tracks[t]["mix_target"][m])

    def window_start(self, i: int, draw: int = 0) -> int:
        """Start frame of item ``i``; ``draw`` > 0 gives another window of the same row (training
        draws one per step, so the model sees new windows every epoch)."""
        from streamlib.data.sampling import windows_overlap_ok

        t, m = self.rows[i]
        d = self.tracks[t]
        tgt = int(d["mix_target"][m])
        frames = d["stems"].shape[-1]
        rng = np.random.default_rng([self.seed, i] + ([draw] if draw else []))
        best, best_score = 0, -1.0
        for _ in range(self.tries):
            s = int(rng.integers(0, frames - self.window + 1))
            a_in, a_tg = d["mix_active"][m, s : s + self.window], d["active"][tgt, s : s + self.window]
            if windows_overlap_ok(a_in, a_tg):
                return s
            score = float(np.mean(a_in & a_tg))
            if score > best_score:
                best, best_score = s, score
        return best

    def __getitem__(self, i: int) -> dict:
        return self.item(i)

    def item(self, i: int, draw: int = 0) -> dict:
        """Item ``i`` at window draw ``draw`` (``__getitem__`` is draw 0)."""
        t, m = self.rows[i]
        d = self.tracks[t]
        s = self.window_start(i, draw)
        tgt = int(d["mix_target"][m])
        item = {
            "input": torch.from_numpy(d["mix_codes"][m, :, s : s + self.window].astype(np.int64)),
            "target": torch.from_numpy(d["stems"][tgt, :, s : s + self.window].astype(np.int64)),
            "category": int(d["categories"][tgt]),
        }
        if self.chroma:
            item["input_chroma"] = torch.from_numpy(d["mix_chroma"][m, :, s : s + self.window].astype(np.float32))
        return item


def book_tokens(quick: bool | None = None, progress: bool = True, codec_path: str | Path | None = None) -> Path:
    """The book's token cache: ``data/tokens/book`` (quick mode: ``data/tokens/quick``), made first if
    missing from ``book_dataset(quick)`` with the shipped codec. Concurrent callers wait on a lock.

    ``codec_path``: the tokens of another codec, e.g. the one a shipped model was trained with
    (``find_codec(model.card["codec_sha256"])``, chapter 12), in ``data/tokens/book-HASH`` (``quick-HASH``).
    A cache made by a codec that is no longer the shipped one is moved there, not deleted."""
    from streamlib.checkpoint import load_card
    from streamlib.codec import codes_id, default_checkpoint
    from streamlib.config import quick_mode
    from streamlib.data.synth import book_dataset, file_lock
    from streamlib.paths import data_dir

    quick = quick_mode() if quick is None else quick
    base = "quick" if quick else "book"
    codec_path = Path(codec_path) if codec_path is not None else default_checkpoint()
    sha = codes_id(load_card(codec_path))
    default = codec_path.resolve() == default_checkpoint().resolve()
    out = data_dir() / "tokens" / (base if default else f"{base}-{sha[:8]}")
    meta = out / "meta.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(out.parent / f".{base}.lock"):  # one caller at a time looks, and moves a stale cache aside
        made_by = json.loads(meta.read_text()).get("codec_sha256") if meta.exists() else None
        if default and made_by not in (None, sha):  # the shipped codec changed: keep the old tokens beside
            aside = out.with_name(f"{base}-{made_by[:8]}")
            if aside.exists():
                raise FileExistsError(f"{out} holds tokens of codec {made_by}, and {aside} exists: remove one of them")
            out.rename(aside)
    if meta.exists() and json.loads(meta.read_text()).get("complete"):
        return out
    dataset = book_dataset(quick=quick)
    out.mkdir(parents=True, exist_ok=True)
    with file_lock(out / ".lock"):
        if not (meta.exists() and json.loads(meta.read_text()).get("complete")):
            tokenize_dataset(dataset, out, progress=progress, codec_path=codec_path)
    return out
