"""The offline ceiling: a StemGen-style masked model with classifier-free guidance (chapter 12).

Where the accompanist of chapter 6 writes one frame after another and sees the input only up to
t_f, the masked model (StemGen, paper §4.3 and A.7; REFERENCE §7) sees the **whole** input window
and fills in the whole output window in a few parallel steps: t_f = T, k = T in Eq. (1).

Embedding at frame t (one position per frame: input and output of a frame share it)::

    e_x = sum_q C_q[x_q]                            frozen codec codebooks (as Eq. 2)
    e_y = sum_q E_q[y_q]                            learned, with one extra MASK entry per level
    h_t = LN(W LN(e_x)) * keep + g ⊙ LN(e_y) + c    c: learned embedding of the instrument category

``keep`` is 0 for a window whose input is dropped (20 % in training; the unconditional half of
classifier-free guidance at sampling). ``g`` starts at one, not zero as in the accompanist: the
output term never holds the answer at a scored position (it is masked there), so there is no copying
to guard against, and the kept lower levels must be read from the first step. The backbone is the
accompanist's transformer with ``causal=False``; ``n_q`` linear heads predict each level's code.

Training mask (StemGen / VampNet, ``draw_mask``): per window a level L ~ U{0..n_q-1} and
u ~ U(0, 1); positions of level L are masked with probability cos(u pi / 2), every level above L is
masked completely, levels below are kept. The loss is the cross entropy on the masked positions of
level L only: the levels above are masked for the model's *input* (at sampling time they are still
unknown when level L is drawn) but predicting them from nothing is the task of a window that draws
that level, so they carry no loss here.

Sampling (``sample_masked``): level by level, ``steps[l]`` iterations each. Every iteration samples
a code for every masked position of the level (softmax at temperature 1, guided logits
``uncond + s (cond - uncond)``), scores it with ``log p + tau * Gumbel`` (VampNet's confidence, paper
A.7; tau = ``temperatures[l]`` (1 - (i+1)/S), linear down to 0 at the level's last iteration, as
VampNet anneals it) and keeps the most
confident ones so that ``floor(T cos(pi/2 (i+1)/S))`` positions stay masked after iteration i (the
cosine schedule; none after the last). Deterministic for a given seed.

The function the sweep calls::

    codes = generate_masked(model, input_codes, category, steps=None, cfg_scale=None, seed=0)
    # input_codes [>= n_q, T] -> codes [n_q, T]; None: the model's own settings (card)
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from streamlib.checkpoint import CheckpointError, load_card, load_into, load_weights, save_weights
from streamlib.config import ConfigError, ModelConfig, TrainConfig, config_from_dict, get_preset
from streamlib.model.transformer import Transformer
from streamlib.paths import checkpoint_dir
from streamlib.tokens.categories import N_CATEGORIES, category_name


# ----------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class MaskedConfig:
    """The masked model: a backbone shape (``ModelConfig``, reused) and its training/sampling settings.

    ``steps`` and ``temperatures`` are per RVQ level (sampling iterations, maximum Gumbel noise
    temperature); ``cfg_scale`` is the default classifier-free guidance scale; ``input_dropout`` the
    share of training windows whose input embedding is zeroed.
    """

    model: ModelConfig
    input_dropout: float = 0.2
    steps: tuple[int, ...] = (16, 8, 4, 4)
    temperatures: tuple[float, ...] = (8.0, 8.0, 4.0, 4.0)
    cfg_scale: float = 2.0

    def __post_init__(self) -> None:
        check_sampling_plan(self.steps, self.temperatures, self.model.n_q)
        check_cfg_scale(self.cfg_scale)
        if not 0.0 <= self.input_dropout < 1.0:
            raise ConfigError(f"input_dropout must be in [0, 1), got {self.input_dropout}")


@dataclass(frozen=True)
class MaskedPreset:
    """A masked model configuration and the optimiser settings it is trained with."""

    name: str
    model: MaskedConfig
    train: TrainConfig


def masked_config_from_dict(data: dict) -> MaskedConfig:
    """Rebuild a ``MaskedConfig`` from a card or training state (nested ``model``)."""
    data = dict(data)
    model = config_from_dict(ModelConfig, data.pop("model"))
    rest = config_from_dict(_Flat, data)
    return MaskedConfig(model=model, **dataclasses.asdict(rest))


@dataclass(frozen=True)
class _Flat:  # the fields of MaskedConfig besides ``model``, for config_from_dict's unknown-key check
    input_dropout: float = 0.2
    steps: tuple[int, ...] = (16, 8, 4, 4)
    temperatures: tuple[float, ...] = (8.0, 8.0, 4.0, 4.0)
    cfg_scale: float = 2.0


def check_sampling_plan(steps: Sequence[int], temperatures: Sequence[float], n_q: int) -> None:
    """Raise ``ConfigError`` unless there is one step count >= 1 and one temperature >= 0 per level."""
    steps, temperatures = tuple(steps), tuple(temperatures)
    if len(steps) != n_q or len(temperatures) != n_q:
        raise ConfigError(f"need one step count and one temperature per level ({n_q}), got steps {list(steps)} "
                          f"and temperatures {list(temperatures)}")
    if any(int(s) != s or s < 1 for s in steps):
        raise ConfigError(f"sampling steps must be whole numbers >= 1 per level, got {list(steps)}")
    if any(not math.isfinite(t) or t < 0 for t in temperatures):
        raise ConfigError(f"noise temperatures must be finite and >= 0, got {list(temperatures)}")


def check_cfg_scale(scale: float) -> None:
    """Raise ``ConfigError`` unless the guidance scale is a finite number >= 0."""
    if not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale < 0:
        raise ConfigError(f"cfg_scale must be a finite number >= 0 (1 = no guidance), got {scale!r}")


def _masked_presets() -> dict[str, MaskedPreset]:
    paper, book, debug = get_preset("paper"), get_preset("book"), get_preset("debug")
    return {
        # paper §4.3: 20 layers, same heads and width as the streaming models; batch 96; A.7's sampling plan
        "paper": MaskedPreset("paper", MaskedConfig(dataclasses.replace(paper.model, n_layers=20),
                                                     steps=(128, 64, 32, 32), temperatures=(8.0, 8.0, 4.0, 4.0)),
                              dataclasses.replace(paper.train, batch_size=96)),
        # the book's streaming shape (4 x 256) and schedule; 32 sampling iterations instead of 256
        "book": MaskedPreset("book", MaskedConfig(book.model, steps=(16, 8, 4, 4)), book.train),
        "debug": MaskedPreset("debug", MaskedConfig(debug.model, steps=(4, 2, 2, 2)), debug.train),
    }


MASKED_PRESETS: dict[str, MaskedPreset] = _masked_presets()


def masked_preset(name: str) -> MaskedPreset:
    """Look up a masked-model preset (``paper``, ``book``, ``debug``) with a clear error."""
    try:
        return MASKED_PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown masked preset {name!r}; choose one of {sorted(MASKED_PRESETS)}") from None


# ----------------------------------------------------------------------------- the model


class MaskedAccompanist(nn.Module):
    """Bidirectional masked model over aligned input and output codes of one window (chapter 12).

    ``codebook_tables``: the codec's per-level tables ``[codebook_size, latent]`` (frozen, as in the
    accompanist). ``forward(input_codes, output_codes, category, input_keep=None)`` takes codes
    ``[B, n_q, T]`` (output codes may hold ``self.mask_id`` = ``codebook_size``), categories ``[B]``
    and returns code logits ``[B, n_q, T, codebook_size]``.
    """

    def __init__(self, cfg: MaskedConfig, codebook_tables: Sequence[Tensor] | Tensor):
        super().__init__()
        mcfg = cfg.model
        tables = torch.stack(list(codebook_tables)) if not isinstance(codebook_tables, Tensor) else codebook_tables
        if tables.dim() != 3 or tables.shape[0] < mcfg.n_q:
            raise ConfigError(f"need {mcfg.n_q} codebook tables [size, dim], got {tuple(tables.shape)}")
        self.cfg = cfg
        self.n_q = mcfg.n_q
        self.codebook_size = int(tables.shape[1])
        self.mask_id = self.codebook_size  # the extra output embedding: "not decided yet"
        latent, d = int(tables.shape[2]), mcfg.d_model
        self.register_buffer("input_tables", tables[: mcfg.n_q].detach().clone().float())
        self.in_norm = nn.LayerNorm(latent)
        self.in_proj = nn.Linear(latent, d)
        self.in_out_norm = nn.LayerNorm(d)
        self.out_embed = nn.ModuleList(nn.Embedding(self.codebook_size + 1, d) for _ in range(mcfg.n_q))
        self.out_norm = nn.LayerNorm(d)
        self.gate = nn.Parameter(torch.ones(d))
        self.category_embed = nn.Embedding(N_CATEGORIES, d)
        self.backbone = Transformer(mcfg, causal=False)
        self.heads = nn.Linear(d, mcfg.n_q * self.codebook_size, bias=False)
        for emb in [*self.out_embed, self.category_embed]:
            nn.init.normal_(emb.weight, std=0.02)

    def embed(self, input_codes: Tensor, output_codes: Tensor, category: Tensor,
              input_keep: Tensor | None = None) -> Tensor:
        """Fused embedding ``[B, T, d]``; ``input_keep`` (bool ``[B]``) False zeroes a window's input term."""
        e_x = sum(self.input_tables[q][input_codes[:, q]] for q in range(self.n_q))
        h = self.in_out_norm(self.in_proj(self.in_norm(e_x)))
        if input_keep is not None:
            h = h * input_keep.to(h.dtype)[:, None, None]
        e_y = sum(self.out_embed[q](output_codes[:, q]) for q in range(self.n_q))
        return h + self.gate * self.out_norm(e_y) + self.category_embed(category)[:, None]

    def forward(self, input_codes: Tensor, output_codes: Tensor, category: Tensor,
                input_keep: Tensor | None = None, level: int | None = None) -> Tensor:
        """Code logits ``[B, n_q, T, size]``; with ``level``, that level's only, ``[B, T, size]`` (sampling
        needs one level per iteration; the heads are a quarter of a book-size pass)."""
        x = self.backbone(self.embed(input_codes, output_codes, category, input_keep))
        b, n, _ = x.shape
        if level is not None:
            k = self.codebook_size
            return F.linear(x, self.heads.weight[level * k : (level + 1) * k])
        return self.heads(x).view(b, n, self.n_q, self.codebook_size).transpose(1, 2)

    def check_codec(self, codec) -> None:
        """Raise ``CheckpointError`` unless ``codec`` has the codebooks this model was trained on."""
        tables = torch.stack(codec.codebook_tables(self.n_q)).to(self.input_tables)
        if tables.shape != self.input_tables.shape or not torch.allclose(tables, self.input_tables, rtol=2e-3, atol=1e-3):
            raise CheckpointError("this masked model was trained on another codec's tokens "
                                  "(its frozen input codebooks differ from the codec given)")

    def check_codes(self, codes: Tensor, name: str = "input codes") -> Tensor:
        """``codes [>= n_q, T]`` as int64 ``[n_q, T]`` on the model's device, or a ``ConfigError`` saying why not."""
        if not isinstance(codes, Tensor) or codes.dim() != 2 or codes.shape[0] < self.n_q or codes.shape[1] < 1:
            shape = tuple(codes.shape) if isinstance(codes, Tensor) else type(codes).__name__
            raise ConfigError(f"{name} must be a tensor [levels >= {self.n_q}, frames >= 1], got {shape}")
        if codes.is_floating_point():
            raise ConfigError(f"{name} must be integer codes, got {codes.dtype}")
        codes = codes[: self.n_q].long()
        if int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size:
            raise ConfigError(f"{name} must lie in 0..{self.codebook_size - 1}, got {int(codes.min())}..{int(codes.max())}")
        return codes.to(self.input_tables.device)


