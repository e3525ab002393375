"""``python -m streamlib bench model``: its core functions on a tiny config (no timing asserts)."""

import math

import torch

from streamlib.bench import model as bench
from streamlib.config import get_preset
from streamlib.model.fast import fast_dtype


def _tiny():
    cfg = get_preset("debug").model  # 2 x 32, 4 heads, 2 kv heads
    return cfg, bench.build_ours(cfg, codebook_size=64, latent_dim=16), bench.build_hf(cfg, vocab=64)


def _positive(values):
    assert values and all(math.isfinite(v) and v > 0 for v in values.values()), values


def test_same_size_models():
    cfg, acc, hf = _tiny()
    assert hf.config.num_hidden_layers == cfg.n_layers and hf.config.hidden_size == cfg.d_model
    assert hf.config.num_key_value_heads == cfg.n_kv_heads and hf.config.intermediate_size == cfg.ffn_hidden
    assert hf.config.vocab_size == acc.codebook_size == 64
    custom = bench.custom_config(3, 128)
    assert (custom.n_layers, custom.d_model, custom.n_heads, custom.n_kv_heads) == (3, 128, 4, 2)


def test_training_throughput_positive():
    _, acc, hf = _tiny()
    for backbone in (False, True):
        _positive(bench.measure_training(acc, hf, batch=2, frames=16, repeats=1, bf16=False, backbone=backbone))


def test_decode_latency_positive():
    _, acc, hf = _tiny()
    ms = bench.measure_decode(acc, hf, context=8, steps=2, nocache_steps=1, repeats=1, compile=False)
    assert {"ours cache", "hf cache", "ours no cache", "hf no cache", "ours Generator", "ours fast step",
            "ours fast eager step", "ours fast Generator", "ours fast guided step"} <= set(ms)
    _positive(ms)


def test_fast_step_times_one_position_of_the_stream():
    _, acc, _ = _tiny()
    fns = bench.fast_decode_fns(acc, context=8, steps=3, compile=False)
    codes = fns["ours fast step"]()
    assert codes.shape == (acc.cfg.n_q,) and 0 <= int(codes.min()) and int(codes.max()) < acc.codebook_size
    assert fns["ours fast Generator"]().shape == (acc.cfg.n_q, 3)
    assert fns["ours fast guided step"]().shape == (acc.cfg.n_q,)   # guidance 4: both passes, one position
    other = fast_dtype(acc.input_tables.device) != torch.float32  # native bf16: fp32 weights are timed too
    assert ("ours fast step float32" in fns) == other
    if other:
        assert fns["ours fast step float32"]().shape == (acc.cfg.n_q,)


def test_bandwidth_bound_counts_the_bytes_a_step_reads():
    cfg, acc, _ = _tiny()
    need = bench.step_bytes(acc, context=1000)  # more than the window: the window counts
    head_dim = cfg.d_model // cfg.n_heads
    item = 2 if fast_dtype(acc.input_tables.device) == torch.bfloat16 else 4  # the fast path's weights here
    assert need["kv"] == item * cfg.n_layers * 2 * cfg.n_kv_heads * head_dim * cfg.max_frames
    gathered = sum(e.weight.numel() for e in acc.out_embed)  # only n_q rows are read: not counted
    assert need["weights"] == item * (sum(p.numel() for p in acc.parameters()) - gathered)
    assert bench.memory_bandwidth_gbs(repeats=1, megabytes=8) > 0


def test_cache_latency_times_the_same_computation():
    _, acc, _ = _tiny()
    fns = bench.ours_decode_fns(acc, context=8, steps=1, nocache_steps=1)
    cached, full = fns["ours cache"](), fns["ours no cache"]()
    assert cached.shape[:2] == full.shape[:2] and torch.allclose(cached[:, :, -1], full, atol=1e-4)
    ms = bench.cache_latency_ms(acc, context=8, repeats=1)
    assert set(ms) == {"cache", "no cache"}
    _positive(ms)
