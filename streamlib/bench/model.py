"""Accompanist speed vs Hugging Face LLaMA: training frames/s and per-frame decode latency, KV cache vs none.

Chapter 6 ("The model") quotes the result; ``benchmarks/RESULTS.md`` keeps a copy with the machine.
For each size (the ``book`` preset by default; ``--preset paper`` and ``--layers/--d-model`` for others)
it builds, with random weights (speed does not depend on the values):

* ours: ``streamlib.model.Accompanist`` (gated input fusion, fused qkv / gate-up projections,
  query-key RMSNorm, ``n_q`` output embeddings and heads);
* HF: ``transformers.LlamaForCausalLM`` from a ``LlamaConfig`` of the same size (layers, d_model,
  heads, kv heads, SwiGLU width, vocab = our codebook size), constructed from the config only (no
  download). It has one embedding and one head of ``codebook_size`` where ours has ``n_q`` of each.

Workloads, every candidate timed in turn inside one loop (interleaved), medians of ``--repeats``:

1. a training step (forward + backward + gradient clipping + AdamW) on ``batch x frames`` random
   tokens, in fp32 and, where ``streamlib.train.bf16_supported`` says so, under bf16 autocast;
2. decoding at batch 1 after a ``--context``-frame prefix: one position per frame with the KV cache
   (ours: ``KVCache``; HF: ``DynamicCache``, rolled back to the prefix before each repeat), and
   without a cache (the whole prefix recomputed every frame); plus our streaming ``Generator``
   (sampling and delay-pattern bookkeeping included). Reported in ms per frame and as a share of the
   20 ms a 50 Hz frame allows. The fast path of chapter 8 (``streamlib.model.fast``) is timed in the
   same loop: its bare step (one position, sampling included) compiled and eager, and its
   ``FastGenerator``. Its memory-bandwidth bound is printed with it: the bytes one step must read (the
   weights it multiplies by, and the keys and values of the context) over the read bandwidth of
   this machine, measured by summing a 256 MB tensor on the same threads;
3. the decoder stacks alone (ours ``acc.backbone``, HF ``hf.model`` fed ``inputs_embeds``): training
   and cached decoding, to separate the stack from what surrounds it (embeddings, heads, loss).

Ratios are speeds (ours / HF throughput, HF / ours latency): above 1 means ours is faster.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from typing import Callable

import torch

from streamlib.cli import number

FRAME_MS = 20.0  # one frame at 50 Hz


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", nargs="*", default=["book"],
                   help="model presets to measure (default: book; none: only the --layers/--d-model size)")
    p.add_argument("--layers", type=number(int, minimum=1), default=None,
                   help="also measure a custom size with this many layers")
    p.add_argument("--d-model", type=number(int, minimum=1), default=None,
                   help="custom size's width (heads of 32 channels, half as many kv heads, SwiGLU ~8/3 d)")
    p.add_argument("--batch", type=number(int, minimum=1), default=None,
                   help="training batch (default 8; 1 for the paper preset)")
    p.add_argument("--frames", type=number(int, minimum=1), default=500,
                   help="training frames per example (default 500 = 10 s)")
    p.add_argument("--context", type=number(int, minimum=1), default=250,
                   help="decode prefix in frames (default 250 = 5 s)")
    p.add_argument("--steps", type=number(int, minimum=1), default=20,
                   help="decoded frames per timing with a cache (default 20)")
    p.add_argument("--nocache-steps", type=number(int, minimum=1), default=2,
                   help="decoded frames per timing without a cache")
    p.add_argument("--repeats", type=number(int, minimum=1), default=5,
                   help="median of this many interleaved timings (default 5)")
    p.add_argument("--threads", type=number(int, minimum=1), default=1, help="torch threads (default 1)")
    p.add_argument("--quick", action="store_true",
                   help="~20 s: batch 4 x 250 frames, 2 repeats, 5 decoded frames per timing")


# ----------------------------------------------------------------------------- models


def custom_config(layers: int, d_model: int):
    """A book-shaped ``ModelConfig`` of another size: 32-channel heads, half as many kv heads."""
    import dataclasses

    from streamlib.config import get_preset

    heads = max(1, d_model // 32)
    kv = max(1, heads // 2)
    ffn = 16 * max(1, round(8 * d_model / 3 / 16))
    return dataclasses.replace(get_preset("book").model, n_layers=layers, d_model=d_model, n_heads=heads,
                               n_kv_heads=kv, ffn_hidden=ffn)


def build_ours(cfg, codebook_size: int = 1024, latent_dim: int = 128):
    """Our accompanist with random weights and random frozen input codebooks (t_f = 0, k = 1)."""
    from streamlib.config import StreamSpec
    from streamlib.model import Accompanist

    tables = torch.randn(cfg.n_q, codebook_size, latent_dim)
    return Accompanist(cfg, tables, StreamSpec(tf=0, k=1))


def build_hf(cfg, vocab: int = 1024):
    """``LlamaForCausalLM`` of the same size, from a config only (random weights, no download)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    hf_cfg = LlamaConfig(
        vocab_size=vocab,
        hidden_size=cfg.d_model,
        intermediate_size=cfg.ffn_hidden,
        num_hidden_layers=cfg.n_layers,
        num_attention_heads=cfg.n_heads,
        num_key_value_heads=cfg.n_kv_heads,
        max_position_embeddings=max(4096, cfg.max_frames),
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        attention_dropout=0.0,
    )
    hf_cfg._attn_implementation = "sdpa"  # the same kernel ours uses
    return LlamaForCausalLM(hf_cfg)