# ----------------------------------------------------------------------------- training mask and loss


def draw_mask(rng: np.random.Generator, batch: int, n_q: int, frames: int) -> tuple[Tensor, Tensor]:
    """The StemGen/VampNet training mask: ``(masked [B, n_q, T] bool, level [B])``.

    Per window: level L ~ U{0..n_q-1}; u ~ U(0, 1); level L's positions masked with probability
    cos(u pi / 2) (on average 2/pi); levels above L all masked; levels below kept.
    """
    level = rng.integers(0, n_q, size=batch)
    p = np.cos(rng.random(batch) * np.pi / 2)
    coin = rng.random((batch, frames)) < p[:, None]
    lv = np.arange(n_q)[None, :, None]
    masked = (lv > level[:, None, None]) | ((lv == level[:, None, None]) & coin[:, None, :])
    return torch.from_numpy(masked), torch.from_numpy(level.astype(np.int64))


def draw_input_keep(rng: np.random.Generator, batch: int, dropout: float) -> Tensor:
    """``[B]`` bool: False for a window whose input is dropped (probability ``dropout``)."""
    return torch.from_numpy(rng.random(batch) >= dropout)


def masked_model_loss(model: nn.Module, inputs: Tensor, targets: Tensor, category: Tensor, masked: Tensor,
                      level: Tensor, input_keep: Tensor | None = None,
                      per_window: bool = False) -> tuple[Tensor, Tensor]:
    """Summed cross entropy on the masked positions of each window's level L, and their count
    (``per_window``: both as ``[B]``, one per window)."""
    mask_id = model.mask_id
    levels = torch.arange(targets.shape[1], device=targets.device)[None, :, None]
    scored = masked & (levels == level[:, None, None])
    logits = model(inputs, torch.where(masked, torch.full_like(targets, mask_id), targets), category, input_keep)
    if per_window:
        ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
        return (ce.view(targets.shape) * scored).sum((1, 2)), scored.sum((1, 2))
    return F.cross_entropy(logits[scored].float(), targets[scored], reduction="sum"), scored.sum()


