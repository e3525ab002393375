"""Training the accompanist: k = 1, k > 1 prefix decoder, offline prefix baseline (chapter 7, "Training").

One entry point, ``train(run)``, serves the CLI (``python -m streamlib train``), the notebooks and
the tests. What it does each step:

* draws a global batch of windows from the token cache (``TokenWindows``), deterministically from
  ``(seed, step)``, so that a resumed run sees exactly the batches an uninterrupted one would;
* aligns them for the model's t_f (``streamlib.tokens.visibility.align``) or, offline, as the whole
  input followed by the output (``align_offline_prefix``);
* k = 1: a causal pass, loss on every output token; k > 1 (paper A.6): a prefix length
  l ~ U{0, k, ..., T - k} per batch, loss on the k steps after it only, no input term inside the chunk;
  or, with ``Run.all_chunks`` (beyond the paper), every chunk of the window at once
  (``streamlib.tokens.visibility.all_chunks``), the chunk grid shifted by a phase drawn per step;
* AdamW, linear warm-up then cosine decay to a floor, gradient clipping, bf16 autocast where the
  device supports it; validation loss every ``val_every`` steps; a CSV log and a progress bar;
* writes ``train_state.pt`` atomically (model, optimiser, step, RNG, log) every ``save_every_s``
  seconds and at the end: ``train(run)`` on the same ``out`` folder resumes from it exactly.

Several processes (``torchrun --nproc_per_node N -m streamlib train ...``) split each global batch
(DDP; gloo on CPUs, NCCL on GPUs); the loss is normalised by the global token count, so N
processes take the same steps as one.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from streamlib.checkpoint import (
    CheckpointError, file_sha256, hardware, load_training_state, rng_state, save_training_state, set_rng_state,
)
from streamlib.config import ConfigError, Preset, StreamSpec, TrainConfig, bf16_supported, get_device
from streamlib.model.accompanist import NULL_INPUTS, Accompanist, masked_loss
from streamlib.model.masked import draw_input_keep
from streamlib.paths import REPO_ROOT
from streamlib.tokens.categories import CODE_OFFSET
from streamlib.tokens.visibility import Aligned, align, align_offline_prefix, all_chunks, chunk_masks

LOG_FIELDS = ("step", "lr", "train_loss", "val_loss", "tokens", "seconds")


@dataclass(frozen=True)
class Run:
    """One training run: which model, on which tokens, for how long, written where."""

    tokens: str  # token cache folder (python -m streamlib tokenize)
    out: str  # run folder: train_state.pt, log.csv
    tf: int = 0  # frames
    k: int = 1  # frames
    offline: bool = False  # the offline prefix decoder (tf, k ignored)
    steps: int | None = None  # default: the preset's
    seed: int = 0
    policy: str = "paper"  # input mixtures: "paper" (N_in ~ U{1..N-1}), "public" (all others) or "both"
    val_every: int = 200
    val_windows: int = 32
    save_every_s: float = 120.0
    max_minutes: float | None = None  # stop (and save) after this long; resume later
    init_from: str | None = None  # a shipped model's weights (fresh optimiser): train longer, or at another t_f
    # Listening levers (issue "Accompanists that play along", docs/listening_experiments.md); 0 = the paper's recipe.
    history_noise: float = 0.0  # share of teacher-forced output codes replaced by random codes (targets kept)
    history_noise_from: float | None = None  # curriculum: the share starts here, reaches history_noise at half the steps
    own_history: float = 0.0  # share of teacher-forced output codes replaced by the model's own samples
    contrast_weight: float = 0.0  # weight of the margin loss preferring the true input over another window's
    contrast_margin: float = 0.1  # nats per token the true input should beat the rolled one by
    input_dropout: float = 0.0  # share of windows trained without their input: classifier-free guidance at sampling
    null_input: str = "pad"  # what a dropped window reads: "pad" (the learned no-input embedding) or "zero" (nothing)
    input_chroma: bool = False  # a second input path: the input's causal chroma (streamlib.input_chroma)
    present_input: bool = False  # t_f > 0: also read the input frame sounding with the prediction (cfg.present_input)
    targets: tuple[int, ...] | None = None  # target categories to train on (e.g. the bass alone); None: all
    all_chunks: bool = False  # k > 1: a loss on every chunk of each window in one pass (the paper: one chunk)

    def __post_init__(self) -> None:
        if self.targets is not None:  # a list when read back from a saved state's JSON
            object.__setattr__(self, "targets", tuple(int(c) for c in self.targets))

    def spec(self, window: int) -> StreamSpec | None:
        return None if self.offline else StreamSpec(tf=self.tf, k=self.k, window=window)


def check_levers(run: Run) -> None:
    """Raise ``ConfigError`` for listening-lever values that make no sense."""
    if not 0.0 <= run.history_noise < 1.0:
        raise ConfigError(f"history_noise must be in [0, 1), got {run.history_noise}")
    if not 0.0 <= run.own_history <= 1.0:
        raise ConfigError(f"own_history must be in [0, 1], got {run.own_history}")
    if run.history_noise_from is not None and not 0.0 <= run.history_noise_from <= 1.0:
        raise ConfigError(f"history_noise_from must be in [0, 1], got {run.history_noise_from}")
    if run.contrast_weight < 0 or run.contrast_margin < 0:
        raise ConfigError(f"contrast_weight and contrast_margin must be >= 0, got {run.contrast_weight}, "
                          f"{run.contrast_margin}")
    if not 0.0 <= run.input_dropout < 1.0:
        raise ConfigError(f"input_dropout must be in [0, 1), got {run.input_dropout}")
    if run.null_input not in NULL_INPUTS:
        raise ConfigError(f"null_input must be one of {NULL_INPUTS}, got {run.null_input!r}")
    if run.all_chunks and (run.offline or run.k == 1):
        raise ConfigError("all_chunks is for a k > 1 prefix decoder (at k = 1 every position is trained already)")
    if run.contrast_weight > 0 and run.offline:
        raise ConfigError("the contrast loss applies to streaming models (the offline decoder sees all its input)")


def lr_at(step: int, cfg: TrainConfig, total: int) -> float:
    """Linear warm-up to ``peak_lr`` over ``warmup_steps``, then cosine decay to ``min_lr`` at ``total``."""
    if step < cfg.warmup_steps:
        return cfg.peak_lr * (step + 1) / cfg.warmup_steps
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return cfg.min_lr + 0.5 * (cfg.peak_lr - cfg.min_lr) * (1 + math.cos(math.pi * progress))


def make_batch(ds, indices, draw: int) -> dict[str, torch.Tensor]:
    items = [ds.item(int(i), draw) for i in indices]
    batch = {
        "input": torch.stack([it["input"] for it in items]),
        "target": torch.stack([it["target"] for it in items]),
        "category": torch.tensor([it["category"] for it in items]),
    }
    if "input_chroma" in items[0]:
        batch["input_chroma"] = torch.stack([it["input_chroma"] for it in items])
    return batch


def aligned_batch(batch: dict, tf: int, offline: bool, device: torch.device) -> Aligned:
    x, y, c = batch["input"].to(device), batch["target"].to(device), batch["category"].to(device)
    f = batch["input_chroma"].to(device) if "input_chroma" in batch else None
    return align_offline_prefix(x, y, c, input_features=f) if offline else align(x, y, c, tf, input_features=f)


def batch_loss(net: nn.Module, aligned: Aligned, k: int, prefix: int | None,
               frames: int | None = None, per_window: bool = False,
               dropped: torch.Tensor | None = None, phase: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed loss and token count: all tokens (k = 1, offline) or the k-step chunk after ``prefix``, or
    with ``phase`` (and ``prefix`` None) every k-step chunk of the window, the chunks starting at
    ``phase + m k`` (``all_chunks``); with ``frames``, only targets of output frames ``< frames``;
    ``per_window``: one sum and count per window of the batch; ``dropped`` (bool ``[B]``): windows whose
    input term is zeroed (input dropout). ``net`` is the accompanist or its DDP wrapper."""
    model = getattr(net, "module", net)  # DDP wraps the accompanist
    reads_present = model.cfg.present_input
    if phase is not None:
        if prefix is not None:
            raise ConfigError("give a prefix (one chunk) or a phase (every chunk), not both")
        layout = all_chunks(aligned, k, phase)
        extra = {"positions": layout.positions, "attention": layout.attention}
        if reads_present:
            codes, pad = chunk_present(model, aligned, layout.starts)
            extra["present"] = (torch.cat([codes, codes], dim=-1), torch.cat([pad[0], pad[1]], dim=-1))
        aligned, keep, mask = layout.aligned, layout.input_keep, layout.aligned.loss_mask
        if dropped is not None and bool(dropped.any()):
            keep = keep[None, :] & ~dropped[:, None]
        if frames is not None:
            mask = mask & (aligned.target_frames < frames)
        return masked_loss(net, aligned, mask, keep, per_window=per_window, **extra)
    keep, mask = (None, aligned.loss_mask) if prefix is None else chunk_masks(aligned, prefix, k)
    extra = {}
    if reads_present and prefix is not None:
        starts = torch.full((aligned.length,), prefix, dtype=torch.long, device=mask.device)
        codes, (with_input, in_chunk) = chunk_present(model, aligned, starts)
        n = prefix + k
        extra["present"] = (codes[..., :n], torch.where(keep, with_input, in_chunk)[..., :n])
    if dropped is not None and bool(dropped.any()):
        keep = torch.ones(aligned.length, dtype=torch.bool, device=mask.device) if keep is None else keep
        keep = keep[None, :] & ~dropped[:, None]
    if frames is not None:
        mask = mask & (aligned.target_frames < frames)
    return masked_loss(net, aligned, mask, keep, length=None if prefix is None else prefix + k, per_window=per_window,
                       **extra)


