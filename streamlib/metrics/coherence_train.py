"""Chapter 9 (Evaluation): training, held-out evaluation and export of the book's coherence model.

Data recipe: from every track of the train split, ``windows_per_track`` random 5 s windows in which at
least two stems are active (non-silent in >= half of the window's 50 Hz frames, the A.3 rule); the
active stems are split at random into two disjoint, non-empty sub-mixes, which form a positive pair.
Features of the pool are computed once (HPSS is not linear, so each sub-mix is analysed as a whole).
Each step draws ``batch_pairs`` pairs; the other pairs of the batch are the negatives of the
symmetric InfoNCE loss. With probability ``channel_drop`` a step zeroes the percussive or the harmonic
channel on both sides, so that the harmonic and percussive sub-scores are trained too.

Everything random in a step comes from ``numpy.random.default_rng([seed, step])``, so a resumed run
(``save_training_state`` every ``save_every_seconds``) equals an uninterrupted one.

Held-out check: on the test split, (input mixture = random subset of the other active stems, target =
one active stem) windows; the AUC of true pairs against every pairing with a stem of another song,
for the full score and both sub-scores. The card also records the same numbers on the small fixture
``tests/fixtures/coherence_fixture.flac`` that the tests recompute.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

from streamlib.metrics.coherence import (
    CHUNK_SAMPLES, MODES, SR, CoherenceConfig, CoherenceModel, coherence_matrix, config_dict, features, pair_auc,
)

WINDOW_FRAMES = 250  # 5 s at 50 Hz
HALF_TOLERANCE = 1e-3


@dataclass(frozen=True)
class CoherenceTrainConfig:
    """Optimisation and data settings (stored in the card)."""

    steps: int = 2000
    batch_pairs: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 30
    windows_per_track: int = 10
    channel_drop: float = 0.5
    seed: int = 0
    save_every_seconds: float = 60.0


# ----------------------------------------------------------------------------- data


def _windows(track, n_windows: int, rng: np.random.Generator, kind: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_windows`` (a, b) sub-mix pairs of one track: a random split of the active stems (``"split"``) or
    (input mixture, target stem) (``"target"``)."""
    from streamlib.data.sampling import active_frames, frame_hop

    if track.rate != SR:
        raise ValueError(f"open the data set at {SR} Hz, got {track.rate}")
    stems = [track.load_stem(s.name) for s in track.stems]
    masks = [active_frames(x, track.rate) for x in stems]
    n_frames, hop = min(len(m) for m in masks), frame_hop(track.rate)
    out = []
    for _ in range(n_windows):
        for _try in range(10):
            start = int(rng.integers(0, max(1, n_frames - WINDOW_FRAMES + 1)))
            active = [i for i, m in enumerate(masks) if m[start : start + WINDOW_FRAMES].mean() >= 0.5]
            if len(active) >= 2:
                break
        else:
            continue
        seg = [np.pad(x[start * hop : start * hop + CHUNK_SAMPLES], (0, max(0, CHUNK_SAMPLES - len(x) + start * hop)))
               for x in stems]
        order = [active[i] for i in rng.permutation(len(active))]
        if kind == "split":
            cut = int(rng.integers(1, len(order)))
            a, b = order[:cut], order[cut:]
        else:
            b = order[:1]
            a = order[1 : 1 + int(rng.integers(1, len(order)))]
        out.append((np.sum([seg[i] for i in a], axis=0), np.sum([seg[i] for i in b], axis=0)))
    return out


def build_pool(root: str | Path, windows_per_track: int, seed: int,
               progress: Callable[[str], None] | None = None) -> torch.Tensor:
    """Training features ``[pairs, 2 sides, 2 channels, 64, frames]`` (float16) from the train split."""
    from streamlib.data.slakh import SlakhDataset

    ds = SlakhDataset(root, split="train", sample_rate=SR)
    feats = []
    for t, track in enumerate(ds):
        for a, b in _windows(track, windows_per_track, np.random.default_rng([seed, t]), "split"):
            feats.append(features(torch.from_numpy(np.stack([a, b])), SR).half())
        if progress and (t + 1) % 24 == 0:
            progress(f"pool: {t + 1}/{len(ds)} tracks, {len(feats)} pairs")
    return torch.stack(feats)


