"""The fast decode path (chapter 8): the same codes as the plain generator (greedy), across t_f, k > 1
re-feeds, the sliding window, prompts and the offline decoder; Gumbel-max sampling follows the softmax;
the compiled step equals the eager one, and a compiler failure falls back to it with a note."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from streamlib.codec import CausalCodec
from streamlib.config import ConfigError, StreamSpec, get_preset
from streamlib.model import Accompanist
from streamlib.model import fast as fastmod
from streamlib.model.fast import FastGenerator, StaticCache, fast_decoder

PRESET = get_preset("debug")  # max_frames 128: streams below run past the window
SIZE = PRESET.codec.codebook_size
FP32 = torch.float32  # the default is bf16 on CPUs with native bf16: close to the plain path, not equal


@pytest.fixture(scope="module")
def tables():
    torch.manual_seed(0)
    return CausalCodec(PRESET.codec).codebook_tables(PRESET.model.n_q)


def make(tables, tf: int, k: int = 1, seed: int = 0, offline: bool = False) -> Accompanist:
    torch.manual_seed(seed)
    acc = Accompanist(PRESET.model, tables, None if offline else StreamSpec(tf=tf, k=k, window=60),
                      offline=offline).eval()
    with torch.no_grad():
        acc.gate.fill_(1.0)  # trained models have g != 0
    return acc


def codes(t: int, seed: int) -> torch.Tensor:
    return torch.randint(0, SIZE, (4, t), generator=torch.Generator().manual_seed(seed))


def streamed(acc, tf: int, k: int, frames: int, x: torch.Tensor, **options) -> torch.Tensor:
    """Greedy codes of a stream fed as the engine feeds it: input up to t + t_f + D before each chunk."""
    gen = acc.generator(2, top_k=1, **options)
    chunks = []
    for start in range(0, frames, k):
        gen.feed_input(x[:, gen.n_input : max(start + tf + 3, 0)])
        chunks.append(gen.generate(k))
    return torch.cat(chunks, dim=1)


@pytest.mark.parametrize("tf,k", [(-5, 1), (0, 1), (3, 1), (-3, 4), (2, 3)])
def test_fast_equals_plain_greedy(tables, tf, k):
    acc, x = make(tables, tf, k), codes(220, 1)
    plain = streamed(acc, tf, k, 180, x)  # 180 frames + offsets > the 128-position window: it slides
    fast = streamed(acc, tf, k, 180, x, fast=True, compile=False, dtype=FP32)
    assert torch.equal(plain, fast)


@pytest.mark.parametrize("tf,k", [(1, 1), (3, 1), (2, 3)])
def test_fast_reads_the_present_input_as_the_plain_generator(tables, tf, k):
    """A model with ``cfg.present_input`` (t_f >= 1): the fast path adds the frame sounding with the prediction
    exactly where the plain generator does, also past the sliding window and across k > 1 re-feeds."""
    torch.manual_seed(3)
    cfg = dataclasses.replace(PRESET.model, present_input=True)
    acc = Accompanist(cfg, tables, StreamSpec(tf=tf, k=k, window=60)).eval()
    with torch.no_grad():
        acc.gate.fill_(1.0)
        acc.present_proj.weight.mul_(20.0)  # a present term strong enough to change greedy choices
    x = codes(220, 4)
    plain = streamed(acc, tf, k, 180, x)
    assert not torch.equal(plain, streamed(make(tables, tf, k, seed=3), tf, k, 180, x))  # the present term matters
    assert torch.equal(plain, streamed(acc, tf, k, 180, x, fast=True, compile=False, dtype=FP32))
    if (tf, k) == (1, 1):
        assert torch.equal(plain, streamed(acc, tf, k, 180, x, fast=True, compile=True, dtype=FP32))


@pytest.mark.parametrize("tf,k,null_input", [(0, 1, "pad"), (-3, 4, "pad"), (3, 1, "zero"), (2, 3, "zero")])
def test_guided_fast_equals_guided_plain(tables, tf, k, null_input):
    """Classifier-free guidance on the fast path (``GuidedDecoder``): the same greedy codes as the plain
    generator's two passes, in both no-input readings, across k > 1 re-feeds and past the sliding window."""
    acc, x = make(tables, tf, k), codes(220, 5)
    acc.card = {"run": {"input_dropout": 0.2, "null_input": null_input}}
    plain = streamed(acc, tf, k, 180, x, guidance=2.5)
    assert not torch.equal(plain, streamed(acc, tf, k, 180, x))  # guidance changes greedy choices
    assert torch.equal(plain, streamed(acc, tf, k, 180, x, guidance=2.5, fast=True, compile=False, dtype=FP32))
    if (tf, k) == (0, 1):
        assert torch.equal(plain, streamed(acc, tf, k, 180, x, guidance=2.5, fast=True, compile=True, dtype=FP32))