def n_params(model: torch.nn.Module) -> int:
    """Number of parameters (frozen buffers excluded); chapter 6 counts the presets with it."""
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- timing


def interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each callable: one warm-up each, then ``repeats`` rounds, one call of each per round."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def _random_stream(acc, batch: int, length: int, seed: int = 0):
    """Random input codes / pad mask / output tokens / targets / loss mask for ``acc`` ([B, n_q, L] ...)."""
    from streamlib.tokens.categories import CODE_OFFSET

    g = torch.Generator().manual_seed(seed)
    n_q, size = acc.cfg.n_q, acc.codebook_size
    codes = torch.randint(0, size, (batch, n_q, length), generator=g)
    pad = torch.zeros(batch, length, dtype=torch.bool)
    tokens = torch.randint(0, size, (batch, n_q, length), generator=g) + CODE_OFFSET
    targets = torch.randint(0, size, (batch, n_q, length), generator=g) + CODE_OFFSET
    mask = torch.ones(batch, n_q, length, dtype=torch.bool)
    return codes, pad, tokens, targets, mask


def _adamw(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.01)


def train_step_ours(acc, batch: int, frames: int, bf16: bool) -> Callable[[], float]:
    """One training step of ours (fwd + bwd + clip + AdamW) as a callable returning the loss."""
    from streamlib.model.accompanist import token_loss

    acc.train()
    opt = _adamw(acc)
    codes, pad, tokens, targets, mask = _random_stream(acc, batch, frames)

    def step() -> float:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = acc(codes, pad, tokens)
        summed, count = token_loss(logits, targets, mask)
        loss = summed / count
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(acc.parameters(), 1.0)
        opt.step()
        return float(loss.detach())

    return step


def train_step_hf(model, batch: int, frames: int, bf16: bool) -> Callable[[], float]:
    """One training step of the HF model (fwd + bwd + clip + AdamW) as a callable returning the loss."""
    model.train()
    opt = _adamw(model)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (batch, frames), generator=g)

    def step() -> float:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return float(loss.detach())

    return step


def train_step_backbone(module, batch: int, frames: int, bf16: bool, hf: bool) -> Callable[[], float]:
    """A training step of a decoder stack alone (ours: ``acc.backbone``; HF: ``hf.model`` fed
    ``inputs_embeds``) on random hidden states, loss = mean square of the output."""
    module.train()
    opt = _adamw(module)
    d = module.config.hidden_size if hf else module.cfg.d_model
    x = torch.randn(batch, frames, d, generator=torch.Generator().manual_seed(0))

    def step() -> float:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = module(inputs_embeds=x, use_cache=False).last_hidden_state if hf else module(x)
        loss = out.float().pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
        opt.step()
        return float(loss.detach())

    return step