def heldout_pairs(root: str | Path, split: str = "test", windows_per_track: int = 4,
                  seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray], list[int]]:
    """(input mixtures, target stems, song index) of 5 s windows from ``split`` for the AUC check."""
    from streamlib.data.slakh import SlakhDataset

    ds = SlakhDataset(root, split=split, sample_rate=SR)
    inputs, stems, groups = [], [], []
    for t, track in enumerate(ds):
        for a, b in _windows(track, windows_per_track, np.random.default_rng([seed, 10_000 + t]), "target"):
            inputs.append(a.astype(np.float32))
            stems.append(b.astype(np.float32))
            groups.append(t)
    return inputs, stems, groups


def auc_report(model: CoherenceModel, inputs: list[np.ndarray], stems: list[np.ndarray],
               groups: list[int] | None = None) -> dict[str, float]:
    """True-vs-random-pair AUC for the full score and both sub-scores, plus the mean true/random scores."""
    m = coherence_matrix(inputs, stems, SR, model)
    g = np.arange(len(inputs)) if groups is None else np.asarray(groups)
    full = m["full"]
    off = g[:, None] != g[None, :]
    return {
        "auc": pair_auc(full, g), "auc_harmonic": pair_auc(m["harmonic"], g),
        "auc_percussive": pair_auc(m["percussive"], g), "mean_true": float(np.mean(np.diag(full))),
        "mean_random": float(full[off].mean()), "n_pairs": len(inputs),
    }


# ----------------------------------------------------------------------------- training