def chunk_present(model: Accompanist, aligned: Aligned, starts: torch.Tensor
                  ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """The present input of a chunked layout (``cfg.present_input``, t_f >= 1): codes ``[B, Q, L]`` and two
    pad masks ``[B, L]``, one for positions read with their input (PAD only before the song) and one for
    positions inside the chunk that starts at ``starts[j]``, where the present frame ``j - t_f`` counts only
    if it had arrived by the chunk's start (frame ``starts[j]``): the chunk's later positions read it alone."""
    codes, pad = model.present_of(aligned.input_codes, aligned.input_pad_mask)
    pos = torch.arange(aligned.length, device=pad.device)
    late = (pos - model.spec.tf) > starts.to(pad.device)
    return codes, (pad, pad | late[None, :])


def drop_inputs(batch_size: int, rate: float, seed: int, step: int, device: torch.device) -> torch.Tensor | None:
    """Which windows of a batch train without their input (bool ``[B]``, drawn from ``(seed, step)``), or
    None at rate 0. A model trained so knows both p(y | x) and p(y), and sampling can push it towards its
    input with classifier-free guidance (``Generator(guidance=...)``, chapter 7)."""
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"input_dropout must be in [0, 1), got {rate}")
    if rate == 0.0:
        return None
    return (~draw_input_keep(np.random.default_rng([seed, step, 13]), batch_size, rate)).to(device)


