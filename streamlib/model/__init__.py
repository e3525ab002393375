"""The accompanist model (chapter 6, "The model"): a LLaMA-style decoder with gated input fusion.

``transformer`` holds the backbone (RMSNorm, RoPE, QK-norm, SwiGLU, GQA, KV cache); ``accompanist``
the fusion of Eq. (2-3), the heads, the streaming ``Generator`` and checkpoint I/O; ``fast`` the same
generator on a static cache, compiled (chapter 8).
"""

from streamlib.model.accompanist import Accompanist, Generator, load_accompanist, save_accompanist, token_loss
from streamlib.model.fast import FastGenerator
from streamlib.model.transformer import KVCache, Transformer

__all__ = ["Accompanist", "FastGenerator", "Generator", "KVCache", "Transformer", "load_accompanist",
           "save_accompanist", "token_loss"]
