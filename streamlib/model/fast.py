"""The fast decode path (chapter 8, "The fast path"): one position per call on a static KV cache,
weights folded once, compiled before the clock starts, behind the ``Generator`` API.

The plain ``Generator`` (``accompanist.py``) runs the training model for every position: small tensor
allocations, a KV cache grown by ``torch.cat``, delay-pattern bookkeeping and sampling in Python, a few
hundred ATen ops per step. At the book size (4 x 256) a step costs per-op overhead, not arithmetic.
Here the same computation is arranged for a stream:

* ``StaticCache``: keys and values of every layer, preallocated as a ring of ``window`` slots: position
  p lives in slot ``p % window``. Keys are stored rotated (rotary positions), and attention does not
  depend on the order of its keys, so the ring is exactly the plain cache's sliding window: a query at
  p attends to itself and to every slot holding a position below p -- the ``window`` positions before
  it (its own keys are stored after the step, over the one that just left the window). ``truncate``
  (the k > 1 re-feed) only moves a counter: slots holding positions >= p are masked out until re-fed,
  and every position the plain cache would have dropped has been overwritten.
* ``FastDecoder``: the weights folded once -- the ``n_q`` input codebooks and the ``n_q`` output
  embeddings each stacked into one table (one gather instead of four), the blocks' fused qkv and
  gate-up matrices used as they are -- and ``forward``, one position end to end: gated input fusion
  (Eq. 3), the blocks, the heads and top-k sampling by the Gumbel-max trick (noise drawn in blocks
  ahead of time), so the whole step is one graph.
* ``torch.compile`` (inductor, weights frozen into the graph): ``FastGenerator.warm_up`` compiles and
  runs it before the clock starts; if compiling fails, the same ``forward`` runs eagerly, with a note.
* ``FastGenerator``: the ``Generator`` API over preallocated buffers; per position it picks rows.
* ``GuidedDecoder``: classifier-free guidance (chapter 7) on this path -- the step's pass with the input
  and its pass without it (a second static cache) in one graph, their log-probabilities combined
  before sampling, as the plain ``Generator`` does with two passes.

Weights are a snapshot taken when the decoder is built (``fast_decoder`` keeps one per model and
dtype): re-build after changing them. bf16 weights are used only where ``bf16_supported`` says the CPU
(or GPU) has native bf16; the default elsewhere is fp32.
"""

from __future__ import annotations

import contextlib
import math
import weakref
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from streamlib.input_chroma import CHROMA_BINS
from streamlib.model.accompanist import (Accompanist, check_chroma, check_guidance, check_sampling, null_input_of,
                                         override_tokens)
from streamlib.tokens.categories import CODE_OFFSET, PAD, instrument_token
from streamlib.tokens.visibility import input_offset, output_offset

NOISE_BLOCK = 256  # sampling noise is drawn for this many positions at a time
MAX_COMPILED = 32  # models per process with a compiled step; more run eagerly (with a note)


class StaticCache:
    """Preallocated keys ``[layers, kv heads, head dim, window]`` and values ``[layers, kv heads, window,
    head dim]`` used as a ring. Keys are stored transposed so that both attention products read their
    cache along its contiguous last axis (see ``_attend``)."""

    def __init__(self, n_layers: int, n_kv: int, head_dim: int, window: int, dtype: torch.dtype,
                 device: torch.device):
        self.window = int(window)
        self.keys = torch.zeros(n_layers, n_kv, head_dim, self.window, dtype=dtype, device=device)
        self.values = torch.zeros(n_layers, n_kv, self.window, head_dim, dtype=dtype, device=device)
        self.slot_pos = torch.full((self.window,), -1, dtype=torch.long, device=device)  # position held, -1: none
        self.next_position = 0
        self.dropped = 0  # positions below this have slid out of the window

    def truncate(self, n_positions: int) -> None:
        """Forget every position from ``n_positions`` on (as ``KVCache.truncate``)."""
        if not self.dropped <= n_positions <= self.next_position:
            raise ValueError(f"cannot truncate to position {n_positions}: cache holds "
                             f"{self.dropped}..{self.next_position - 1}")
        self.next_position = n_positions


