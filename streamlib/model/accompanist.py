"""The accompanist: gated input fusion (Eq. 2-3), the decoder, four heads, and its generator.

Chapter 6 ("The model") teaches this module; chapter 8 drives ``Generator`` from the streaming engine.

Embedding at sequence position j (``streamlib.tokens.visibility`` says which frame sits where)::

    e_x   = sum_q C_q[x_q]                       frozen codec codebook vectors of the input frame (Eq. 2)
    e_y   = sum_q E_q[y_q]                       learned embeddings of the delayed output tokens
    h_j   = LN(W LN(e_x)) + g ⊙ LN(e_y)          Eq. (3), g in R^d initialised to zero

With ``ModelConfig.input_chroma`` (beyond the paper; chapter 7, "Does the model listen?") the input
term also reads the frame's causal chroma c_j (``streamlib.input_chroma``): ``LN(W LN(e_x) + W_c c_j)``.

With ``ModelConfig.present_input`` (t_f > 0 only; beyond the paper; chapter 7, section 7.9) the
input term also reads the **present** input frame, the one sounding with the output frame predicted at
position j (frame f - 1 at the position predicting frame f, as at t_f = 0): ``LN(W LN(e_x) + W_p LN(e_p))``.
Without it a lookahead model finds that frame only t_f positions back, through attention.

A PAD input position uses a learned vector in place of ``W LN(e_x)``; a position whose input has not
arrived yet (inside a k > 1 chunk) carries the output term only, plus, with the present input, that
term alone (``LN(W_p LN(e_p))``): the present frame arrived t_f frames ago. Four linear heads (one matrix)
predict the next delayed step's codes, one level each.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from streamlib.checkpoint import CheckpointError, load_card, load_into, load_weights, save_weights
from streamlib.config import ConfigError, ModelConfig, StreamSpec, config_from_dict
from streamlib.input_chroma import CHROMA_BINS
from streamlib.model.transformer import KVCache, Transformer
from streamlib.paths import checkpoint_dir
from streamlib.tokens.categories import CODE_OFFSET, PAD, instrument_token, vocab_size
from streamlib.tokens.delay import added_latency_frames
from streamlib.tokens.visibility import Aligned, input_offset, output_offset


class Accompanist(nn.Module):
    """Decoder-only accompanist for one (t_f, k) design point, or the offline prefix decoder.

    ``codebook_tables``: per-level tables ``[codebook_size, latent_dim]`` of the codec
    (``CausalCodec.codebook_tables``); the first ``cfg.n_q`` are kept as a frozen buffer.
    ``spec`` is the (t_f, k) the model is trained for; ``offline=True`` makes the prefix decoder of
    paper 4.3 (the whole input first, then the output), for which ``spec`` is ignored.
    """

    def __init__(self, cfg: ModelConfig, codebook_tables: Sequence[Tensor] | Tensor,
                 spec: StreamSpec | None = None, *, offline: bool = False):
        super().__init__()
        tables = torch.stack(list(codebook_tables)) if not isinstance(codebook_tables, Tensor) else codebook_tables
        if tables.dim() != 3 or tables.shape[0] < cfg.n_q:
            raise ConfigError(f"need {cfg.n_q} codebook tables [size, dim], got {tuple(tables.shape)}")
        if spec is None and not offline:
            raise ConfigError("a streaming accompanist needs its StreamSpec (t_f, k)")
        if cfg.present_input and (offline or spec.tf < 1):
            raise ConfigError("the present input is for t_f >= 1: at t_f <= 0 (and offline) the newest input frame "
                              "a position reads is already the present one or older")
        self.cfg, self.spec, self.offline = cfg, spec, offline
        self.codebook_size = int(tables.shape[1])
        latent, d = int(tables.shape[2]), cfg.d_model
        self.register_buffer("input_tables", tables[: cfg.n_q].detach().clone().float())
        self.in_norm = nn.LayerNorm(latent)
        self.in_proj = nn.Linear(latent, d)
        self.in_out_norm = nn.LayerNorm(d)
        self.input_pad = nn.Parameter(torch.randn(d) * 0.02)
        if cfg.input_chroma:
            self.chroma_proj = nn.Linear(CHROMA_BINS, d)
        if cfg.present_input:
            self.present_norm = nn.LayerNorm(latent)
            self.present_proj = nn.Linear(latent, d)
        self.out_embed = nn.ModuleList(nn.Embedding(vocab_size(self.codebook_size), d) for _ in range(cfg.n_q))
        self.out_norm = nn.LayerNorm(d)
        self.gate = nn.Parameter(torch.zeros(d))  # g in R^d, elementwise (Eq. 3)
        self.backbone = Transformer(cfg)
        self.heads = nn.Linear(d, cfg.n_q * self.codebook_size, bias=False)
        for emb in self.out_embed:
            nn.init.normal_(emb.weight, std=0.02)

    # ------------------------------------------------------------------ embedding and forward
    @property
    def n_q(self) -> int:
        """RVQ levels the model reads and writes (``cfg.n_q``; the masked model of chapter 12 has the same)."""
        return self.cfg.n_q

    def codebook_sum(self, input_codes: Tensor) -> Tensor:
        """``e_x = sum_q C_q[x_q]`` (Eq. 2): the frozen codec codebook vectors of input codes ``[B, n_q, L]``."""
        return sum(self.input_tables[q][input_codes[:, q]] for q in range(self.cfg.n_q))

    def present_of(self, input_codes: Tensor, input_pad: Tensor) -> tuple[Tensor, Tensor]:
        """The present input ``(codes [B, n_q, L], pad [B, L])`` of a whole aligned sequence (from position 0):
        the input stream read t_f positions back, PAD before it starts (``cfg.present_input``)."""
        lag = self.spec.tf
        codes, pad = torch.zeros_like(input_codes), torch.ones_like(input_pad)
        codes[..., lag:], pad[..., lag:] = input_codes[..., :-lag], input_pad[..., :-lag]
        return codes, pad

    def embed(self, input_codes: Tensor, input_pad: Tensor, output_tokens: Tensor,
              input_keep: Tensor | None = None, input_features: Tensor | None = None,
              present: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Fused embedding ``[B, L, d]`` (Eq. 3) of aligned streams (see ``streamlib.tokens.visibility``).

        ``input_keep`` (bool, broadcast to ``[B, L]``) False: that position carries no input term.
        ``input_features`` ``[B, 12, L]``: the input's chroma, required by (and only read by) a model
        with ``cfg.input_chroma``. ``present``: the present input ``(codes, pad)`` of these positions, read by a
        model with ``cfg.present_input`` (``present_of`` for a whole sequence).
        """
        n_q = self.cfg.n_q
        h = self.in_proj(self.in_norm(self.codebook_sum(input_codes)))
        if self.cfg.input_chroma:
            if input_features is None:
                raise ConfigError("this accompanist reads the input's chroma (cfg.input_chroma): pass input_features")
            h = h + self.chroma_proj(input_features.transpose(1, 2).to(h.dtype))
        alone = None
        if self.cfg.present_input:
            if present is None:
                raise ConfigError("this accompanist reads the present input (cfg.present_input): pass present")
            codes, pad = present
            e_p = self.present_proj(self.present_norm(self.codebook_sum(codes))).to(h.dtype)
            h = h + e_p * (~pad)[..., None].to(h.dtype)
            if input_keep is not None:  # where the newest frame has not arrived (a k > 1 chunk) the present one stays
                alone = self.in_out_norm(e_p) * (~pad & ~input_pad)[..., None].to(h.dtype)
        h = torch.where(input_pad[..., None], self.input_pad.to(h.dtype), h)
        h = self.in_out_norm(h)
        if input_keep is not None:
            keep = input_keep[..., None]
            h = h * keep.to(h.dtype) if alone is None else torch.where(keep, h, alone)
        e_y = sum(self.out_embed[q](output_tokens[:, q]) for q in range(n_q))
        return h + self.gate * self.out_norm(e_y)

    def logits(self, hidden: Tensor) -> Tensor:
        """``[B, L, d]`` -> code logits ``[B, n_q, L, codebook_size]``."""
        b, n, _ = hidden.shape
        return self.heads(hidden).view(b, n, self.cfg.n_q, self.codebook_size).transpose(1, 2)

    def forward(self, input_codes: Tensor, input_pad: Tensor, output_tokens: Tensor,
                input_keep: Tensor | None = None, cache: KVCache | None = None,
                input_features: Tensor | None = None, present: tuple[Tensor, Tensor] | None = None,
                positions: Tensor | None = None, attention: Tensor | None = None) -> Tensor:
        """Code logits of aligned streams; a model with ``cfg.present_input`` derives ``present`` from a whole
        sequence itself (no ``cache``), and takes it from the caller when it runs on a cache. ``positions`` and
        ``attention``: a pass in another layout than the causal one (``all_chunks``, chapter 7)."""
        if self.cfg.present_input and present is None and cache is None:
            present = self.present_of(input_codes, input_pad)
        x = self.embed(input_codes, input_pad, output_tokens, input_keep, input_features, present)
        return self.logits(self.backbone(x, cache, positions, attention))

    def loss(self, aligned: Aligned, loss_mask: Tensor | None = None, input_keep: Tensor | None = None,
             length: int | None = None) -> tuple[Tensor, Tensor]:
        """Summed cross entropy over the masked targets and their count (see ``masked_loss``)."""
        return masked_loss(self, aligned, loss_mask, input_keep, length)

    # ------------------------------------------------------------------ checks and generation
    def check_codec(self, codec) -> None:
        """Raise ``CheckpointError`` unless ``codec`` has the codebooks this model was trained on."""
        tables = torch.stack(codec.codebook_tables(self.cfg.n_q)).to(self.input_tables)
        # rtol covers checkpoints stored in half precision (fp16 keeps ~3 significant digits)
        if tables.shape != self.input_tables.shape or not torch.allclose(tables, self.input_tables, rtol=2e-3, atol=1e-3):
            raise CheckpointError("this accompanist was trained on another codec's tokens "
                                  "(its frozen input codebooks differ from the codec given)")

    def generator(self, category: int, temperature: float = 1.0, top_k: int = 200, *, fast: bool = False,
                  guidance: float | None = 1.0, **fast_options) -> "Generator":
        """A ``Generator`` for one stream (batch 1) playing ``category``; ``fast=True``: the same API on
        the fast path of chapter 8 (``streamlib.model.fast.FastGenerator``, which takes ``fast_options``);
        ``guidance`` != 1: classifier-free guidance towards the input (see ``Generator``; both paths);
        None: the model's own default (``default_guidance``)."""
        if guidance is None:
            guidance = default_guidance(self)
        if fast:
            from streamlib.model.fast import FastGenerator

            return FastGenerator(self, category, temperature=temperature, top_k=top_k, guidance=guidance,
                                 **fast_options)
        if fast_options:
            raise ConfigError(f"options {sorted(fast_options)} apply to the fast path only (fast=True)")
        return Generator(self, category, temperature=temperature, top_k=top_k, guidance=guidance)