def padded_inputs(aligned: Aligned, dropped: torch.Tensor) -> Aligned:
    """``aligned`` with every input position of the ``dropped`` windows (bool ``[B]``) read as PAD: those
    windows see the learned no-input embedding throughout, as before a song starts (``Run.null_input`` "pad",
    chapter 7). With "zero" they would see no input term at all; from scratch, with the output history's gate
    still near zero, such a window's whole fused embedding is near zero, and training stalled
    (docs/listening_experiments.md, "Input dropout that does not stall")."""
    return dataclasses.replace(aligned, input_pad_mask=aligned.input_pad_mask | dropped[:, None])


def history_noise_at(run: Run, step: int, total: int) -> float:
    """The history-noise share at ``step`` of ``total``: ``run.history_noise`` throughout, or with
    ``history_noise_from`` a curriculum that falls linearly from it to ``history_noise`` over the first half
    of the steps (at 1.0 the model starts with no usable history at all and must learn to play from its
    input alone; chapter 7)."""
    if run.history_noise_from is None:
        return run.history_noise
    progress = min(1.0, step / max(1.0, total / 2))
    return run.history_noise_from + progress * (run.history_noise - run.history_noise_from)


def corrupt_history(aligned: Aligned, rate: float, codebook_size: int, seed: int, step: int) -> Aligned:
    """Replace a share ``rate`` of the teacher-forced output codes (the model's own history) by uniform
    random codes, drawn from ``(seed, step)``; targets, PAD and instrument tokens stay (chapter 7).

    With the true history every frame is predictable from the last one, and a small model never needs
    its input; a corrupted history makes the input the more reliable witness of what comes next.
    """
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"history_noise must be in [0, 1], got {rate}")
    if rate == 0.0:
        return aligned
    rng = np.random.default_rng([seed, step, 11])
    shape = tuple(aligned.output_tokens.shape)
    hit = torch.from_numpy(rng.random(shape) < rate).to(aligned.output_tokens.device)
    codes = torch.from_numpy(rng.integers(0, codebook_size, size=shape)).to(aligned.output_tokens) + CODE_OFFSET
    tokens = aligned.output_tokens
    noisy = torch.where(hit & (tokens >= CODE_OFFSET), codes, tokens)
    return dataclasses.replace(aligned, output_tokens=noisy)


@torch.no_grad()
def own_history(net: nn.Module, aligned: Aligned, rate: float, seed: int, step: int) -> Aligned:
    """Replace a share ``rate`` of the teacher-forced output codes by the model's own samples (parallel
    scheduled sampling, chapter 7): one pass without gradients on the true history samples every position
    (Gumbel-max, temperature 1, noise drawn from ``(seed, step)``), and the code sampled at position j
    becomes, where drawn, the history token at j + 1 (the stream is read one step later there); targets,
    PAD and instrument tokens stay. The model then learns from histories with its own plausible mistakes
    in them, the ones free-running generation meets, instead of uniform noise.
    """
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"own_history must be in [0, 1], got {rate}")
    if rate == 0.0:
        return aligned
    was = net.training
    net.eval()
    logits = net(aligned.input_codes, aligned.input_pad_mask, aligned.output_tokens,
                 input_features=aligned.input_features).float()  # [B, Q, L, size]
    net.train(was)
    rng = np.random.default_rng([seed, step, 17])
    uniform = torch.from_numpy(rng.random(tuple(logits.shape), dtype=np.float32)).clamp_(1e-9, 1 - 1e-7)
    sampled = (logits - torch.log(-torch.log(uniform.to(logits.device)))).argmax(-1) + CODE_OFFSET
    tokens = aligned.output_tokens
    proposal = torch.cat([tokens[..., :1], sampled[..., :-1].to(tokens.dtype)], dim=-1)
    hit = torch.from_numpy(rng.random(tuple(tokens.shape)) < rate).to(tokens.device) & (tokens >= CODE_OFFSET)
    return dataclasses.replace(aligned, output_tokens=torch.where(hit, proposal, tokens))


