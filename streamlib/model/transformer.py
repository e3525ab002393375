"""A LLaMA-style decoder with a KV cache (chapter 6, "The model").

Pre-norm blocks of RMSNorm -> grouped-query attention (rotary positions, query-key RMSNorm with a
learnable scale) -> RMSNorm -> SwiGLU feed-forward. The query/key/value and gate/up projections are
fused into one matrix each (fewer kernel launches: small models on a CPU are bound by per-op cost).

``Transformer.forward(x, cache=None)`` runs a causal pass over ``x [B, L, d]``; ``Transformer(cfg,
causal=False)`` is the same stack with full (bidirectional) attention and no cache, the backbone of the
masked model of chapter 12 (``streamlib.model.masked``). With a ``KVCache``
the new positions attend to everything cached before them and are appended to it, so a streaming
loop can feed one position (or a chunk) at a time. ``KVCache.truncate(n)`` rolls the cache back to
its first ``n`` positions (the k > 1 generator re-runs a chunk once its input has arrived).

Context policy: positions keep counting up (rotary angles need no table); when the cache holds
``max_positions`` entries the oldest are dropped (a sliding window), so no query ever attends
further back than the trained length.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from streamlib.config import ConfigError, ModelConfig


def rotary(x: Tensor, positions: Tensor, base: float = 10_000.0) -> Tensor:
    """Rotate pairs of channels of ``x [B, H, L, D]`` by position-dependent angles (RoPE, half-split)."""
    d = x.shape[-1]
    inv = base ** (-torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d)
    angles = positions.to(torch.float32)[:, None] * inv[None, :]  # [L, D/2]
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class KVCache:
    """Keys and values of every layer for the positions fed so far (batch ``B``)."""

    def __init__(self, n_layers: int, max_positions: int):
        self.keys: list[Tensor | None] = [None] * n_layers
        self.values: list[Tensor | None] = [None] * n_layers
        self.max_positions = int(max_positions)
        self.next_position = 0  # rotary position of the next fed entry
        self.dropped = 0  # entries slid out of the window

    @property
    def length(self) -> int:
        """Entries held (after any sliding)."""
        return 0 if self.keys[0] is None else int(self.keys[0].shape[2])

    def append(self, layer: int, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        if self.keys[layer] is not None:
            k = torch.cat([self.keys[layer], k], dim=2)
            v = torch.cat([self.values[layer], v], dim=2)
        self.keys[layer], self.values[layer] = k, v
        return k, v

    def slide(self) -> None:
        """Drop the oldest entries beyond ``max_positions`` (called after each forward)."""
        extra = self.length - self.max_positions
        if extra > 0:
            self.keys = [k[:, :, extra:] for k in self.keys]
            self.values = [v[:, :, extra:] for v in self.values]
            self.dropped += extra

    def truncate(self, n_positions: int) -> None:
        """Forget every position from ``n_positions`` on (counted from the start of the stream)."""
        keep = n_positions - self.dropped
        if not 0 <= keep <= self.length:
            raise ValueError(f"cannot truncate to position {n_positions}: cache holds {self.dropped}..{self.next_position - 1}")
        self.keys = [k[:, :, :keep] for k in self.keys]
        self.values = [v[:, :, :keep] for v in self.values]
        self.next_position = n_positions


class Attention(nn.Module):
    """Grouped-query self-attention with rotary positions and query-key RMSNorm."""

    def __init__(self, cfg: ModelConfig, causal: bool = True):
        super().__init__()
        self.causal = bool(causal)
        self.n_heads, self.n_kv = cfg.n_heads, cfg.n_kv_heads
        self.head_dim = cfg.d_model // cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, (self.n_heads + 2 * self.n_kv) * self.head_dim, bias=False)
        self.out = nn.Linear(self.n_heads * self.head_dim, cfg.d_model, bias=False)
        self.q_norm = nn.RMSNorm(self.head_dim, eps=1e-6)  # learnable per-channel scale
        self.k_norm = nn.RMSNorm(self.head_dim, eps=1e-6)
        self.dropout = cfg.dropout

    def forward(self, x: Tensor, positions: Tensor, cache: KVCache | None, layer: int,
                mask: Tensor | None) -> Tensor:
        b, n, _ = x.shape
        hd = self.head_dim
        q, k, v = self.qkv(x).split([self.n_heads * hd, self.n_kv * hd, self.n_kv * hd], dim=-1)
        q = self.q_norm(q.view(b, n, self.n_heads, hd)).transpose(1, 2)
        k = self.k_norm(k.view(b, n, self.n_kv, hd)).transpose(1, 2)
        v = v.view(b, n, self.n_kv, hd).transpose(1, 2)
        q, k = rotary(q, positions), rotary(k, positions)
        if cache is not None:
            k, v = cache.append(layer, k, v)
        drop = self.dropout if self.training else 0.0
        if mask is None:  # plain pass over fresh positions: causal, or every position sees every other
            y = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal, dropout_p=drop, enable_gqa=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop, enable_gqa=True)
        return self.out(y.transpose(1, 2).reshape(b, n, self.n_heads * hd))


class SwiGLU(nn.Module):
    """``W2 (silu(W_gate x) * W_up x)`` with the gate and up projections fused."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate_up = nn.Linear(cfg.d_model, 2 * cfg.ffn_hidden, bias=False)
        self.down = nn.Linear(cfg.ffn_hidden, cfg.d_model, bias=False)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor) -> Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.drop(self.down(F.silu(gate) * up))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, causal: bool = True):
        super().__init__()
        self.attn_norm = nn.RMSNorm(cfg.d_model, eps=1e-6)
        self.attn = Attention(cfg, causal)
        self.ffn_norm = nn.RMSNorm(cfg.d_model, eps=1e-6)
        self.ffn = SwiGLU(cfg)

    def forward(self, x, positions, cache, layer, mask):
        x = x + self.attn(self.attn_norm(x), positions, cache, layer, mask)
        return x + self.ffn(self.ffn_norm(x))