def test_fast_prompt_and_offline_equal_plain(tables):
    acc, truth = make(tables, -2), codes(6, 9)
    outs = []
    for options in ({}, {"fast": True, "compile": False, "dtype": FP32}):
        gen = acc.generator(0, top_k=1, **options)
        gen.feed_input(codes(40, 10))
        gen.feed_output(truth)
        outs.append(torch.cat([gen.generate(3), gen.generate(5)], dim=1))
    assert torch.equal(outs[0], outs[1]) and gen.n_output == 14
    offline, x = make(tables, 0, offline=True), codes(30, 11)
    outs = []
    for options in ({}, {"fast": True, "compile": False, "dtype": FP32}):
        gen = offline.generator(5, top_k=1, **options)
        gen.feed_input(x)
        outs.append(gen.generate(12))
    assert torch.equal(outs[0], outs[1])


def test_static_cache_truncate_bounds():
    cache = StaticCache(2, 1, 4, window=8, dtype=torch.float32, device=torch.device("cpu"))
    cache.next_position, cache.dropped = 20, 12
    cache.truncate(15)
    assert cache.next_position == 15
    with pytest.raises(ValueError):
        cache.truncate(11)  # slid out of the window already
    with pytest.raises(ValueError):
        cache.truncate(16)  # never fed


def test_gumbel_sampling_follows_the_softmax(tables):
    """``FastDecoder.forward`` samples code c with probability softmax(top-k logits / T)[c]."""
    acc = make(tables, 0)
    dec = fast_decoder(acc, torch.float32)
    cache = dec.new_cache()
    args = (codes(1, 3)[:, 0], torch.zeros(12), torch.tensor(False), torch.tensor(True), codes(1, 4)[:, 0] + 19, torch.tensor(0),
            cache.keys, cache.values, cache.slot_pos, torch.zeros(4, dtype=torch.long), torch.tensor(True))
    with torch.inference_mode():
        logits = dec.logits(*args)[0]
        top, idx = (logits / 0.7).topk(5, dim=-1)
        expected = top.softmax(-1)
        draws = torch.stack([dec(*args, torch.tensor(1 / 0.7), torch.rand(4, 5))[0] for _ in range(3000)])
    for level in range(4):
        freq = torch.stack([(draws[:, level] == c).float().mean() for c in idx[level]])
        assert (freq - expected[level]).abs().max() < 0.035, (level, freq, expected[level])
        assert set(draws[:, level].tolist()) <= set(idx[level].tolist())  # only the top k


def test_fast_options_need_fast(tables):
    with pytest.raises(ConfigError, match="fast path only"):
        make(tables, 0).generator(0, compile=False)
    with pytest.raises(ConfigError):
        make(tables, 0).generator(0, fast=True, top_k=0)


def test_compiled_equals_eager_and_failure_falls_back(tables, monkeypatch):
    acc, x = make(tables, -3, 2, seed=4), codes(90, 5)
    notes = []
    compiled = acc.generator(1, top_k=1, fast=True, compile=True, dtype=FP32, notify=notes.append)
    compiled.warm_up()
    assert compiled.compiled, notes
    gens = [compiled, acc.generator(1, top_k=1, fast=True, compile=False, dtype=FP32)]
    for gen in gens:
        gen.feed_input(x[:, :40])
    assert torch.equal(gens[0].generate(30), gens[1].generate(30))
    assert notes == ["compiling the fast decode step (once per model and process; --no-compile skips it)"]

    def broken(decoder):
        def step(*args):
            raise RuntimeError("no C++ compiler\nmore detail")
        return step

    monkeypatch.setattr(fastmod, "compiled_step", broken)
    notes.clear()
    gen = FastGenerator(acc, 1, top_k=1, compile=True, dtype=FP32, notify=notes.append)
    ref = FastGenerator(acc, 1, top_k=1, compile=False, dtype=FP32)
    for g in (gen, ref):
        g.feed_input(x[:, :40])
    assert torch.equal(gen.generate(30), ref.generate(30))
    assert not gen.compiled and notes == ["torch.compile failed for the fast decode step (RuntimeError: "
                                          "no C++ compiler); it runs eagerly"]