# ----------------------------------------------------------------------------- sampling


@torch.inference_mode()
def guided_logits(model: MaskedAccompanist, input_codes: Tensor, output_codes: Tensor, category: Tensor,
                  cfg_scale: float, level: int | None = None) -> Tensor:
    """Classifier-free guidance: ``uncond + s (cond - uncond)`` (one batched pass for both halves).

    ``cond`` reads the input, ``uncond`` has it zeroed (as input dropout did in training); scale 1 is the
    conditional model alone (one pass), scale 0 the unconditional one. ``level``: that level's logits only.
    """
    check_cfg_scale(cfg_scale)
    if cfg_scale == 1.0:
        return model(input_codes, output_codes, category, level=level)
    b = input_codes.shape[0]
    keep = torch.arange(2 * b, device=input_codes.device) < b
    both = model(input_codes.repeat(2, 1, 1), output_codes.repeat(2, 1, 1), category.repeat(2), keep, level=level)
    cond, uncond = both[:b].float(), both[b:].float()
    return uncond + cfg_scale * (cond - uncond)


def still_masked(frames: int, step: int, steps: int) -> int:
    """How many of a level's ``frames`` stay masked after iteration ``step`` (0-based) of ``steps``:
    ``floor(T cos(pi/2 (step+1)/steps))``, 0 after the last."""
    if step + 1 >= steps:
        return 0
    return int(math.floor(frames * math.cos(math.pi / 2 * (step + 1) / steps)))