def roll_inputs(aligned: Aligned) -> Aligned:
    """Each window's input replaced by the next window's (another song's, as a rule): the control of
    ``input_reliance`` and the negative of the contrast loss."""
    features = None if aligned.input_features is None else aligned.input_features.roll(1, dims=0)
    return dataclasses.replace(aligned, input_codes=aligned.input_codes.roll(1, dims=0),
                               input_pad_mask=aligned.input_pad_mask.roll(1, dims=0), input_features=features)


def with_rolled_inputs(aligned: Aligned) -> Aligned:
    """The batch twice along the batch axis: as it is, then with ``roll_inputs`` (one forward pass
    serves the contrast loss, also under DDP)."""
    rolled = roll_inputs(aligned)
    features = (None if aligned.input_features is None
                else torch.cat([aligned.input_features, rolled.input_features]))
    return dataclasses.replace(
        aligned, input_codes=torch.cat([aligned.input_codes, rolled.input_codes]), input_features=features,
        input_pad_mask=torch.cat([aligned.input_pad_mask, rolled.input_pad_mask]),
        output_tokens=aligned.output_tokens.repeat(2, 1, 1), targets=aligned.targets.repeat(2, 1, 1),
        loss_mask=aligned.loss_mask.repeat(2, 1, 1))


def contrast_loss(sums: torch.Tensor, counts: torch.Tensor, margin: float) -> torch.Tensor:
    """Summed hinge ``max(0, margin + own - rolled)`` over windows (per-token losses of each window),
    weighted by each window's token count so it adds to the summed cross entropy on the same scale.

    ``sums``/``counts``: per-window summed loss and token count of ``with_rolled_inputs`` (own windows
    first, then the same windows with another window's input). Pushes the true input's loss below the
    other input's by ``margin`` nats per token.
    """
    b = sums.shape[0] // 2
    per_token = sums / counts.clamp(min=1)
    gap = margin + per_token[:b] - per_token[b:]
    return (torch.relu(gap) * counts[:b]).sum()