def _has_cxx() -> bool:
    import os
    import shutil

    return any(shutil.which(c) for c in (os.environ.get("CXX", "c++"), "g++", "clang++"))


@pytest.mark.skipif(not _has_cxx(), reason="no C++ compiler: inductor cannot compile on this machine")
def test_bf16_step_compiles(tables):
    """bf16 weights (the default where the CPU has native bf16) compile under ``compile_settings``: with inductor
    freezing, oneDNN packs bf16 linear layers, and a linear of a 1-d input then failed in torch 2.11's
    ``reshape_linear_reshape_pattern`` (``reduce() of empty iterable``), so the step ran eagerly. On CPUs
    without native bf16 this compiles the unpacked path and passes either way."""
    acc, x = make(tables, -3, 2, seed=4), codes(40, 5)
    notes = []
    gen = FastGenerator(acc, 1, top_k=1, compile=True, dtype=torch.bfloat16, notify=notes.append)
    gen.warm_up()
    assert gen.compiled, notes
    assert not any("failed" in n for n in notes), notes
    gen.feed_input(x)
    assert gen.generate(6).shape == (4, 6) and gen.compiled


def test_a_failed_compile_is_not_tried_again(tables, monkeypatch):
    """A compiler failure (inside dynamo's BackendCompilerFailed) is named by its cause, and a second generator
    of the same model (e.g. after ``--threads auto``'s probe) runs eagerly without compiling again."""
    from torch._dynamo.exc import BackendCompilerFailed

    calls = []

    def step(*args):
        calls.append(1)
        raise BackendCompilerFailed(step, TypeError("reduce() of empty iterable"), None)

    monkeypatch.setattr(fastmod, "compiled_step", lambda decoder: step)
    acc, notes = make(tables, -3, 2, seed=4), []
    first = FastGenerator(acc, 1, top_k=1, compile=True, dtype=FP32, notify=notes.append)
    first.warm_up()
    second = FastGenerator(acc, 1, top_k=1, compile=True, dtype=FP32, notify=notes.append)
    second.warm_up()
    assert not first.compiled and not second.compiled and len(calls) == 1
    assert notes == ["compiling the fast decode step (once per model and process; --no-compile skips it)",
                     "torch.compile failed for the fast decode step (TypeError: reduce() of empty iterable); "
                     "it runs eagerly"]


def test_bf16_weights_stay_close_to_fp32(tables):
    """bf16 (the default where ``bf16_supported``; emulated, slowly, elsewhere) gives logits within bf16
    rounding of fp32, and generates."""
    acc = make(tables, -2)
    outs = []
    for dtype in (torch.float32, torch.bfloat16):
        dec = fast_decoder(acc, dtype)
        cache = dec.new_cache()
        with torch.inference_mode():
            outs.append(dec.logits(codes(1, 3)[:, 0], torch.zeros(12), torch.tensor(False), torch.tensor(True),
                                   codes(1, 4)[:, 0] + 19,
                                   torch.tensor(0), cache.keys, cache.values, cache.slot_pos,
                                   torch.zeros(4, dtype=torch.long), torch.tensor(True))[0])
    assert outs[1].dtype == torch.float32 and (outs[1] - outs[0]).abs().max() < 0.05 * outs[0].abs().max()
    gen = acc.generator(0, fast=True, compile=False, dtype=torch.bfloat16)
    gen.feed_input(codes(20, 5))
    assert gen.generate(4).shape == (4, 4) and gen.cache.keys.dtype == torch.bfloat16


def test_a_stream_runs_past_the_first_buffer_of_input_frames(tables):
    """The generator's input buffers grow with the stream (1,024 rows at first): a model without the chroma
    path reads its (zero) chroma row for every input frame too, past the first 1,024 (20 s)."""
    acc = make(tables, -2)
    gen = acc.generator(2, top_k=1, fast=True, compile=False, dtype=FP32)
    gen.feed_input(codes(1100, 3))
    assert gen.generate(1050).shape == (4, 1050)  # its last frames read input frames 1,024 and on