def _lr(cfg: CoherenceTrainConfig, step: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


def train_step(model: CoherenceModel, opt: torch.optim.Optimizer, pool: torch.Tensor, cfg: CoherenceTrainConfig,
               step: int) -> float:
    """One InfoNCE step on in-batch negatives; its randomness depends on (seed, step) only."""
    rng = np.random.default_rng([cfg.seed, step])
    idx = torch.from_numpy(rng.choice(len(pool), size=min(cfg.batch_pairs, len(pool)), replace=False))
    swap = torch.from_numpy(rng.random(len(idx)) < 0.5)
    a, b = pool[idx, 0].float(), pool[idx, 1].float()
    a, b = torch.where(swap[:, None, None, None], b, a), torch.where(swap[:, None, None, None], a, b)
    r = rng.random()
    mode = "harmonic" if r < cfg.channel_drop / 2 else "percussive" if r < cfg.channel_drop else "full"
    for group in opt.param_groups:
        group["lr"] = _lr(cfg, step)
    logits = model.similarity(model.embed(a, mode), model.embed(b, mode))
    target = torch.arange(len(idx))
    loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return float(loss.detach())


@dataclass
class TrainResult:
    """What ``train_coherence`` returns."""

    step: int
    wall_seconds: float
    losses: list[float]
    state_path: Path
    stopped_early: bool


def train_coherence(data: str | Path, out: str | Path, cfg: CoherenceTrainConfig = CoherenceTrainConfig(),
                    model_cfg: CoherenceConfig = CoherenceConfig(), *, resume: bool = True,
                    max_seconds: float | None = None, log: Callable[[str], None] = print) -> TrainResult:
    """Train (or resume) the coherence model; ``out/train_state.pt`` is written atomically and regularly."""
    from tqdm import tqdm

    from streamlib.checkpoint import load_training_state, save_training_state

    out = Path(out)
    state_path = out / "train_state.pt"
    torch.manual_seed(cfg.seed)
    model = CoherenceModel(model_cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, wall, losses = 0, 0.0, []
    if resume and state_path.exists():
        state = load_training_state(state_path)
        if state["config"] != dataclasses.asdict(cfg) or state["model_config"] != config_dict(model_cfg):
            raise ValueError(f"{state_path} was trained with another configuration; use --fresh or another --out")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, wall, losses = int(state["step"]), float(state["wall_seconds"]), [float(x) for x in state["losses"]]
        log(f"resuming at step {step} ({wall / 60:.1f} min trained)")
    t0 = time.perf_counter()
    pool = build_pool(data, cfg.windows_per_track, cfg.seed, log)
    log(f"pool: {len(pool)} pairs in {time.perf_counter() - t0:.0f} s")

    def save() -> None:
        save_training_state(state_path, {
            "model": model.state_dict(), "optimizer": opt.state_dict(), "step": step, "wall_seconds": wall,
            "losses": losses, "config": dataclasses.asdict(cfg), "model_config": config_dict(model_cfg),
            "pool_pairs": len(pool),
        })

    model.train()
    start, last_save, stopped = time.perf_counter(), time.perf_counter(), False
    bar = tqdm(total=cfg.steps, initial=step, desc="coherence", mininterval=5)
    while step < cfg.steps:
        loss = train_step(model, opt, pool, cfg, step)
        losses.append(loss)
        step += 1
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", refresh=False)
        now = time.perf_counter()
        if now - last_save >= cfg.save_every_seconds:
            wall += now - start
            start = last_save = now
            save()
        if max_seconds is not None and wall + now - start >= max_seconds:
            stopped = step < cfg.steps
            break
    bar.close()
    wall += time.perf_counter() - start
    save()
    return TrainResult(step, wall, losses, state_path, stopped)


# ----------------------------------------------------------------------------- export


def _rounded_half(model: CoherenceModel) -> CoherenceModel:
    half = CoherenceModel(model.cfg)
    half.load_state_dict({k: (v.half().float() if v.is_floating_point() else v) for k, v in model.state_dict().items()})
    return half.eval()


def write_fixture(path: str | Path, inputs: list[np.ndarray], stems: list[np.ndarray]) -> None:
    """The tests' fixture: consecutive 5 s clips, channel 0 the input mixture, channel 1 the target stem."""
    audio = np.stack([np.concatenate(inputs), np.concatenate(stems)], axis=1)
    peak = float(np.abs(audio).max())
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio / max(peak / 0.99, 1.0), SR, subtype="PCM_16")


def read_fixture(path: str | Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(input mixtures, target stems) of a fixture written by ``write_fixture``."""
    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    if sr != SR or audio.shape[1] != 2 or len(audio) % CHUNK_SAMPLES:
        raise ValueError(f"{path} is not a coherence fixture (2 channels, 16 kHz, whole 5 s clips)")
    clips = audio.reshape(-1, CHUNK_SAMPLES, 2)
    return [c[:, 0].copy() for c in clips], [c[:, 1].copy() for c in clips]


def export_coherence(state_path: str | Path, out: str | Path, data: str | Path, fixture: str | Path,
                     extra: dict, n_fixture: int = 4, log: Callable[[str], None] = print) -> dict:
    """Shipped weights (fp16 when every card number moves by < 1e-3) + card with held-out AUCs."""
    from streamlib.checkpoint import hardware, load_training_state, save_weights

    state = load_training_state(state_path)
    model_cfg = CoherenceConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in state["model_config"].items()})
    model = CoherenceModel(model_cfg)
    model.load_state_dict(state["model"])
    model.eval()
    inputs, stems, groups = heldout_pairs(data, "test")
    full = auc_report(model, inputs, stems, groups)
    half_model = _rounded_half(model)
    half = auc_report(half_model, inputs, stems, groups)
    diff = max(abs(full[k] - half[k]) for k in full)
    use_half = diff < HALF_TOLERANCE
    shipped = half_model if use_half else model
    log(f"held-out AUC {full['auc']:.3f} (harmonic {full['auc_harmonic']:.3f}, percussive "
        f"{full['auc_percussive']:.3f}); fp16 changes the card by {diff:.2e} -> {'half' if use_half else 'fp32'}")
    first = {}
    for i, g in enumerate(groups):  # one clip per song for the fixture
        first.setdefault(g, i)
    pick = list(first.values())[:n_fixture]
    write_fixture(fixture, [inputs[i] for i in pick], [stems[i] for i in pick])
    fx_inputs, fx_stems = read_fixture(fixture)
    fx = auc_report(shipped, fx_inputs, fx_stems)
    fx_matrix = coherence_matrix(fx_inputs, fx_stems, SR, shipped)
    card = {
        "name": "book coherence model (COCOLA-style, trained in-house; not the official COCOLA weights)",
        "chapter": "09_evaluation",
        "config": config_dict(model_cfg),
        "train_config": state["config"],
        "steps": int(state["step"]),
        "wall_seconds": round(float(state["wall_seconds"]), 1),
        "losses": {"first_20_mean": float(np.mean(state["losses"][:20])),
                   "last_20_mean": float(np.mean(state["losses"][-20:])),
                   "every_25": [round(float(x), 4) for x in state["losses"][::25]]},
        "pool_pairs": int(state["pool_pairs"]),
        "parameters": sum(p.numel() for p in model.parameters()),
        "hardware": hardware(),
        "heldout": {**(half if use_half else full), "split": "test", "windows_per_track": 4, "seed": 0,
                    "random_pairs": "every stem of another song"},
        "fp16_check": {"max_abs_change": diff, "tolerance": HALF_TOLERANCE},
        "weights_dtype": "float16" if use_half else "float32",
        "fixture": {"path": str(Path(fixture)), **fx,
                    "diagonal": {k: [float(x) for x in np.diag(v)] for k, v in fx_matrix.items()}},
        **extra,
    }
    save_weights(out, shipped.state_dict(), card, half=use_half)
    return card