def masked_loss(net: nn.Module, aligned: Aligned, loss_mask: Tensor | None = None, input_keep: Tensor | None = None,
                length: int | None = None, per_window: bool = False, **layout) -> tuple[Tensor, Tensor]:
    """Run ``net`` (an ``Accompanist``, or one wrapped for DDP) on aligned streams; summed cross entropy
    over ``loss_mask`` (default ``aligned.loss_mask``) and the count (``per_window``: one of each per batch
    row). ``length`` keeps only the first positions (a prefix chunk needs nothing after it); ``layout``
    (``positions``, ``attention``) goes to the forward pass (the all-chunks layout)."""
    n = aligned.length if length is None else int(length)
    mask = (aligned.loss_mask if loss_mask is None else loss_mask)[..., :n]
    keep = None if input_keep is None else input_keep[..., :n]
    features = None if aligned.input_features is None else aligned.input_features[..., :n]
    logits = net(aligned.input_codes[..., :n], aligned.input_pad_mask[..., :n], aligned.output_tokens[..., :n], keep,
                 input_features=features, **layout)
    return token_loss(logits, aligned.targets[..., :n], mask, per_window)


def token_loss(logits: Tensor, targets: Tensor, mask: Tensor, per_window: bool = False) -> tuple[Tensor, Tensor]:
    """Summed cross entropy of code ``logits [B, Q, L, size]`` against token ``targets [B, Q, L]``
    where ``mask``, and the number of masked targets; ``per_window``: both as ``[B]``, one per row."""
    codes = (targets - CODE_OFFSET).clamp(min=0)
    ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), codes.reshape(-1), reduction="none")
    ce, mask = ce.view(targets.shape[0], -1), mask.reshape(targets.shape[0], -1)
    if per_window:
        return (ce * mask).sum(1), mask.sum(1)
    return (ce * mask).sum(), mask.sum()


