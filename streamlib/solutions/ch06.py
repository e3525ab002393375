"""Solutions to ``book/exercises/06_model.ipynb`` (chapter 6, "The model": parameter counts, the KV cache and
what each position sees, ``streamlib.model``)."""

from __future__ import annotations

from streamlib.solutions import Exercise, same_function


def swiglu_params(d_model: int, ffn_hidden: int) -> int:
    """06.1: gate and up (d x width each) and down (width x d), no biases."""
    return 3 * d_model * ffn_hidden


def kv_numbers_per_frame(n_layers: int, n_heads: int, n_kv_heads: int, d_model: int) -> int:
    """06.2: keys and values of every layer for one position: 2 x kv heads x head width, per layer."""
    return n_layers * 2 * n_kv_heads * (d_model // n_heads)


def ex1() -> int:
    # book preset: d = 256, width 688
    return swiglu_params(256, 688)


def ex3() -> int:
    # t_f = -2, k = 1: position j sees input frames up to j - (1 - t_f) = 12 - 3
    return 9


def _expected1() -> int:
    from streamlib.bench.model import n_params
    from streamlib.config import get_preset
    from streamlib.model.transformer import SwiGLU

    return n_params(SwiGLU(get_preset("book").model))


def _configs():
    for layers, heads, kv, d in ((1, 2, 1, 16), (2, 4, 2, 32), (4, 8, 4, 64), (3, 4, 4, 48)):
        yield layers, heads, kv, d


def _measured(n_layers: int, n_heads: int, n_kv_heads: int, d_model: int) -> int:
    """Feed 5 positions through a real ``Transformer`` with a cache and count what it holds per position."""
    import dataclasses

    import torch

    from streamlib.config import get_preset
    from streamlib.model.transformer import Transformer

    cfg = dataclasses.replace(get_preset("debug").model, n_layers=n_layers, n_heads=n_heads,
                              n_kv_heads=n_kv_heads, d_model=d_model, ffn_hidden=2 * d_model)
    net = Transformer(cfg).eval()
    cache = net.new_cache()
    with torch.no_grad():
        net(torch.zeros(1, 5, d_model), cache)
    return sum(k.numel() + v.numel() for k, v in zip(cache.keys, cache.values)) // 5


def _expected3() -> int:
    from streamlib.model.figures import visibility_maps

    return int(visibility_maps(16, tf=-2)["inputs"][12].nonzero().max())


EXERCISES = [
    Exercise("06.1", "compute", "parameters of one book-preset feed-forward", ex1, _expected1),
    Exercise("06.2", "implement", "numbers the KV cache holds per frame", lambda: kv_numbers_per_frame,
             lambda: _measured, same_function(_configs)),
    Exercise("06.3", "explore", "the last input frame position 12 attends to at t_f = -2", ex3, _expected3),
]