def measure_training(acc, hf, batch: int, frames: int, repeats: int, bf16: bool,
                     backbone: bool = False) -> dict[str, float]:
    """Training frames per second (``batch * frames`` / median step time) of ``ours`` and ``hf``;
    ``backbone=True``: the decoder stacks alone (no embeddings, heads or loss over codes)."""
    if backbone:
        fns = {"ours": train_step_backbone(acc.backbone, batch, frames, bf16, hf=False),
               "hf": train_step_backbone(hf.model, batch, frames, bf16, hf=True)}
    else:
        fns = {"ours": train_step_ours(acc, batch, frames, bf16), "hf": train_step_hf(hf, batch, frames, bf16)}
    med = interleaved(fns, repeats)
    return {name: batch * frames / s for name, s in med.items()}


def ours_decode_fns(acc, context: int, steps: int, nocache_steps: int) -> dict[str, Callable[[], object]]:
    """``ours cache`` / ``ours no cache`` callables of ``decode_fns`` (random codes, batch 1, inference mode)."""
    acc.eval()
    codes, pad, tokens, _, _ = _random_stream(acc, 1, context + max(steps, nocache_steps), seed=1)
    with torch.inference_mode():
        cache = acc.backbone.new_cache()
        acc(codes[..., :context], pad[:, :context], tokens[..., :context], cache=cache)

    @torch.inference_mode()
    def ours_cache():
        cache.truncate(context)
        for i in range(context, context + steps):
            out = acc(codes[..., i : i + 1], pad[:, i : i + 1], tokens[..., i : i + 1], cache=cache)
        return out

    @torch.inference_mode()
    def ours_nocache():
        for i in range(context, context + nocache_steps):
            out = acc(codes[..., : i + 1], pad[:, : i + 1], tokens[..., : i + 1])[:, :, -1]
        return out

    return {"ours cache": ours_cache, "ours no cache": ours_nocache}


def cache_latency_ms(acc, context: int, repeats: int = 5) -> dict[str, float]:
    """Median ms to decode one frame at batch 1 after ``context`` frames, with the KV cache and by a full
    pass over the context (``cache`` / ``no cache``), timed interleaved. Chapter 6 ("The KV cache")."""
    med = interleaved(ours_decode_fns(acc, context, steps=1, nocache_steps=1), repeats)
    return {"cache": 1e3 * med["ours cache"], "no cache": 1e3 * med["ours no cache"]}