def check_chroma(held: Tensor | None, chroma, n: int, device) -> Tensor | None:
    """``held`` with ``chroma`` ``[12, n]`` appended (a generator's input chroma), or None for a model
    without the chroma path; raises ``ValueError`` when it is missing, extra or misshapen."""
    if held is None:
        if chroma is not None:
            raise ValueError("this accompanist does not read chroma (cfg.input_chroma is off): feed codes only")
        return None
    if chroma is None:
        raise ValueError("this accompanist reads the input's chroma: feed_input(codes, chroma) with "
                         "streamlib.input_chroma.causal_chroma of the same audio")
    chroma = torch.as_tensor(chroma, dtype=torch.float32, device=device)
    if tuple(chroma.shape) != (CHROMA_BINS, n):
        raise ValueError(f"input chroma must be [{CHROMA_BINS}, {n}] (one column per input frame), got {tuple(chroma.shape)}")
    return torch.cat([held, chroma], dim=1)


def check_guidance(guidance: float) -> None:
    """Raise ``ConfigError`` unless the classifier-free guidance scale is a finite number >= 0 (1: none)."""
    if not (math.isfinite(guidance) and guidance >= 0):
        raise ConfigError(f"guidance must be a finite number >= 0, got {guidance}")


def check_sampling(temperature: float, top_k: int) -> None:
    """Raise ``ConfigError`` unless ``temperature > 0`` and ``top_k >= 1``."""
    if temperature <= 0:
        raise ConfigError(f"temperature must be > 0, got {temperature}")
    if top_k < 1:
        raise ConfigError(f"top_k must be >= 1, got {top_k}")