def draw_prefix(seed: int, step: int, window: int, k: int) -> int:
    """l ~ U{0, k, 2k, ..., T - k} (paper A.6), the same on every process."""
    return k * int(np.random.default_rng([seed, step, 7]).integers(0, window // k))


def draw_phase(seed: int, step: int, k: int) -> int:
    """Where the chunk grid of an all-chunks step starts: ~ U{0, ..., k - 1}, the same on every process."""
    return int(np.random.default_rng([seed, step, 19]).integers(0, k))


def validation_prefixes(i: int, window: int, k: int, n: int = 4) -> list[int]:
    """Fixed prefixes at which a k > 1 model is validated on window ``i``."""
    rng = np.random.default_rng([1234, i])
    return sorted({k * int(p) for p in rng.integers(0, window // k, size=n)})


@torch.no_grad()
def evaluate(model: Accompanist, windows: dict[str, torch.Tensor], k: int, offline: bool,
             device: torch.device, batch_size: int = 8, frames: int | None = None) -> float:
    """Mean cross entropy per target token on fixed windows (the number on every card).

    k = 1 and offline: every output token; k > 1: the chunks after a few fixed prefixes per window.
    ``frames``: count only the targets of output frames ``< frames`` (see ``common_frame_losses``).
    """
    was = model.training
    model.eval()
    tf = 0 if model.spec is None else model.spec.tf
    total, count = 0.0, 0
    n = windows["input"].shape[0]
    for lo in range(0, n, batch_size):
        part = {key: v[lo : lo + batch_size] for key, v in windows.items()}
        aligned = aligned_batch(part, tf, offline, device)
        if k == 1 or offline:
            s, c = batch_loss(model, aligned, 1, None, frames)
            total, count = total + float(s), count + int(c)
            continue
        for j in range(part["input"].shape[0]):
            one = aligned_batch({key: v[j : j + 1] for key, v in part.items()}, tf, offline, device)
            for prefix in validation_prefixes(lo + j, one.length, k):
                s, c = batch_loss(model, one, k, prefix, frames)
                total, count = total + float(s), count + int(c)
    model.train(was)
    return total / max(count, 1)


def validation_windows(tokens: str | Path, window: int, n_q: int, n: int | None, policy: str = "paper",
                       split: str = "validation", chroma: bool = False,
                       targets: Sequence[int] | None = None) -> dict[str, torch.Tensor]:
    """``n`` fixed windows spread evenly over a split (all of them when ``n`` is None)."""
    return split_windows(tokens, window, n_q, n, policy, split, chroma, targets)[0]


def split_windows(tokens: str | Path, window: int, n_q: int, n: int | None = None, policy: str = "paper",
                  split: str = "validation", chroma: bool = False,
                  targets: Sequence[int] | None = None) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """``validation_windows`` and, for each window, where it comes from: its ``row`` of the split
    (``TokenWindows`` item), ``track`` and ``start`` frame. Windows of one track are not independent
    samples; ``streamlib.compare.paired_difference`` groups them by track. ``chroma``: with the
    windows' ``input_chroma`` (for models with the chroma input path). ``targets``: only windows whose
    target stem has one of these category ids (a one-instrument run's validation)."""
    from streamlib.codec.tokenize import TokenWindows

    ds = TokenWindows(tokens, split, window, n_q=n_q, policy=policy, seed=0, chroma=chroma, targets=targets)
    count = len(ds) if n is None else min(n, len(ds))
    idx = np.linspace(0, len(ds) - 1, num=count).round().astype(int)
    info = [{"row": int(i), "track": ds.track_name(int(i)), "start": ds.window_start(int(i)),
             "target_stem": ds.target_stem(int(i))} for i in idx]
    return make_batch(ds, idx, draw=0), info


def codec_tables(tokens: str | Path, n_q: int, codec=None) -> tuple[list[torch.Tensor], str | None]:
    """The frozen input codebooks of the codec that made the token cache, and its hash."""
    import json

    from streamlib.codec import codes_id, default_checkpoint, load_codec

    meta_path = Path(tokens) / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if codec is None:
        codec = load_codec()
        sha = codes_id(codec.card) or file_sha256(default_checkpoint())  # the codes' identity (codes_id)
        if meta.get("codec_sha256") not in (None, sha):
            raise CheckpointError(f"{tokens} was made with codec {meta.get('codec_sha256')}, but the codec "
                                  f"checkpoint makes the codes of {sha}: re-run python -m streamlib tokenize")
    else:
        sha = meta.get("codec_sha256")
    return codec.codebook_tables(n_q), sha


# ----------------------------------------------------------------------------- distributed


def _dist_setup(device: torch.device) -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _all_sum(value: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        import torch.distributed as dist

        value = value.clone()
        dist.all_reduce(value)
    return value


# ----------------------------------------------------------------------------- the loop


def _stop_on_sigterm():
    """Turn SIGTERM (``kill``, a batch scheduler) into KeyboardInterrupt so the state is saved; returns
    the previous handler (None off the main thread, where signals cannot be set)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    return signal.signal(signal.SIGTERM, stop)


def _identity(run: dict) -> dict:
    """The fields that make a run itself (how long or how often it saves may change on resume)."""
    same = {k: v for k, v in run.items() if k not in ("steps", "max_minutes", "save_every_s", "val_every", "out")}
    if not same.get("input_dropout"):
        same.pop("null_input", None)  # read by no window without input dropout
    return same


def _stored_run(state: dict) -> dict:
    """The run a training state belongs to; fields added to ``Run`` since it was written take their defaults."""
    defaults = {f.name: f.default for f in dataclasses.fields(Run) if f.default is not dataclasses.MISSING}
    defaults["null_input"] = "zero"  # what dropped windows read before the choice existed
    return {**defaults, **state.get("run", {})}


def train(run: Run, preset: Preset, *, codec=None, device: str | torch.device | None = None,
          progress: bool = True, log=print, on_step=None, command: str | None = None) -> dict:
    """Train (or resume) ``run`` with ``preset``'s model and optimiser settings; returns a summary.

    ``codec`` supplies the frozen input codebooks (default: the shipped codec, checked against the
    token cache's codec hash). ``on_step(row)`` is called after every step with its log row (a
    notebook can draw the curve live). The state is saved on any exit, Ctrl-C included. ``command``
    (the command line of this sitting) is kept in the state, so a card lists every sitting.
    """
    from tqdm.auto import tqdm

    from streamlib.codec.tokenize import TokenWindows

    mcfg, tcfg = preset.model, preset.train
    if run.input_chroma:
        mcfg = dataclasses.replace(mcfg, input_chroma=True)
    if run.present_input:
        mcfg = dataclasses.replace(mcfg, present_input=True)
    window = tcfg.window_frames
    if run.offline and 2 * window > mcfg.max_frames:
        mcfg = dataclasses.replace(mcfg, max_frames=2 * window)  # input then output: 2T positions
    if not run.offline:
        spec = run.spec(window)  # validates t_f and k against the window
        if spec.k > 1 and window % spec.k:
            raise ConfigError(f"k={spec.k} frames must divide the window of {window} frames")
    check_levers(run)
    total = int(run.steps or tcfg.steps)
    device = get_device(device) if not isinstance(device, torch.device) else device
    rank, world = _dist_setup(device)
    if tcfg.batch_size % world:
        raise ConfigError(f"batch_size {tcfg.batch_size} is not divisible by {world} processes")
    local = tcfg.batch_size // world

    torch.manual_seed(run.seed)
    tables, codec_sha = codec_tables(run.tokens, mcfg.n_q, codec)
    model = Accompanist(mcfg, tables, run.spec(window), offline=run.offline).to(device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 or "embed" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": tcfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=tcfg.peak_lr, betas=tcfg.betas)
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model)

    out = Path(run.out)
    state_path = out / "train_state.pt"
    step, history, wall, commands, lineage = 0, [], 0.0, [], []
    if state_path.exists():
        state = load_training_state(state_path)
        if _identity(_stored_run(state)) != _identity(dataclasses.asdict(run)):
            raise CheckpointError(f"{state_path} belongs to another run ({state.get('run')}); use a new --out")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
        step, history, wall = int(state["step"]), list(state["history"]), float(state["wall_seconds"])
        commands = list(state.get("commands", []))
        lineage = list(state.get("lineage", []))
        if rank == 0:
            log(f"resumed {state_path} at step {step}")

    elif run.init_from:
        from streamlib.model.accompanist import load_accompanist

        start = load_accompanist(run.init_from)
        other_k = not run.offline and start.spec.k not in (1, model.spec.k)  # k = 1 may seed a prefix decoder
        if start.cfg != mcfg or start.offline != run.offline or other_k:
            raise CheckpointError(f"{run.init_from} is another model ({start.cfg}, {start.spec}, offline "
                                  f"{start.offline}) than this run's ({mcfg}, {model.spec}, offline {run.offline})")
        model.load_state_dict(start.state_dict())  # t_f and k may differ: the weights depend on neither (chapter 7)
        lineage = warm_start_lineage(run.init_from, start.card)
        if rank == 0:
            moved = "" if start.spec == model.spec else f", trained at t_f = {start.spec.tf}, k = {start.spec.k} frames"
            log(f"initialised from {run.init_from} ({start.card.get('steps')} steps{moved})")
    if command:
        commands.append(f"{command}  # sitting from step {step}")
    ds = TokenWindows(run.tokens, "train", window, n_q=mcfg.n_q, policy=run.policy, seed=run.seed,
                      chroma=run.input_chroma, targets=run.targets)
    if len(ds) == 0:
        raise ConfigError(f"no training windows in {run.tokens} for the target categories {run.targets}")
    val = validation_windows(run.tokens, window, mcfg.n_q, run.val_windows, run.policy, chroma=run.input_chroma,
                             targets=run.targets)
    use_bf16 = tcfg.bf16 and bf16_supported(device)

    def save() -> None:
        if rank != 0:
            return
        save_training_state(state_path, {
            "run": dataclasses.asdict(run), "preset": preset.name, "model": model.state_dict(),
            "optimizer": opt.state_dict(), "rng": rng_state(), "step": step, "history": history,
            "wall_seconds": wall, "codec_sha256": codec_sha, "window": window,
            "hardware": {**hardware(), "bf16_autocast": use_bf16},
            "model_config": dataclasses.asdict(mcfg), "commands": commands, "lineage": lineage,
        })
        with open(out / "log.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=LOG_FIELDS)
            w.writeheader()
            w.writerows(history)

    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=total, initial=step, desc=f"train {'offline' if run.offline else spec.tag}",
               disable=not progress or rank != 0)
    started, last_save = time.perf_counter(), time.perf_counter()
    wall0 = wall
    model.train()
    previous = _stop_on_sigterm()
    try:
        while step < total:
            lr = lr_at(step, tcfg, total)
            for group in opt.param_groups:
                group["lr"] = lr
            idx = np.random.default_rng([run.seed, step]).integers(0, len(ds), size=tcfg.batch_size)
            batch = make_batch(ds, idx[rank * local : (rank + 1) * local], draw=step + 1)
            aligned = aligned_batch(batch, run.tf, run.offline, device)
            if run.own_history > 0:
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                    aligned = own_history(model, aligned, run.own_history, run.seed, step)
            aligned = corrupt_history(aligned, history_noise_at(run, step, total), model.codebook_size, run.seed, step)
            prefix = None if (run.offline or run.k == 1 or run.all_chunks) else draw_prefix(run.seed, step, window, run.k)
            phase = draw_phase(run.seed, step, run.k) if run.all_chunks else None
            dropped = drop_inputs(tcfg.batch_size, run.input_dropout, run.seed, step, device)
            dropped = None if dropped is None else dropped[rank * local : (rank + 1) * local]
            if dropped is not None and run.null_input == "pad":
                aligned, dropped = padded_inputs(aligned, dropped), None
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                if run.contrast_weight > 0:
                    sums, counts = batch_loss(net, with_rolled_inputs(aligned), run.k, prefix, per_window=True,
                                              dropped=None if dropped is None else dropped.repeat(2), phase=phase)
                    summed, count = sums[: len(sums) // 2].sum(), counts[: len(counts) // 2].sum()
                    extra = run.contrast_weight * contrast_loss(sums, counts, run.contrast_margin)
                else:
                    summed, count = batch_loss(net, aligned, run.k, prefix, dropped=dropped, phase=phase)
                    extra = summed.new_zeros(())
            global_count = _all_sum(count.detach().float(), world)
            loss = (summed + extra) * world / global_count.clamp(min=1)  # DDP averages: this gives the global mean
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), tcfg.grad_clip)
            opt.step()
            step += 1
            train_loss = float(_all_sum(summed.detach(), world) / global_count.clamp(min=1))
            wall = wall0 + time.perf_counter() - started
            row = {"step": step, "lr": lr, "train_loss": round(train_loss, 5), "val_loss": "",
                   "tokens": int(global_count), "seconds": round(wall, 1)}
            if step % run.val_every == 0 or step == total:
                row["val_loss"] = round(evaluate(model, val, run.k, run.offline, device), 5)
            history.append(row)
            if on_step is not None:
                on_step(row)
            bar.update(1)
            bar.set_postfix(loss=f"{train_loss:.3f}", val=row["val_loss"] or "-")
            if time.perf_counter() - last_save > run.save_every_s:
                save()
                last_save = time.perf_counter()
            if run.max_minutes is not None and (time.perf_counter() - started) > 60 * run.max_minutes:
                if rank == 0:
                    log(f"stopping after {run.max_minutes} minutes at step {step}; run again to resume")
                break
    finally:
        save()  # also on Ctrl-C or SIGTERM: the run resumes from here
        bar.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    val_losses = [r["val_loss"] for r in history if r["val_loss"] != ""]
    return {"step": step, "total": total, "wall_seconds": wall, "val_loss": val_losses[-1] if val_losses else None,
            "history": history, "model": model, "window": window, "codec_sha256": codec_sha, "bf16": use_bf16}


__all__ = ["Run", "batch_loss", "bf16_supported", "check_levers", "chunk_present", "contrast_loss", "corrupt_history",
           "draw_phase", "draw_prefix", "drop_inputs", "evaluate", "lr_at", "roll_inputs", "train", "validation_windows", "with_rolled_inputs"]


# ----------------------------------------------------------------------------- shipping a model


def save_val_fixture(windows: dict[str, torch.Tensor], path: str | Path) -> None:
    """Store validation windows (int16 codes) so tests can re-score shipped models without the data set."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {"input_chroma": windows["input_chroma"].numpy().astype(np.float16)} if "input_chroma" in windows else {}
    np.savez_compressed(path, input=windows["input"].numpy().astype(np.int16),
                        target=windows["target"].numpy().astype(np.int16),
                        category=windows["category"].numpy().astype(np.int8), **extra)


def load_val_fixture(path: str | Path) -> dict[str, torch.Tensor]:
    """Windows stored by ``save_val_fixture`` (with ``input_chroma`` when they were stored with it)."""
    with np.load(path) as z:
        windows = {"input": torch.from_numpy(z["input"].astype(np.int64)),
                   "target": torch.from_numpy(z["target"].astype(np.int64)),
                   "category": torch.from_numpy(z["category"].astype(np.int64))}
        if "input_chroma" in z.files:
            windows["input_chroma"] = torch.from_numpy(z["input_chroma"].astype(np.float32))
        return windows


def card_fixture(card: dict) -> Path | None:
    """The committed windows (``tests/fixtures/``) a model card's ``fixture.loss`` was measured on, if any:
    each codec's models are scored on windows of their own token cache."""
    return REPO_ROOT / "tests" / "fixtures" / card["fixture"]["path"] if card.get("fixture") else None


def score_windows(acc: Accompanist, windows: dict[str, torch.Tensor], window: int, frames: int | None = None) -> float:
    """Validation loss of ``acc`` on ``windows`` cropped to its training window (the cards' number);
    ``frames``: only the targets of output frames ``< frames``."""
    k = 1 if acc.spec is None else acc.spec.k
    cropped = {key: (v[..., :window] if v.dim() == 3 else v) for key, v in windows.items()}
    return evaluate(acc, cropped, k, acc.offline, torch.device("cpu"), frames=frames)


def warm_start_lineage(path: str | Path, card: dict) -> list[dict]:
    """The sittings a warm start builds on: the source model's own summary, then its lineage (oldest last)."""
    own = {"weights": str(path), "run": card.get("run"), "steps": card.get("steps"),
           "wall_seconds": card.get("wall_seconds"), "hardware": card.get("hardware"),
           "val_loss": card.get("val_loss"), "reproduce": card.get("reproduce", [])}
    return [own] + list(card.get("lineage", []))


def total_training(steps: int, wall_seconds: float, hardware: dict | None, lineage: list[dict]) -> dict:
    """Steps, wall time and CPU-hours of a model including the sittings it was warm-started from.

    CPU-hours count the torch threads of each sitting (one core per thread) as recorded in its hardware.
    """
    def threads(hw: dict | None) -> int:
        return int((hw or {}).get("torch_threads") or 1)

    rows = [(steps, wall_seconds, hardware)] + [(r.get("steps") or 0, r.get("wall_seconds") or 0.0, r.get("hardware"))
                                           for r in lineage]
    return {"steps": int(sum(r[0] for r in rows)), "wall_hours": round(sum(r[1] for r in rows) / 3600, 3),
            "cpu_hours": round(sum(r[1] * threads(r[2]) for r in rows) / 3600, 3)}


def export_model(state_path: str | Path, out: str | Path, *, fixture: str | Path | None = None,
                 commands: list[str] | None = None, half: str = "auto") -> dict:
    """Write ``out`` (safetensors) + card from a finished run's ``train_state.pt``.

    The card holds config, (t_f, k), codec hash, data, steps, wall time, hardware, the loss curve,
    the validation loss on the run's validation windows and on ``fixture`` (the windows the tests
    re-score), the command of every sitting (``commands`` overrides them), and the fp16 check: weights are stored in half precision when that moves the fixture
    loss by less than 1e-3 nats.
    """
    import json

    from streamlib.config import ModelConfig, config_from_dict, get_preset
    from streamlib.model.accompanist import save_accompanist

    state = load_training_state(state_path)
    run = Run(**_stored_run(state))
    preset = get_preset(state["preset"])
    window = int(state["window"])
    mcfg = config_from_dict(ModelConfig, state["model_config"])
    tables = state["model"]["input_tables"]
    acc = Accompanist(mcfg, tables, run.spec(window), offline=run.offline)
    acc.load_state_dict(state["model"])
    acc.eval()
    val = validation_windows(run.tokens, window, mcfg.n_q, run.val_windows, run.policy, chroma=mcfg.input_chroma,
                             targets=run.targets)
    val_loss = score_windows(acc, val, window)
    fx = None
    if fixture is not None:
        fixture = Path(fixture)
        if not fixture.exists():
            save_val_fixture(validation_windows(run.tokens, preset.train.window_frames, mcfg.n_q, run.val_windows,
                                                run.policy, chroma=mcfg.input_chroma, targets=run.targets),
                             fixture)
        fx = load_val_fixture(fixture)
    fx_loss = score_windows(acc, fx, window) if fx is not None else None
    fp16 = None
    if fx is not None:
        half_acc = Accompanist(mcfg, tables, run.spec(window), offline=run.offline).eval()
        half_acc.load_state_dict({k: v.half().float() if v.is_floating_point() else v for k, v in acc.state_dict().items()})
        fp16 = {"fixture_loss_fp32": fx_loss, "fixture_loss_fp16": score_windows(half_acc, fx, window)}
    use_half = half == "yes" or (half == "auto" and fp16 is not None
                                 and abs(fp16["fixture_loss_fp16"] - fp16["fixture_loss_fp32"]) < 1e-3)
    meta_path = Path(run.tokens) / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    hist = state["history"]
    every = max(1, len(hist) // 100)
    card = {
        "preset": preset.name,
        "run": state["run"],
        "window_frames": window,
        "codec_sha256": state.get("codec_sha256"),
        "data": {"tokens": str(run.tokens), "dataset": meta.get("dataset"), "tracks": meta.get("tracks"),
                 "policy": run.policy, "token_seed": meta.get("seed")},
        "steps": int(state["step"]),
        "batch_size": preset.train.batch_size,
        "wall_seconds": round(float(state["wall_seconds"]), 1),
        "hardware": state.get("hardware"),
        "val_loss": round(val_loss, 5),
        "val_windows": int(val["input"].shape[0]),
        "fixture": None if fixture is None else {"path": Path(fixture).name, "loss": round(fx_loss, 5)},
        "fp16_check": fp16,
        "loss_curve": {key: [r[key] for r in hist[::every]] for key in ("step", "train_loss")},
        "val_curve": [(r["step"], r["val_loss"]) for r in hist if r["val_loss"] != ""],
        "reproduce": commands if commands is not None else list(state.get("commands", [])),
        "lineage": state.get("lineage", []),
        "total": total_training(int(state["step"]), float(state["wall_seconds"]), state.get("hardware"),
                                state.get("lineage", [])),
    }
    save_accompanist(out, acc, card, half=use_half)
    return card


__all__ += ["history_noise_at", "own_history", "card_fixture", "common_frame_losses", "compare_models", "export_model", "total_training", "warm_start_lineage", "input_reliance", "load_val_fixture", "save_val_fixture", "score_windows",
            "swap_inputs", "window_losses"]