def decode_fns(acc, hf, context: int, steps: int, nocache_steps: int, generator: bool = True
               ) -> dict[str, Callable[[], object]]:
    """Callables that each decode frames at batch 1 after a ``context``-frame prefix (inference mode).

    ``ours/hf cache``: ``steps`` positions, one at a time, with the KV cache rolled back to the prefix
    first; ``ours/hf no cache``: ``nocache_steps`` frames, each a full causal pass over the prefix and
    the frames so far; ``ours Generator``: ``steps`` frames from the streaming generator (sampling
    included; its context grows by ``steps`` per call).
    """
    from transformers import DynamicCache

    hf.eval()
    total = context + max(steps, nocache_steps)
    ids = torch.randint(0, hf.config.vocab_size, (1, total), generator=torch.Generator().manual_seed(1))
    fns = ours_decode_fns(acc, context, steps, nocache_steps)

    with torch.inference_mode():
        hf_cache = DynamicCache(config=hf.config)
        hf(input_ids=ids[:, :context], past_key_values=hf_cache, use_cache=True)

    @torch.inference_mode()
    def hf_cache_fn():
        extra = hf_cache.get_seq_length() - context
        if extra > 0:
            hf_cache.crop(-extra)  # transformers 5: a negative count removes that many positions
        for i in range(context, context + steps):
            out = hf(input_ids=ids[:, i : i + 1], past_key_values=hf_cache, use_cache=True).logits
        return out

    @torch.inference_mode()
    def hf_nocache():
        for i in range(context, context + nocache_steps):
            out = hf(input_ids=ids[:, : i + 1], use_cache=False).logits[:, -1]
        return out

    fns.update({"hf cache": hf_cache_fn, "hf no cache": hf_nocache})

    # the decoder stacks alone, fed random hidden states
    x = torch.randn(1, total, acc.cfg.d_model, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        bb_cache = acc.backbone.new_cache()
        acc.backbone(x[:, :context], bb_cache)
        hf_bb_cache = DynamicCache(config=hf.config)
        hf.model(inputs_embeds=x[:, :context], past_key_values=hf_bb_cache, use_cache=True)

    @torch.inference_mode()
    def ours_bb_cache():
        bb_cache.truncate(context)
        for i in range(context, context + steps):
            out = acc.backbone(x[:, i : i + 1], bb_cache)
        return out

    @torch.inference_mode()
    def hf_bb_cache_fn():
        extra = hf_bb_cache.get_seq_length() - context
        if extra > 0:
            hf_bb_cache.crop(-extra)
        for i in range(context, context + steps):
            out = hf.model(inputs_embeds=x[:, i : i + 1], past_key_values=hf_bb_cache, use_cache=True)
        return out.last_hidden_state

    fns.update({"ours backbone cache": ours_bb_cache, "hf backbone cache": hf_bb_cache_fn})
    if generator:
        gen = acc.generator(0)
        size = acc.codebook_size
        g = torch.Generator().manual_seed(2)
        gen.feed_input(torch.randint(0, size, (acc.cfg.n_q, acc.cfg.max_frames), generator=g))
        gen.feed_output(torch.randint(0, size, (acc.cfg.n_q, context), generator=g))
        gen.generate(1)  # runs the prefix (one delay step at a time)
        fns["ours Generator"] = lambda: gen.generate(steps)
    return fns


def _failures(note: str) -> None:
    """Print a fast generator's note only when it is a compiler failure: the "compiled" rows are then eager."""
    if "failed" in note:
        print(f"note: {note}", file=sys.stderr)


def fast_decode_fns(acc, context: int, steps: int, compile: bool = True) -> dict[str, Callable[[], object]]:
    """``ours fast step`` / ``ours fast eager step`` (``FastGenerator.feed_position`` for ``steps``
    positions after a ``context``-frame prefix, the same positions every call) and ``ours fast
    Generator`` (``generate(steps)``; its context grows by ``steps`` per call); ``ours fast guided step``, the
    step with classifier-free guidance at ``GUIDANCE`` (both passes in one graph); where the fast path's weights
    are not fp32 (native bf16), also ``ours fast step float32`` with fp32 weights, timed in the same loop.
    Compiling happens here, in the generators' warm-up, not in the timings."""
    from streamlib.model.fast import fast_dtype

    size, n_q = acc.codebook_size, acc.cfg.n_q
    g = torch.Generator().manual_seed(2)
    inputs = torch.randint(0, size, (n_q, acc.cfg.max_frames), generator=g)
    prefix = torch.randint(0, size, (n_q, context), generator=g)

    def primed(compiled: bool, dtype: torch.dtype | None = None, guidance: float = 1.0):  # failures: on stderr
        gen = acc.generator(0, fast=True, compile=compiled, notify=_failures, dtype=dtype, guidance=guidance)
        gen.feed_input(inputs)
        gen.feed_output(prefix)
        gen.generate(1)  # runs the prefix (one delay step at a time)
        return gen

    def positions(gen) -> Callable[[], object]:
        first = gen.cache.next_position

        def run():
            for position in range(first, first + steps):
                out = gen.feed_position(position)
            return out

        return run

    fns = {"ours fast step": positions(primed(compile)), "ours fast eager step": positions(primed(False)),
           "ours fast guided step": positions(primed(compile, guidance=GUIDANCE))}
    if fast_dtype(acc.input_tables.device) != torch.float32:  # the other precision, side by side
        fns["ours fast step float32"] = positions(primed(compile, torch.float32))
    streaming = primed(compile)
    fns["ours fast Generator"] = lambda: streaming.generate(steps)
    return fns


GUIDANCE = 4.0  # the scale the shipped models play with (``streamlib.model.accompanist.DEFAULT_GUIDANCE``)


def memory_bandwidth_gbs(repeats: int = 5, megabytes: int = 256) -> float:
    """Read bandwidth in GB/s: a ``megabytes`` fp32 tensor (larger than any CPU cache) summed on the
    current torch threads, median of ``repeats`` after one warm-up."""
    x = torch.ones(megabytes * 2**20 // 4)
    x.sum()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        x.sum()
        times.append(time.perf_counter() - t)
    return x.numel() * 4 / statistics.median(times) / 1e9


def step_bytes(acc, context: int) -> dict[str, int]:
    """Bytes one fast decode step must read: ``weights`` (every parameter it multiplies by; of the
    embedding tables only the n_q rows it gathers) and ``kv`` (keys and values of ``context`` positions,
    at most the window), at the precision the fast path uses here."""
    from streamlib.model.fast import fast_dtype

    item = torch.tensor([], dtype=fast_dtype(acc.input_tables.device)).element_size()
    tables = {"input_tables", *(f"out_embed.{q}.weight" for q in range(acc.cfg.n_q))}
    weights = sum(p.numel() for name, p in acc.named_parameters() if name not in tables)
    cfg = acc.cfg
    kv = cfg.n_layers * 2 * cfg.n_kv_heads * (cfg.d_model // cfg.n_heads) * min(context, cfg.max_frames)
    return {"weights": weights * item, "kv": kv * item}


def measure_decode(acc, hf, context: int, steps: int, nocache_steps: int, repeats: int,
                   generator: bool = True, fast: bool = True, compile: bool = True) -> dict[str, float]:
    """Median ms per decoded frame of each ``decode_fns`` (and, with ``fast``, ``fast_decode_fns``)
    candidate, all timed interleaved in one loop."""
    fns = decode_fns(acc, hf, context, steps, nocache_steps, generator)
    if fast:
        fns.update(fast_decode_fns(acc, context, steps, compile))
    med = interleaved(fns, repeats)
    return {name: 1e3 * s / (nocache_steps if "no cache" in name else steps) for name, s in med.items()}


# ----------------------------------------------------------------------------- the run


def _sizes(args) -> list[tuple[str, object, int, int]]:
    """(label, ModelConfig, codebook_size, codec latent dim) per size to measure."""
    from streamlib.config import get_preset

    out = []
    for name in args.preset:
        p = get_preset(name)
        out.append((name, p.model, p.codec.codebook_size, p.codec.latent_dim))
    if args.layers is not None or args.d_model is not None:
        book = get_preset("book")
        cfg = custom_config(args.layers or book.model.n_layers, args.d_model or book.model.d_model)
        out.append(("custom", cfg, book.codec.codebook_size, book.codec.latent_dim))
    return out


def _fmt(x: float | None, digits: int = 1) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a / b:.2f}"


def run(args: argparse.Namespace) -> int:
    from streamlib.checkpoint import hardware
    from streamlib.config import seed_everything
    from streamlib.model.fast import fast_dtype
    from streamlib.train import bf16_supported

    torch.set_num_threads(args.threads)
    if args.quick:
        args.frames, args.context = min(args.frames, 250), min(args.context, 250)
        args.steps, args.nocache_steps = min(args.steps, 5), 1
        args.repeats = min(args.repeats, 2)
    bf16 = bf16_supported(torch.device("cpu"))
    bandwidth = memory_bandwidth_gbs()
    rows: list[str] = []
    notes: list[str] = []
    t_start = time.perf_counter()
    for label, cfg, size, latent in _sizes(args):
        seed_everything(0)
        batch = args.batch or (1 if label == "paper" else 4 if args.quick else 8)
        acc, hf = build_ours(cfg, size, latent), build_hf(cfg, size)
        name = f"{label} {cfg.n_layers}x{cfg.d_model}"
        rows.append(f"| {name} | parameters (M) | {n_params(acc) / 1e6:.2f} | {n_params(hf) / 1e6:.2f} | - |")
        for precision in ("fp32", "bf16"):
            what = f"train {precision}, frames/s ({batch} x {args.frames})"
            if precision == "bf16" and not bf16:
                rows.append(f"| {name} | {what} | not supported on this CPU | - | - |")
                continue
            for backbone in (False, True):
                fps = measure_training(acc, hf, batch, args.frames, args.repeats, precision == "bf16", backbone)
                label_ = f"decoder stack alone: {what}" if backbone else what
                rows.append(f"| {name} | {label_} | {_fmt(fps['ours'], 0)} | {_fmt(fps['hf'], 0)} "
                            f"| {_ratio(fps['ours'], fps['hf'])} |")
        ms = measure_decode(acc, hf, args.context, args.steps, args.nocache_steps, args.repeats)
        for mode in ("cache", "no cache", "backbone cache"):
            o, h = ms[f"ours {mode}"], ms[f"hf {mode}"]
            what = {"cache": "decode KV cache", "no cache": "decode no cache",
                    "backbone cache": "decoder stack alone: decode KV cache"}[mode]
            rows.append(f"| {name} | {what}, ms/frame "
                        f"(% of 20 ms) | {_fmt(o, 2)} ({100 * o / FRAME_MS:.0f} %) "
                        f"| {_fmt(h, 2)} ({100 * h / FRAME_MS:.0f} %) | {_ratio(h, o)} |")
        g = ms["ours Generator"]
        rows.append(f"| {name} | decode, streaming `Generator` (sampling), ms/frame | {_fmt(g, 2)} "
                    f"({100 * g / FRAME_MS:.0f} %) | - | - |")
        rows.append(f"| {name} | KV cache speed-up (no cache / cache) | "
                    f"x{ms['ours no cache'] / ms['ours cache']:.1f} | x{ms['hf no cache'] / ms['hf cache']:.1f} | - |")
        h = ms["hf cache"]
        dtype = str(fast_dtype(torch.device("cpu"))).removeprefix("torch.")
        for key, what in (("ours fast step", f"fast path: step (static cache, compiled, sampling, {dtype} weights)"),
                          ("ours fast eager step", "fast path: step, eager (the fallback)"),
                          ("ours fast Generator", "fast path: streaming `FastGenerator`")):
            o = ms[key]
            rows.append(f"| {name} | {what}, ms/frame (% of 20 ms) | {_fmt(o, 2)} ({100 * o / FRAME_MS:.0f} %) "
                        f"| {_fmt(h, 2)} (KV cache) | {_ratio(h, o)} |")
        o = ms["ours fast guided step"]
        rows.append(f"| {name} | fast path: step with classifier-free guidance {GUIDANCE:g} (two passes, one graph), "
                    f"ms/frame (% of 20 ms; x the step) | {_fmt(o, 2)} ({100 * o / FRAME_MS:.0f} %; "
                    f"x{o / ms['ours fast step']:.2f}) | - | - |")
        need = step_bytes(acc, args.context)
        bound = 1e3 * sum(need.values()) / (bandwidth * 1e9)
        step, fast_gen = ms["ours fast step"], ms["ours fast Generator"]
        if "ours fast step float32" in ms:  # measured against the same (smaller, bf16) bound: the faster one counts
            o = ms["ours fast step float32"]
            rows.append(f"| {name} | fast path: step, compiled, float32 weights, ms/frame (% of 20 ms) | {_fmt(o, 2)} "
                        f"({100 * o / FRAME_MS:.0f} %) | {_fmt(h, 2)} (KV cache) | {_ratio(h, o)} |")
            rows.append(f"| {name} | memory-bandwidth bound of a step at {dtype} weights, ms (fastest step / bound) "
                        f"| {bound:.2f} (x{min(step, o) / bound:.2f}) | - | - |")
        rows.append(f"| {name} | memory-bandwidth bound of a step, ms (fast step / bound) | {bound:.2f} "
                    f"(x{step / bound:.2f}) | - | - |")
        rows.append(f"| {name} | speed-ups: plain cached / fast step; fast `FastGenerator` / fast step | "
                    f"x{ms['ours cache'] / step:.2f}; x{fast_gen / step:.2f} | - | - |")
        notes.append(f"{name}: bound = ({need['weights'] / 1e6:.1f} MB of weights + {need['kv'] / 1e6:.1f} MB of keys "
                     f"and values at {min(args.context, cfg.max_frames)} positions) / {bandwidth:.1f} GB/s")
        del acc, hf
    print(f"machine: {hardware()}")
    print(f"{args.threads} torch thread(s); medians of {args.repeats} interleaved timings after one warm-up; "
          f"decode context {args.context} frames, {args.steps} frames per cached timing, "
          f"{args.nocache_steps} per uncached; bf16 autocast {'on' if bf16 else 'not supported: skipped'}; "
          f"{time.perf_counter() - t_start:.0f} s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"memory bandwidth {bandwidth:.1f} GB/s: median time to sum a 256 MB fp32 tensor on {args.threads} "
          f"thread(s); " + "; ".join(notes))
    print("| model | workload | ours (Accompanist) | HF LlamaForCausalLM | ours / HF speed |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(row)
    return 0