@dataclass
class MaskedSample:
    """What ``sample_masked`` produced: the codes, and when each token was fixed.

    ``fixed_at [n_q, T]``: the global iteration (0 .. sum(steps) - 1) at which each token was fixed;
    ``level_of_step[i]``: the level iteration i worked on; ``seconds``: wall time of the sampling.
    """

    codes: Tensor
    fixed_at: Tensor
    steps: tuple[int, ...]
    temperatures: tuple[float, ...]
    cfg_scale: float
    seconds: float

    @property
    def level_of_step(self) -> list[int]:
        return [q for q, s in enumerate(self.steps) for _ in range(s)]

    def state_after(self, step: int) -> Tensor:
        """Codes ``[n_q, T]`` as they stood after global iteration ``step``, with -1 where still masked."""
        return torch.where(self.fixed_at <= step, self.codes, torch.full_like(self.codes, -1))


@torch.inference_mode()
def sample_masked(model: MaskedAccompanist, input_codes: Tensor, category: int, *,
                  steps: Sequence[int] | None = None, temperatures: Sequence[float] | None = None,
                  cfg_scale: float | None = None, seed: int = 0, progress: bool = False) -> MaskedSample:
    """Fill one window's output codes by confidence-ordered iterative unmasking (VampNet style; chapter 12).

    ``input_codes [>= n_q, T]`` with T <= the model's ``max_frames``; ``None`` settings are the
    model's own (``model.cfg``). Returns the codes and the iteration at which each was fixed.
    """
    steps = tuple(model.cfg.steps if steps is None else steps)
    temps = tuple(float(t) for t in (model.cfg.temperatures if temperatures is None else temperatures))
    scale = model.cfg.cfg_scale if cfg_scale is None else cfg_scale
    check_sampling_plan(steps, temps, model.n_q)
    check_cfg_scale(scale)
    steps, scale = tuple(int(s) for s in steps), float(scale)
    x = model.check_codes(input_codes)[None]
    frames = x.shape[-1]
    if frames > model.cfg.model.max_frames:
        raise ConfigError(f"{frames} frames exceed the masked model's window of {model.cfg.model.max_frames}; "
                          "use generate_masked, which goes window by window")
    category_name(category)  # TokenError for an id out of range
    from tqdm.auto import tqdm

    device = x.device
    cat = torch.tensor([int(category)], device=device)
    out = torch.full_like(x, model.mask_id)
    fixed_at = torch.full((model.n_q, frames), -1, dtype=torch.long)
    gen = torch.Generator().manual_seed(int(seed))
    started = time.perf_counter()
    bar = tqdm(total=sum(steps), desc="masked sampling", disable=not progress, leave=False)
    step_index = 0
    was = model.training
    model.eval()
    try:
        for level, (n_steps, tau) in enumerate(zip(steps, temps)):
            for i in range(n_steps):
                logits = guided_logits(model, x, out, cat, scale, level=level)[0].float().cpu()  # [T, K]
                logp = F.log_softmax(logits, dim=-1)
                sampled = torch.multinomial(logp.exp(), 1, generator=gen)[:, 0]
                noise = -torch.log(-torch.log(torch.rand(frames, generator=gen).clamp(1e-10, 1 - 1e-10)))
                temperature = tau * (1.0 - (i + 1) / n_steps)  # linear to 0 over the level's steps
                confidence = logp.gather(-1, sampled[:, None])[:, 0] + temperature * noise
                open_ = (out[0, level] == model.mask_id).cpu()
                n_fix = int(open_.sum()) - still_masked(frames, i, n_steps)
                if n_fix > 0:
                    pick = confidence.masked_fill(~open_, -math.inf).topk(n_fix).indices
                    out[0, level, pick.to(device)] = sampled[pick].to(device)
                    fixed_at[level, pick] = step_index
                step_index += 1
                bar.update(1)
    finally:
        bar.close()
        model.train(was)
    return MaskedSample(out[0].cpu(), fixed_at, steps, temps, scale, time.perf_counter() - started)