class FastDecoder(nn.Module):
    """An ``Accompanist``'s weights folded for one-position decoding (see the module docstring)."""

    def __init__(self, acc: Accompanist, dtype: torch.dtype = torch.float32):
        super().__init__()
        cfg = acc.cfg
        self.n_q, self.size = cfg.n_q, acc.codebook_size
        self.n_heads, self.n_kv = cfg.n_heads, cfg.n_kv_heads
        self.head_dim = cfg.d_model // cfg.n_heads
        self.n_layers, self.window, self.dtype = cfg.n_layers, cfg.max_frames, dtype

        def keep(t: Tensor) -> Tensor:
            return t.detach().to(dtype).clone()

        tables = acc.input_tables  # [n_q, size, latent], one table with per-level offsets
        self.register_buffer("in_table", keep(tables.reshape(-1, tables.shape[-1])))
        self.register_buffer("in_offsets", torch.arange(self.n_q) * tables.shape[1])
        vocab = acc.out_embed[0].num_embeddings
        self.register_buffer("out_table", keep(torch.cat([e.weight for e in acc.out_embed])))
        self.register_buffer("out_offsets", torch.arange(self.n_q) * vocab)
        self.in_norm, self.in_proj = acc.in_norm, acc.in_proj
        self.chroma_proj = acc.chroma_proj if cfg.input_chroma else None  # the chroma input path (fixed per model)
        self.present = (acc.present_norm, acc.present_proj) if cfg.present_input else None  # the present input path
        self.in_out_norm, self.out_norm = acc.in_out_norm, acc.out_norm
        self.register_buffer("input_pad", keep(acc.input_pad))
        self.register_buffer("gate", keep(acc.gate))
        self.blocks = acc.backbone.blocks
        self.norm, self.heads = acc.backbone.norm, acc.heads
        self.to(dtype)
        d = self.head_dim  # rotary angles in fp32, as ``transformer.rotary``
        self.register_buffer("inv_freq", 10_000.0 ** (-torch.arange(0, d, 2, dtype=torch.float32) / d))

    @classmethod
    def build(cls, acc: Accompanist, dtype: torch.dtype) -> "FastDecoder":
        """A decoder over a deep copy of ``acc``'s modules (the accompanist itself is untouched)."""
        import copy

        return cls(copy.deepcopy(acc).eval().requires_grad_(False), dtype)

    def new_cache(self) -> StaticCache:
        return StaticCache(self.n_layers, self.n_kv, self.head_dim, self.window, self.dtype,
                           self.in_table.device)

    def logits(self, in_codes: Tensor, chroma: Tensor, pad: Tensor, keep: Tensor, tokens: Tensor, pos: Tensor,
               keys: Tensor, values: Tensor, slot_pos: Tensor, present: Tensor,
               present_pad: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One position: its code logits ``[n_q, size]`` (fp32) and its keys and values
        ``[layers, kv heads, head dim]`` for the cache (the caller stores them: the graph stays pure).

        ``in_codes`` / ``tokens``: ``[n_q]`` input codes and output tokens; ``chroma``: ``[12]`` the input
        frame's chroma (read only by a model with ``cfg.input_chroma``); ``pad`` / ``keep``: 0-d flags
        (``Accompanist.embed``); ``pos``: its position; it attends to itself and to the slots holding a
        position below it (``slot_pos``: the position in each slot, -1 for none). ``present`` ``[n_q]`` and the
        0-d ``present_pad``: the input frame sounding with the prediction (read only with ``cfg.present_input``).
        """
        e_x = self.in_table[in_codes + self.in_offsets].sum(0)
        h = _linear(self.in_proj, self.in_norm(e_x))
        if self.chroma_proj is not None:
            h = h + _linear(self.chroma_proj, chroma.to(h.dtype))
        alone = None
        if self.present is not None:
            norm, proj = self.present
            e_p = _linear(proj, norm(self.in_table[present + self.in_offsets].sum(0)))
            h = h + e_p * (~present_pad).to(h.dtype)
            alone = self.in_out_norm(e_p) * (~present_pad & ~pad).to(h.dtype)  # a chunk position: present only
        h = torch.where(pad, self.input_pad, h)
        h = self.in_out_norm(h)
        h = h * keep.to(h.dtype) if alone is None else torch.where(keep, h, alone)
        e_y = self.out_table[tokens + self.out_offsets].sum(0)
        x = h + self.gate * self.out_norm(e_y)

        angles = pos.to(torch.float32) * self.inv_freq
        cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
        cached = (slot_pos >= 0) & (slot_pos < pos)  # [slots]
        hd, g = self.head_dim, self.n_heads // self.n_kv
        new_keys, new_values = [], []
        for i, block in enumerate(self.blocks):
            attn = block.attn
            q, k, v = _linear(attn.qkv, block.attn_norm(x)).split([self.n_heads * hd, self.n_kv * hd, self.n_kv * hd])
            q = _rotate(attn.q_norm(q.view(self.n_heads, hd)), cos, sin).view(self.n_kv, g, hd) / math.sqrt(hd)
            k = _rotate(attn.k_norm(k.view(self.n_kv, hd)), cos, sin)
            v = v.view(self.n_kv, hd)
            y = _attend(q, k, v, keys[i], values[i], cached)
            x = x + _linear(attn.out, y.reshape(-1))
            gate, up = _linear(block.ffn.gate_up, block.ffn_norm(x)).chunk(2)
            x = x + _linear(block.ffn.down, F.silu(gate) * up)
            new_keys.append(k)
            new_values.append(v)
        logits = _linear(self.heads, self.norm(x)).view(self.n_q, self.size).float()
        return logits, torch.stack(new_keys), torch.stack(new_values)

    def forward(self, in_codes: Tensor, chroma: Tensor, pad: Tensor, keep: Tensor, tokens: Tensor, pos: Tensor,
                keys: Tensor, values: Tensor, slot_pos: Tensor, present: Tensor, present_pad: Tensor,
                inv_temperature: Tensor, noise: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``logits``, then top-k sampling: the sampled next-step codes ``[n_q]`` (top ``noise.shape[-1]``
        at ``1 / inv_temperature``) and the keys and values. ``noise``: uniform ``[n_q, top_k]``, made
        Gumbel noise here (Gumbel-max: argmax of logits + Gumbel noise samples the softmax)."""
        logits, k, v = self.logits(in_codes, chroma, pad, keep, tokens, pos, keys, values, slot_pos, present,
                                   present_pad)
        return _sample_top_k(logits, inv_temperature, noise), k, v


class GuidedDecoder(nn.Module):
    """Classifier-free guidance on the fast path (chapter 7): ``decoder``'s position with its input and
    without it, in one graph. Sampling reads ``log p(y) + scale (log p(y | x) - log p(y))``, as the plain
    ``Generator`` with ``guidance``; the pass without the input has its own keys and values (``free_keys``,
    ``free_values``; positions as ``slot_pos``) and reads the flags ``free_pad`` / ``free_keep``, which say
    what the model read in the windows it was trained without its input (``null_input_of``)."""

    def __init__(self, decoder: FastDecoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, in_codes: Tensor, chroma: Tensor, pad: Tensor, keep: Tensor, free_pad: Tensor,
                free_keep: Tensor, tokens: Tensor, pos: Tensor, keys: Tensor, values: Tensor, free_keys: Tensor,
                free_values: Tensor, slot_pos: Tensor, present: Tensor, present_pad: Tensor, inv_temperature: Tensor,
                scale: Tensor, noise: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The sampled codes ``[n_q]``, then keys and values of the pass with the input and of the one without."""
        d = self.decoder
        cond, k, v = d.logits(in_codes, chroma, pad, keep, tokens, pos, keys, values, slot_pos, present, present_pad)
        free, free_k, free_v = d.logits(in_codes, chroma, free_pad, free_keep, tokens, pos, free_keys, free_values,
                                        slot_pos, present, present_pad)
        free = F.log_softmax(free, dim=-1)
        guided = free + scale * (F.log_softmax(cond, dim=-1) - free)
        return _sample_top_k(guided, inv_temperature, noise), k, v, free_k, free_v


def _sample_top_k(logits: Tensor, inv_temperature: Tensor, noise: Tensor) -> Tensor:
    """Top-k sampling of ``logits [n_q, size]`` at ``1 / inv_temperature`` by the Gumbel-max trick: ``noise``
    uniform ``[n_q, top_k]`` made Gumbel noise; argmax of logits + Gumbel noise samples the softmax."""
    top, idx = (logits * inv_temperature).topk(noise.shape[-1], dim=-1)
    choice = (top - torch.log(-torch.log(noise))).argmax(-1, keepdim=True)
    return idx.gather(-1, choice)[:, 0]


def _linear(layer: nn.Linear, x: Tensor) -> Tensor:
    """``layer(x)`` of one vector ``x [in]`` as a one-row matrix product (``[1, in] -> [1, out]``, then the row).
    The same product as ``layer(x)``; a 1-d input would reach inductor as reshape -> linear -> reshape,
    whose freezing pass (``reshape_linear_reshape_pattern``, with oneDNN-packed bf16 weights) fails in
    torch 2.11 with ``reduce() of empty iterable``: keeping the input 2-d avoids that pattern."""
    return layer(x[None])[0]


def _attend(q: Tensor, k: Tensor, v: Tensor, keys: Tensor, values: Tensor, cached: Tensor) -> Tensor:
    """Attention of one position ``q [kv, g, hd]`` (scaled) to itself (``k`` / ``v [kv, hd]``) and to the
    ``cached`` slots of ``keys [kv, hd, slots]`` / ``values [kv, slots, hd]``: ``[kv, g, hd]``.

    Compiled, the two products are written as broadcast products and sums, which inductor fuses into one
    vectorised loop each; as matrix products they would be ATen ``bmm`` calls, which for these shapes
    (2 rows) in bf16 took ~40 us each on one core, a quarter of the step (``bench model``, 2026-12-06).
    Eagerly, the matrix products are the faster of the two."""
    fused = torch.compiler.is_compiling()
    past = (q[..., None] * keys[:, None]).sum(-2) if fused else q @ keys
    past = past.masked_fill(~cached, float("-inf"))  # [kv, g, slots]
    own = (q * k[:, None]).sum(-1, keepdim=True)  # [kv, g, 1]: the position itself
    probs = torch.cat([past, own], dim=-1).softmax(-1)
    mixed = (probs[..., :-1, None] * values[:, None]).sum(-2) if fused else probs[..., :-1] @ values
    return mixed + probs[..., -1:] * v[:, None]


def _rotate(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotary positions of ``x [heads, head dim]`` (half-split, as ``transformer.rotary``)."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def fast_dtype(device: torch.device) -> torch.dtype:
    """bf16 where the device has native bf16 (``bf16_supported``), else fp32."""
    from streamlib.train import bf16_supported

    return torch.bfloat16 if bf16_supported(device) else torch.float32


_DECODERS: "weakref.WeakKeyDictionary[Accompanist, dict]" = weakref.WeakKeyDictionary()


def fast_decoder(acc: Accompanist, dtype: torch.dtype | None = None) -> FastDecoder:
    """The ``FastDecoder`` of ``acc`` in ``dtype`` (default ``fast_dtype``), built once per model and dtype."""
    dtype = dtype or fast_dtype(acc.input_tables.device)
    built = _DECODERS.setdefault(acc, {})
    if dtype not in built:
        built[dtype] = FastDecoder.build(acc, dtype)
    return built[dtype]


_COMPILED: "weakref.WeakKeyDictionary[nn.Module, Callable]" = weakref.WeakKeyDictionary()
_GUIDED: "weakref.WeakKeyDictionary[FastDecoder, GuidedDecoder]" = weakref.WeakKeyDictionary()


_READY: "weakref.WeakSet[nn.Module]" = weakref.WeakSet()  # steps (plain or guided) whose compiled graph has run
_FAILED: "weakref.WeakSet[Callable]" = weakref.WeakSet()  # compiled functions that failed: not tried again


def guided_decoder(decoder: FastDecoder) -> GuidedDecoder:
    """The ``GuidedDecoder`` over ``decoder``, built once per decoder (so its compiled graph is too)."""
    if decoder not in _GUIDED:
        _GUIDED[decoder] = GuidedDecoder(decoder)
    return _GUIDED[decoder]


def compiled_step(decoder: nn.Module) -> Callable[..., tuple[Tensor, ...]]:
    """``torch.compile`` of ``decoder`` (a ``FastDecoder`` or a ``GuidedDecoder``), built once per module.
    Compiling happens at its first call, which ``FastGenerator.warm_up`` makes under ``compile_settings``."""
    if decoder not in _COMPILED:
        _COMPILED[decoder] = torch.compile(decoder, fullgraph=True, dynamic=False)
    return _COMPILED[decoder]


class CompiledStep:
    """``compiled`` (a ``torch.compile`` of ``eager``) that falls back to ``eager`` on any compiler failure,
    once, telling ``notify`` why; ``compiled=None``, or a ``compiled`` that failed before in this process:
    ``eager`` only (a failed compile is not paid for twice). The fast generator's step and the engine's
    compiled codec steps (``streamlib.fastcodec``) run through it."""

    def __init__(self, eager: Callable, compiled: Callable | None, what: str,
                 notify: Callable[[str], None] | None = None):
        self.eager, self.what, self.notify = eager, what, notify
        self.fn = eager if compiled is None or compiled in _FAILED else compiled

    @property
    def compiled(self) -> bool:
        return self.fn is not self.eager

    def __call__(self, *args):
        try:
            return self.fn(*args)
        except Exception as error:  # any compiler failure: the same function, eagerly
            if not self.compiled:
                raise
            _FAILED.add(self.fn)
            self.fn = self.eager
            cause = getattr(error, "inner_exception", error)  # dynamo's BackendCompilerFailed wraps the reason
            if self.notify:
                self.notify(f"torch.compile failed for {self.what} ({type(cause).__name__}: "
                            f"{str(cause).splitlines()[0][:200]}); it runs eagerly")
            return self.fn(*args)


@contextlib.contextmanager
def compile_settings():
    """How warm-ups compile: inductor ``freezing`` (weights become constants of the graph, linear layers
    get pre-packed kernels: ~2x faster than unfrozen at the book size on one core), ``cpp_wrapper`` (the
    graph is called from C++, not Python: ~10 % faster), ``conv_1x1_as_mm`` (the codec's 1x1 convolutions,
    16 a frame in the book codec's steps, become matrix products in the graph instead of convolution
    calls of ~10-50 us each), room for ``MAX_COMPILED`` graphs per function, and without torch's "No CUDA
    runtime is found" warning on CPU-only machines."""
    import logging

    import torch._dynamo.config as dynamo_config
    import torch._inductor.config as inductor_config

    quiet = logging.getLogger("torch.utils.cpp_extension")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with inductor_config.patch(freezing=True, cpp_wrapper=True, conv_1x1_as_mm=True), \
                dynamo_config.patch(recompile_limit=MAX_COMPILED):
            yield
    finally:
        quiet.setLevel(level)


class FastGenerator:
    """The ``Generator`` API (chapter 8) on the fast path; the same delay-pattern steps and visibility.

    ``compile``: run the step through ``torch.compile`` (after ``warm_up``; a failure falls back to the
    eager step and calls ``notify`` with the reason). ``dtype``: the weights' (default ``fast_dtype``).
    ``guidance`` != 1: classifier-free guidance as the plain ``Generator``'s (``GuidedDecoder``: both passes
    in one step, about twice its arithmetic).
    Sampling draws its noise with torch's global generator (``torch.manual_seed`` makes it repeatable),
    by another method than the plain generator's, so the two sample different codes from one seed.
    Every tensor the step sees is made in inference mode (a tensor made outside it would not match the
    compiled graph's guards and would compile it again).
    """

    @torch.inference_mode()
    def __init__(self, acc: Accompanist, category: int, temperature: float = 1.0, top_k: int = 200, *,
                 compile: bool = True, dtype: torch.dtype | None = None, guidance: float = 1.0,
                 notify: Callable[[str], None] | None = None):
        check_sampling(temperature, top_k)
        check_guidance(guidance)
        self.decoder = fast_decoder(acc, dtype)
        self.n_q, self.notify = acc.cfg.n_q, notify
        self.top_k = min(int(top_k), acc.codebook_size)
        self.temperature = float(temperature)
        self.inv_temperature = torch.tensor(1.0 / temperature)
        self.device = self.decoder.in_table.device
        self.bos = instrument_token(int(category))
        self.tf = None if acc.offline else acc.spec.tf
        self.pad_after_input = acc.offline
        self.inputs = torch.zeros(1024, self.n_q, dtype=torch.long, device=self.device)  # row = input frame
        self.reads_chroma = bool(acc.cfg.input_chroma)
        self.chroma = torch.zeros(1024, CHROMA_BINS, device=self.device)  # row = input frame (zeros: no chroma path)
        self.n_input = 0
        self.steps = torch.full((1024, self.n_q), PAD, dtype=torch.long, device=self.device)  # row = step
        self.steps[0] = self.bos
        self.n_steps = 1
        self.forced = torch.zeros(self.n_q, 0, dtype=torch.long, device=self.device)
        self.n_output = 0
        self.first_missing: int | None = None
        self.cache = self.decoder.new_cache()
        self.zero_row = torch.zeros(self.n_q, dtype=torch.long, device=self.device)
        self.zero_chroma = torch.zeros(CHROMA_BINS, device=self.device)
        self.pad_row = torch.full((self.n_q,), PAD, dtype=torch.long, device=self.device)
        # separate tensors for the two flags: passing one tensor as both would be another graph (aliasing)
        flags = lambda: {v: torch.tensor(v, device=self.device) for v in (True, False)}  # noqa: E731
        self.pad_flags, self.keep_flags, self.present_flags = flags(), flags(), flags()
        self.reads_present = bool(acc.cfg.present_input)
        self.present = torch.zeros(self.n_q, dtype=torch.long, device=self.device)  # its own buffer: no aliasing
        self.levels = torch.arange(self.n_q, device=self.device)
        self.noise = torch.empty(0)
        self.noise_used = NOISE_BLOCK
        self.guidance = float(guidance)
        self.free_cache = None  # the guided pass without input: its own keys and values
        module: nn.Module = self.decoder
        if self.guidance != 1.0:
            module = guided_decoder(self.decoder)
            self.free_cache = self.decoder.new_cache()
            self.scale = torch.tensor(self.guidance)
            self.null_input = null_input_of(acc)
            self.free_pad_flags, self.free_keep_flags = flags(), flags()
        self.step = CompiledStep(module, compiled_step(module) if compile else None,
                                 "the fast decode step" + (" with guidance" if self.free_cache else ""), notify)
        self.module = module
        self.warm = False

    # -------------------------------------------------------------- the Generator API
    @torch.inference_mode()
    def feed_input(self, codes: Tensor, chroma: Tensor | None = None) -> None:
        if codes.dim() != 2 or codes.shape[0] < self.n_q:
            raise ValueError(f"input codes must be [>= {self.n_q}, n], got {tuple(codes.shape)}")
        n = codes.shape[1]
        held = check_chroma(torch.zeros(CHROMA_BINS, 0, device=self.device) if self.reads_chroma else None, chroma, n, self.device)
        self.inputs = _room(self.inputs, self.n_input + n)
        self.inputs[self.n_input : self.n_input + n] = codes[: self.n_q].T
        self.chroma = _room(self.chroma, self.n_input + n)  # read for every frame (rows of zeros: no chroma path)
        if held is not None:
            self.chroma[self.n_input : self.n_input + n] = held.T
        self.n_input += n

    @torch.inference_mode()
    def feed_output(self, codes: Tensor) -> None:
        """Teacher-force the next output frames (before any ``generate`` that would cover them)."""
        if codes.dim() != 2 or codes.shape[0] != self.n_q:
            raise ValueError(f"output codes must be [{self.n_q}, n], got {tuple(codes.shape)}")
        self.forced = torch.cat([self.forced, codes.to(self.device, torch.long)], dim=1)
        self.n_output = int(self.forced.shape[1])

    @torch.inference_mode()
    def generate(self, k: int) -> Tensor:
        """The next ``k`` output frames ``[n_q, k]`` (codes), complete at every level."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if not self.warm:
            self.warm_up()
        in_off, out_off = self._offsets()
        if self.first_missing is not None and self.first_missing - in_off < self.n_input:
            self.cache.truncate(self.first_missing)  # its input has arrived: re-feed with it
            self.first_missing = None
        last_step = self.n_output + k - 1 + self.n_q
        self.steps = _room(self.steps, last_step + 1)
        while self.n_steps <= last_step:
            s = self.n_steps
            for position in range(self.cache.next_position, s + out_off):
                codes = self.feed_position(position)
            token = codes + CODE_OFFSET
            if s < self.n_q + self.forced.shape[1]:  # BOS or teacher-forced codes at some level
                token = override_tokens(token, s, self.bos, self.forced)
            self.steps[s] = token
            self.n_steps += 1
        f0 = self.n_output
        rows = torch.arange(f0, f0 + k, device=self.device)[:, None] + 1 + self.levels
        out = self.steps.gather(0, rows).T - CODE_OFFSET
        self.n_output += k
        return out

    @property
    def compiled(self) -> bool:
        """The step runs compiled (False: asked not to, or compiling failed)."""
        return self.step.compiled

    @torch.inference_mode()
    def warm_up(self) -> float:
        """Compile (if asked) and run the step three times; seconds taken. The engine calls it before
        its clock starts; ``generate`` calls it if nobody did. Up to ``MAX_COMPILED`` models per
        process get a compiled step (each its own graph: the weights are constants in it)."""
        import time

        start = time.perf_counter()
        if self.compiled and self.module not in _READY and self.notify:
            self.notify("compiling the fast decode step (once per model and process; --no-compile skips it)")
        with compile_settings():
            for position in range(3):  # compile, then two calls that must not recompile
                self._call(self.inputs[0], self.chroma[0], position == 0, True, self.pad_row, position, position == 0)
        if self.compiled:
            _READY.add(self.module)
        self.cache.slot_pos.fill_(-1)  # forget the warm-up positions
        self.warm = True
        return time.perf_counter() - start

    # -------------------------------------------------------------- internals
    def _offsets(self) -> tuple[int, int]:
        if self.tf is None:  # offline prefix decoder: the whole input, then the output (tf = T + 1)
            self.tf = self.n_input + 1
        return input_offset(self.tf), output_offset(self.tf)

    @torch.inference_mode()
    def feed_position(self, position: int) -> Tensor:
        """Run one position through the step (``generate`` does it for every position; ``bench model``
        times it alone): its input frame and output tokens as they stand; its sampled codes ``[n_q]``."""
        in_off, out_off = self._offsets()
        frame = position - in_off
        chroma = self.zero_chroma
        if 0 <= frame < self.n_input:
            codes, chroma, pad, keep = self.inputs[frame], self.chroma[frame], False, True
        elif frame < 0 or self.pad_after_input:
            codes, pad, keep = self.zero_row, True, True
        else:  # its input has not arrived (a k > 1 chunk): re-fed once it has
            codes, pad, keep = self.zero_row, False, False
            if self.first_missing is None:
                self.first_missing = position
        step = position - out_off
        tokens = self.steps[step] if step >= 0 else self.pad_row
        present_pad = True  # read only by a model with the present input path
        if self.reads_present:  # the frame sounding with the prediction: t_f frames before the newest
            back = frame - self.tf
            if 0 <= back < self.n_input:
                self.present.copy_(self.inputs[back])
            else:
                self.present.zero_()
            present_pad = not 0 <= back < self.n_input  # before the song, or not arrived
        out = self._call(codes, chroma, pad, keep, tokens, position, present_pad)
        self.cache.next_position = position + 1
        self.cache.dropped = max(self.cache.dropped, position + 1 - self.cache.window)
        return out

    def _call(self, codes: Tensor, chroma: Tensor, pad: bool, keep: bool, tokens: Tensor, position: int,
              present_pad: bool) -> Tensor:
        if self.noise_used == NOISE_BLOCK:
            self.noise = torch.rand(NOISE_BLOCK, self.n_q, self.top_k, device=self.device)
            self.noise_used = 0
        noise = self.noise[self.noise_used]
        self.noise_used += 1
        cache, pos = self.cache, torch.tensor(position, device=self.device)
        flags, present = (self.pad_flags[pad], self.keep_flags[keep]), (self.present, self.present_flags[present_pad])
        slot = position % cache.slot_pos.shape[0]
        if self.free_cache is None:
            out, k, v = self.step(codes, chroma, *flags, tokens, pos, cache.keys, cache.values, cache.slot_pos,
                                  *present, self.inv_temperature, noise)
        else:  # without the input, read as trained: PAD everywhere ("pad") or no input term ("zero")
            free_pad, free_keep = (True, keep) if self.null_input == "pad" else (pad, False)
            free = self.free_cache
            out, k, v, free_k, free_v = self.step(
                codes, chroma, *flags, self.free_pad_flags[free_pad], self.free_keep_flags[free_keep], tokens, pos,
                cache.keys, cache.values, free.keys, free.values, cache.slot_pos, *present, self.inv_temperature,
                self.scale, noise)
            free.keys[:, :, :, slot] = free_k
            free.values[:, :, slot] = free_v
        cache.keys[:, :, :, slot] = k
        cache.values[:, :, slot] = v
        cache.slot_pos[slot] = position
        return out


def _room(buffer: Tensor, rows: int) -> Tensor:
    """``buffer`` with at least ``rows`` rows (doubling capacity; new rows PAD = 0)."""
    if rows <= buffer.shape[0]:
        return buffer
    grown = torch.full((max(rows, 2 * buffer.shape[0]), *buffer.shape[1:]), PAD, dtype=buffer.dtype,
                       device=buffer.device)
    grown[: buffer.shape[0]] = buffer
    return grown


__all__ = ["CompiledStep", "FastDecoder", "FastGenerator", "GuidedDecoder", "StaticCache", "compile_settings",
           "compiled_step", "fast_decoder", "fast_dtype", "guided_decoder"]