class Transformer(nn.Module):
    """The decoder stack: ``n_layers`` blocks and a final RMSNorm (chapter 6).

    ``causal=False``: every position attends to every other (the masked model, chapter 12); such a
    stack takes no KV cache. The weights have the same names and shapes either way.
    """

    def __init__(self, cfg: ModelConfig, causal: bool = True):
        super().__init__()
        if cfg.cross_attention:
            raise ConfigError("cross_attention=True is not built: the paper fuses the input by addition (Eq. 3)")
        self.cfg = cfg
        self.causal = bool(causal)
        self.blocks = nn.ModuleList(Block(cfg, self.causal) for _ in range(cfg.n_layers))
        self.norm = nn.RMSNorm(cfg.d_model, eps=1e-6)

    def new_cache(self) -> KVCache:
        if not self.causal:
            raise ConfigError("a bidirectional transformer (causal=False) has no KV cache: it re-reads the whole window")
        return KVCache(self.cfg.n_layers, self.cfg.max_frames)

    def forward(self, x: Tensor, cache: KVCache | None = None, positions: Tensor | None = None,
                attention: Tensor | None = None) -> Tensor:
        """``positions`` ``[L]`` and ``attention`` (bool ``[L, L]``, True: may attend) replace the default
        positions 0..L-1 and mask of a pass without a cache (the all-chunks layout of chapter 7,
        ``streamlib.tokens.visibility.all_chunks``)."""
        if cache is not None and not self.causal:
            raise ConfigError("a bidirectional transformer (causal=False) takes no KV cache")
        if cache is not None and (positions is not None or attention is not None):
            raise ConfigError("positions and attention are for a pass without a KV cache")
        n = x.shape[1]
        if attention is not None and tuple(attention.shape) != (n, n):
            raise ConfigError(f"attention must be [{n}, {n}], got {tuple(attention.shape)}")
        start = 0 if cache is None else cache.next_position
        if positions is None:
            positions = torch.arange(start, start + n, device=x.device)
        mask = attention
        if cache is not None and cache.length > 0:
            past = cache.length
            # new position i (absolute start+i) sees every cached entry and new entries <= i
            mask = torch.ones(n, past + n, dtype=torch.bool, device=x.device)
            mask[:, past:] = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
        for i, block in enumerate(self.blocks):
            x = block(x, positions.to(x.device), cache, i, mask)
        if cache is not None:
            cache.next_position = start + n
            cache.slide()
        return self.norm(x)


__all__ = ["KVCache", "Transformer", "rotary"]