def override_tokens(token: Tensor, step: int, bos: int, forced: Tensor) -> Tensor:
    """Delay step ``step``'s tokens ``[n_q]`` with BOS at levels before their first frame and the
    teacher-forced codes ``forced [n_q, F]`` (``feed_output``) where they cover the frame."""
    frames = step - 1 - torch.arange(token.shape[0], device=token.device)
    token = torch.where(frames < 0, torch.full_like(token, bos), token)
    covered = (frames >= 0) & (frames < forced.shape[1])
    if covered.any():
        lv = covered.nonzero()[:, 0]
        token[lv] = forced[lv, frames[lv]] + CODE_OFFSET
    return token


class Generator:
    """Incremental decoding with a KV cache, driven by the streaming engine (chapter 8).

    ``feed_input(codes [n_q, n], chroma=None)`` appends input frames as they arrive (with their causal
    chroma ``[12, n]`` for a model with ``cfg.input_chroma``); ``feed_output(codes)``
    teacher-forces output frames (a prompt warm start); ``generate(k)`` returns the next ``k``
    output frames ``[n_q, k]``, complete at every level.

    Generation runs in delay-pattern steps: step s holds level q of frame s - 1 - q, so frame f is
    complete after step f + n_q. The first call therefore runs ``k + n_q - 1`` steps, later calls
    ``k``; the logits for step s come from position ``s - 1 + output_offset(tf)`` and see input frames
    up to ``s + tf - 2`` (Eq. 1 with the delay pattern's level offsets). A position fed before its
    input frame had arrived (inside a k > 1 chunk) is re-fed, with its input, once the frame is there:
    that is the layout the prefix decoder was trained on.

    ``guidance`` s != 1: classifier-free guidance (chapter 7). A second pass without the input term
    (its own KV cache) gives log p(y); sampling uses log p(y) + s (log p(y | x) - log p(y)), which for
    s > 1 leans on the input more than the model does by itself. Meaningful for models trained with
    input dropout (``Run.input_dropout``); it doubles the compute per step.
    """

    def __init__(self, acc: Accompanist, category: int, temperature: float = 1.0, top_k: int = 200,
                 guidance: float = 1.0):
        check_sampling(temperature, top_k)
        check_guidance(guidance)
        self.acc, self.temperature, self.top_k = acc, float(temperature), int(top_k)
        self.guidance = float(guidance)
        self.n_q = acc.cfg.n_q
        self.device = acc.input_tables.device
        self.bos = instrument_token(int(category))
        self.inputs = torch.zeros(self.n_q, 0, dtype=torch.long, device=self.device)
        self.chroma = torch.zeros(CHROMA_BINS, 0, device=self.device) if acc.cfg.input_chroma else None
        self.forced = torch.zeros(self.n_q, 0, dtype=torch.long, device=self.device)
        self.steps = torch.full((self.n_q, 1), self.bos, dtype=torch.long, device=self.device)
        self.cache = acc.backbone.new_cache()
        self.free_cache = acc.backbone.new_cache() if self.guidance != 1.0 else None  # the pass without input
        self.null_input = null_input_of(acc)
        self.n_output = 0  # frames returned (or forced) so far
        self.first_missing: int | None = None  # first cached position fed without its (real) input frame
        self.tf = None if acc.offline else acc.spec.tf
        self.pad_after_input = acc.offline  # offline: input positions past the end are PAD, not "not yet"

    @property
    def n_input(self) -> int:
        return int(self.inputs.shape[1])

    def feed_input(self, codes: Tensor, chroma: Tensor | None = None) -> None:
        if codes.dim() != 2 or codes.shape[0] < self.n_q:
            raise ValueError(f"input codes must be [>= {self.n_q}, n], got {tuple(codes.shape)}")
        self.chroma = check_chroma(self.chroma, chroma, codes.shape[1], self.device)
        self.inputs = torch.cat([self.inputs, codes[: self.n_q].to(self.device, torch.long)], dim=1)

    def feed_output(self, codes: Tensor) -> None:
        """Teacher-force the next output frames (before any ``generate`` that would cover them)."""
        if codes.dim() != 2 or codes.shape[0] != self.n_q:
            raise ValueError(f"output codes must be [{self.n_q}, n], got {tuple(codes.shape)}")
        self.forced = torch.cat([self.forced, codes.to(self.device, torch.long)], dim=1)
        self.n_output = int(self.forced.shape[1])

    # -------------------------------------------------------------- internals
    def _offsets(self) -> tuple[int, int]:
        if self.tf is None:  # offline prefix decoder: the whole input, then the output (tf = T + 1)
            self.tf = self.n_input + 1
        return input_offset(self.tf), output_offset(self.tf)

    def _feed(self, start: int, stop: int) -> Tensor:
        """Run positions ``start .. stop-1`` through the model; the logits of the last one."""
        in_off, out_off = self._offsets()
        pos = torch.arange(start, stop, device=self.device)
        frame = pos - in_off
        arrived = (frame >= 0) & (frame < self.n_input)
        pad = (frame < 0) | ((frame >= self.n_input) if self.pad_after_input else torch.zeros_like(arrived))
        keep = arrived | pad
        codes = torch.zeros(self.n_q, len(pos), dtype=torch.long, device=self.device)
        features = None if self.chroma is None else torch.zeros(CHROMA_BINS, len(pos), device=self.device)
        if arrived.any():
            codes[:, arrived] = self.inputs[:, frame[arrived]]
            if features is not None:
                features[:, arrived] = self.chroma[:, frame[arrived]]
        features = None if features is None else features[None]
        present = None
        if self.acc.cfg.present_input:  # the frame sounding with the prediction: t_f frames before the newest
            back = frame - self.tf
            seen = (back >= 0) & (back < self.n_input)
            present_codes = torch.zeros(self.n_q, len(pos), dtype=torch.long, device=self.device)
            present_codes[:, seen] = self.inputs[:, back[seen]]
            present = (present_codes[None], (~seen)[None])
        step = pos - out_off
        tokens = torch.full((self.n_q, len(pos)), PAD, dtype=torch.long, device=self.device)
        has = step >= 0
        tokens[:, has] = self.steps[:, step[has]]
        missing = (~keep).nonzero()
        if len(missing) and self.first_missing is None:
            self.first_missing = start + int(missing[0])
        logits = self.acc(codes[None], pad[None], tokens[None], keep[None], cache=self.cache,
                          input_features=features, present=present)[0, :, -1].float()
        if self.free_cache is None:
            return logits  # [n_q, size]
        # without the input, read as trained: the no-input embedding everywhere ("pad"), or no input term ("zero")
        free_pad, free_keep = (torch.ones_like(pad), keep) if self.null_input == "pad" else (pad, torch.zeros_like(keep))
        free = self.acc(codes[None], free_pad[None], tokens[None], free_keep[None], cache=self.free_cache,
                        input_features=features, present=present)
        free = F.log_softmax(free[0, :, -1].float(), dim=-1)
        return free + self.guidance * (F.log_softmax(logits, dim=-1) - free)

    def _sample(self, logits: Tensor, step: int) -> Tensor:
        probs_in = logits / self.temperature
        k = min(self.top_k, probs_in.shape[-1])
        top, idx = probs_in.topk(k, dim=-1)
        choice = torch.multinomial(F.softmax(top, dim=-1), 1)[:, 0]
        token = idx.gather(-1, choice[:, None])[:, 0] + CODE_OFFSET
        return override_tokens(token, step, self.bos, self.forced)

    @torch.inference_mode()
    def generate(self, k: int) -> Tensor:
        """The next ``k`` output frames ``[n_q, k]`` (codes), complete at every level."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        _, out_off = self._offsets()
        if self.first_missing is not None and self.first_missing - input_offset(self.tf) < self.n_input:
            self.cache.truncate(self.first_missing)  # its input has arrived: re-feed with it
            if self.free_cache is not None:
                self.free_cache.truncate(self.first_missing)
            self.first_missing = None
        last_step = self.n_output + k - 1 + self.n_q  # frame n_output + k - 1 is complete after it
        while self.steps.shape[1] <= last_step:
            s = self.steps.shape[1]
            logits = self._feed(self.cache.next_position, s - 1 + out_off + 1)
            self.steps = torch.cat([self.steps, self._sample(logits, s)[:, None]], dim=1)
        f0 = self.n_output
        idx = torch.arange(f0, f0 + k, device=self.device)[None, :] + 1 + torch.arange(self.n_q, device=self.device)[:, None]
        out = self.steps.gather(1, idx) - CODE_OFFSET
        self.n_output += k
        return out


# ---------------------------------------------------------------------- checkpoints


def save_accompanist(path: str | Path, acc: Accompanist, card: dict, half: bool = False) -> None:
    """Weights (safetensors) + card; the card gets the model config, (t_f, k) and kind."""
    import dataclasses

    card = dict(card)
    card.update(kind="accompanist", model_config=dataclasses.asdict(acc.cfg), offline=acc.offline,
                spec=None if acc.spec is None else dataclasses.asdict(acc.spec))
    save_weights(path, acc.state_dict(), card, half=half)


NULL_INPUTS = ("pad", "zero")  # what a window trained without its input reads (``train.Run.null_input``)
DEFAULT_GUIDANCE = 4.0  # chosen among 1, 2 and 4 on 48 held-out clips (docs/listening_experiments.md, chapter 7)


def _run_card(acc) -> dict:
    return (getattr(acc, "card", None) or {}).get("run") or {}


def default_guidance(acc) -> float:
    """The guidance scale ``acc`` plays with unless told otherwise (chapter 7): ``DEFAULT_GUIDANCE`` for a model
    trained with input dropout (its card's ``run.input_dropout`` > 0), else 1 (none: without dropout the pass
    without input means nothing)."""
    return DEFAULT_GUIDANCE if float(_run_card(acc).get("input_dropout") or 0.0) > 0 else 1.0


def trained_targets(acc) -> list[int]:
    """The target categories ``acc`` was trained to play (``train --targets``); empty: every target."""
    return [int(c) for c in _run_card(acc).get("targets") or []]


def null_input_of(acc: Accompanist) -> str:
    """What ``acc`` read in the windows it was trained without its input (chapter 7): "pad" (the learned
    no-input embedding at every position) or "zero" (no input term); classifier-free guidance's pass
    without the input must match it. A card written before the choice existed means "zero"; a model
    without a card (made in this process) the default, "pad"."""
    if getattr(acc, "card", None) is None:
        return "pad"
    return _run_card(acc).get("null_input", "zero")


def load_accompanist(path: str | Path, device: str | torch.device | None = None) -> Accompanist:
    """Load a checkpoint written by ``save_accompanist`` (safetensors; no pickle), in eval mode."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"accompanist checkpoint {path} does not exist (the shipped ones are in "
                              f"{checkpoint_dir() / 'models'})")
    card = load_card(path)
    if card.get("kind") != "accompanist":
        raise CheckpointError(f"{path} is a {card.get('kind')!r} checkpoint, not an accompanist")
    cfg = config_from_dict(ModelConfig, card["model_config"])
    spec = None if card.get("spec") is None else StreamSpec(**card["spec"])
    state = load_weights(path)
    if "input_tables" not in state:
        raise CheckpointError(f"{path} has no input_tables: not an accompanist checkpoint")
    acc = Accompanist(cfg, state["input_tables"], spec, offline=bool(card.get("offline", False)))
    load_into(acc, state, what=str(path))
    acc.card = card
    return acc.to(device or "cpu").eval()


def latency_steps(acc: Accompanist) -> int:
    """Extra frames between a frame's first (level-0) step and its completion: n_q - 1."""
    return added_latency_frames(acc.cfg.n_q)


__all__ = ["DEFAULT_GUIDANCE", "NULL_INPUTS", "Accompanist", "Generator", "check_chroma", "check_guidance",
           "check_sampling", "default_guidance", "trained_targets", "latency_steps",
           "load_accompanist", "masked_loss", "null_input_of", "override_tokens", "save_accompanist", "token_loss"]