def generate_masked(model: MaskedAccompanist, input_codes: Tensor, category: int, *,
                    steps: Sequence[int] | None = None, cfg_scale: float | None = None, seed: int = 0,
                    temperatures: Sequence[float] | None = None, progress: bool = False) -> Tensor:
    """The offline ceiling's output codes ``[n_q, T]`` for ``input_codes [>= n_q, T]`` (chapter 12; the sweep's call).

    ``category``: the instrument category id to play (``streamlib.tokens.categories``); ``steps`` per
    level (default: the model's, e.g. ``(16, 8, 4, 4)`` for the book preset, ``(128, 64, 32, 32)``
    for the paper's); ``cfg_scale``: guidance scale (default 2.0; 1 = none); ``seed``: the same seed
    gives the same codes. Inputs longer than the model's window (``max_frames``) are generated in
    consecutive windows of equal length, independently (seed + window index). Not real time: the
    whole input must be there first, and it costs ``sum(steps)`` passes (twice that with guidance).
    """
    codes = model.check_codes(input_codes)
    frames, limit = codes.shape[1], model.cfg.model.max_frames
    n_windows = -(-frames // limit)
    bounds = np.linspace(0, frames, n_windows + 1).round().astype(int)
    parts = [sample_masked(model, codes[:, lo:hi], category, steps=steps, temperatures=temperatures,
                           cfg_scale=cfg_scale, seed=seed + w, progress=progress).codes
             for w, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:]))]
    return torch.cat(parts, dim=1)


# ----------------------------------------------------------------------------- checkpoints


def default_masked_path() -> Path:
    """Where the book's masked model is shipped: ``checkpoints/models/book_masked.safetensors``."""
    return checkpoint_dir() / "models" / "book_masked.safetensors"


def save_masked(path: str | Path, model: MaskedAccompanist, card: dict, half: bool = False) -> None:
    """Weights (safetensors) + card; the card gets ``kind = "masked"`` and the masked config."""
    card = dict(card)
    card.update(kind="masked", masked_config=dataclasses.asdict(model.cfg))
    save_weights(path, model.state_dict(), card, half=half)


def load_masked(path: str | Path | None = None, device: str | torch.device | None = None) -> MaskedAccompanist:
    """Load a checkpoint written by ``save_masked`` (default: the shipped one), in eval mode."""
    path = Path(path) if path is not None else default_masked_path()
    if not path.exists():
        raise CheckpointError(f"masked model checkpoint {path} does not exist (train one: python -m streamlib masked train)")
    card = load_card(path)
    if card.get("kind") != "masked":
        raise CheckpointError(f"{path} is a checkpoint of kind {card.get('kind')!r}, not a masked model")
    cfg = masked_config_from_dict(card["masked_config"])
    state = load_weights(path)
    if "input_tables" not in state:
        raise CheckpointError(f"{path} has no input_tables: not a masked model checkpoint")
    model = MaskedAccompanist(cfg, state["input_tables"])
    load_into(model, state, what=str(path))
    model.card = card
    return model.to(device or "cpu").eval()


__all__ = [
    "MASKED_PRESETS", "MaskedAccompanist", "MaskedConfig", "MaskedPreset", "MaskedSample", "check_cfg_scale",
    "check_sampling_plan", "default_masked_path", "draw_input_keep", "draw_mask", "generate_masked", "guided_logits",
    "load_masked", "masked_config_from_dict", "masked_model_loss", "masked_preset", "sample_masked", "save_masked",
    "still_masked",
]
